"""Outbound mail composition: headers, threading, MIME structure, CRLF bytes, and no
header injection from any input. Every check parses the produced bytes back."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailintake.outbound.compose import (
    COMPOSE_POLICY,
    MAX_REFERENCES,
    compose,
    message_bytes,
    safe_header_text,
    shortened_line,
    subject_with_tracking_id,
    thread_references,
)

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
DATE = datetime(2026, 11, 23, 10, 15, tzinfo=AMSTERDAM)
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
EW_INJECTION = "=?utf-8?q?x=0D=0ABcc=3A_evil@evil.test?="
EVIL_ADDRESS = "evil@evil.test"


def arguments(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "sender": "security@example.com",
        "sender_name": "Example Corp Security",
        "to": ["researcher@example.org"],
        "subject": "We received your security report",
        "text": "Hello,\n\nthank you.\n",
        "html": None,
        "message_id": "out-17.4f2a@example.com",
        "date": DATE,
    }
    base.update(changes)
    return base


def built(**changes: object) -> bytes:
    return message_bytes(compose(**arguments(**changes)))  # type: ignore[arg-type]


def parsed(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def content(part: EmailMessage | None) -> str:
    """A text part's content with the wire's CRLF read back as LF."""
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def header_block(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


def header_names(raw: bytes) -> list[str]:
    return [line.split(b":", 1)[0].decode() for line in header_block(raw).split(b"\r\n") if line[:1] not in (b" ", b"\t")]


def assert_no_injection(raw: bytes) -> None:
    message = parsed(raw)
    for part in message.walk():
        for name, value in part.items():
            assert name.lower() not in ("bcc", "cc", "x-injected"), name
            assert not CONTROL.search(str(value)), (name, str(value))
    assert EVIL_ADDRESS not in [address.addr_spec for address in message["To"].addresses]
    assert len(message.get_all("From", [])) == 1
    assert len(message["From"].addresses) == 1
    assert message["From"].addresses[0].addr_spec == "security@example.com"


# --- headers -----------------------------------------------------------------------


def test_headers_round_trip() -> None:
    message = parsed(built(reply_to="security+r1.abc@example.com", auto_submitted="auto-replied", tracking_id="SEC-2026-0042"))
    (sender,) = message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Example Corp Security", "security@example.com")
    assert [address.addr_spec for address in message["To"].addresses] == ["researcher@example.org"]
    assert message["Reply-To"].addresses[0].addr_spec == "security+r1.abc@example.com"
    assert message["Subject"] == "[SEC-2026-0042] We received your security report"
    assert message["Message-ID"] == "<out-17.4f2a@example.com>"
    assert message["Auto-Submitted"] == "auto-replied"
    assert parsedate_to_datetime(message["Date"]) == DATE
    assert message["Date"].endswith("+0100")
    assert message["MIME-Version"] == "1.0"


def test_optional_headers_are_absent_unless_given() -> None:
    names = header_names(built())
    for name in ("Reply-To", "In-Reply-To", "References", "Auto-Submitted"):
        assert name not in names


def test_message_id_may_come_with_angle_brackets() -> None:
    assert parsed(built(message_id="<abc@example.com>"))["Message-ID"] == "<abc@example.com>"


def test_same_inputs_same_message_id_and_headers() -> None:
    first, second = built(), built()
    assert parsed(first)["Message-ID"] == parsed(second)["Message-ID"]
    assert header_block(first) == header_block(second)


@pytest.mark.parametrize("message_id", ["", "no-at-sign", "a b@example.com", "<a@b", "a@b\r\nBcc: evil@evil.test", f"{EW_INJECTION}@example.com", "x" * 300 + "@example.com"])
def test_invalid_message_id_is_refused(message_id: str) -> None:
    with pytest.raises(ValueError, match="invalid Message-ID"):
        built(message_id=message_id)


def test_extra_headers_are_added() -> None:
    message = parsed(built(extra_headers={"X-Mailintake-Loop": "example.com", "Precedence": "bulk"}))
    assert message["X-Mailintake-Loop"] == "example.com"
    assert message["Precedence"] == "bulk"


@pytest.mark.parametrize("name", ["Bcc", "cc", "To", "From", "Subject", "Message-ID", "Content-Type", "Resent-To", "MIME-Version", "Sender"])
def test_extra_headers_cannot_replace_what_compose_sets(name: str) -> None:
    with pytest.raises(ValueError, match="set by compose"):
        built(extra_headers={name: "x"})


@pytest.mark.parametrize("name", ["X-A\r\nBcc", "X A", "X:A", "", "Ünï"])
def test_extra_header_names_are_plain(name: str) -> None:
    with pytest.raises(ValueError, match="invalid header name"):
        built(extra_headers={name: "x"})


@pytest.mark.parametrize("value", ["auto-generated", "auto-replied", "AUTO-REPLIED", "no"])
def test_auto_submitted_values(value: str) -> None:
    assert parsed(built(auto_submitted=value))["Auto-Submitted"] == value.lower()


def test_unknown_auto_submitted_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid Auto-Submitted"):
        built(auto_submitted="yes please")


def test_naive_date_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        built(date=datetime(2026, 11, 23, 10, 15))


def test_utc_date() -> None:
    assert parsed(built(date=datetime(2026, 3, 29, 1, 30, tzinfo=UTC)))["Date"] == "Sun, 29 Mar 2026 01:30:00 +0000"


# --- addresses ---------------------------------------------------------------------


def test_several_recipients_deduplicated() -> None:
    message = parsed(built(to=["a@example.com", "b@example.com", "A@Example.com"]))
    assert [address.addr_spec for address in message["To"].addresses] == ["a@example.com", "b@example.com"]


def test_idn_domain_is_sent_in_ascii() -> None:
    message = parsed(built(to=["jane@bücher.example"]))
    assert message["To"].addresses[0].addr_spec == "jane@xn--bcher-kva.example"


def test_quoted_local_part_survives() -> None:
    assert parsed(built(to=['"jane doe"@example.org']))["To"].addresses[0].username == "jane doe"


@pytest.mark.parametrize(
    "address",
    [
        "",
        "jane",
        "jane@",
        "@example.org",
        "jane@example",
        "jane doe@example.org",
        "Jane <jane@example.org>",
        "jane@example.org, evil@evil.test",
        "jane@example.org (comment)",
        "jane@example.org\r\nBcc: evil@evil.test",
        "jane@example.org\nBcc: evil@evil.test",
        "jäne@example.org",
        "jane@-example.org",
        "jane@exa_mple.org",
        "jane@example.org\x00",
    ],
)
def test_invalid_addresses_are_refused(address: str) -> None:
    for changes in ({"to": [address]}, {"sender": address}, {"reply_to": address}):
        with pytest.raises(ValueError, match="invalid email address") as raised:
            built(**changes)
        assert "\n" not in str(raised.value) and "\r" not in str(raised.value)


def test_invalid_address_error_is_one_short_line() -> None:
    address = "a" * 70 + "TAILTAILTAIL" * 40 + " @example.org"
    with pytest.raises(ValueError) as raised:
        built(to=[address])
    message = str(raised.value)
    assert "TAILTAILTAIL" * 2 not in message
    assert len(message) < 200
    assert "\n" not in message


def test_recipients_must_be_a_list() -> None:
    with pytest.raises(ValueError, match="list of addresses"):
        built(to="researcher@example.org")
    with pytest.raises(ValueError, match="at least one recipient"):
        built(to=[])


@pytest.mark.parametrize("name", ['Example, "Corp" <staff@example.com>', "back\\slash", "Ünïcødé Security", "a (b) c"])
def test_display_names_round_trip(name: str) -> None:
    (sender,) = parsed(built(sender_name=name))["From"].addresses
    assert (sender.display_name, sender.addr_spec) == (name, "security@example.com")


# --- subject and tracking id ---------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("We received your report", "[SEC-2026-0042] We received your report"),
        ("Re: [SEC-2026-0042] Stored XSS", "Re: [SEC-2026-0042] Stored XSS"),
        ("[SEC-2026-0042] Stored XSS", "[SEC-2026-0042] Stored XSS"),
        ("RE: AW: Stored XSS [sec-2026-0042]", "RE: AW: Stored XSS [sec-2026-0042]"),
        ("Re: SEC-2026-0042 without brackets", "[SEC-2026-0042] Re: SEC-2026-0042 without brackets"),
        ("Re: [SEC-2026-00421] other", "[SEC-2026-0042] Re: [SEC-2026-00421] other"),
        ("", "[SEC-2026-0042]"),
    ],
)
def test_tracking_id_prefix_is_never_doubled(subject: str, expected: str) -> None:
    assert subject_with_tracking_id(subject, "SEC-2026-0042") == expected
    assert parsed(built(subject=subject, tracking_id="SEC-2026-0042"))["Subject"] == expected


def test_subject_without_tracking_id_is_kept() -> None:
    assert parsed(built(subject="Daily digest"))["Subject"] == "Daily digest"


def test_long_non_ascii_subject_round_trips() -> None:
    subject = "Sicherheitslücke in der Anmeldung: " + "sehr lange Beschreibung " * 20
    assert parsed(built(subject=subject))["Subject"] == safe_header_text(subject)


# --- threading ---------------------------------------------------------------------


def test_reply_threads_with_in_reply_to_and_references() -> None:
    message = parsed(built(in_reply_to="<parent@example.org>", references=["<root@example.org>", "mid@example.org"]))
    assert message["In-Reply-To"] == "<parent@example.org>"
    assert message["References"] == "<root@example.org> <mid@example.org> <parent@example.org>"


def test_references_are_deduplicated_in_order_with_the_parent_last() -> None:
    ids = thread_references("<p@x.example>", ["<a@x.example>", "<p@x.example>", "<b@x.example>", "<a@x.example>"])
    assert ids == ["a@x.example", "b@x.example", "p@x.example"]


def test_references_keep_the_last_twenty() -> None:
    references = [f"<r{number}@example.org>" for number in range(30)]
    ids = thread_references("<parent@example.org>", references)
    assert len(ids) == MAX_REFERENCES
    assert ids[-1] == "parent@example.org"
    assert ids[0] == "r11@example.org"
    header = parsed(built(in_reply_to="<parent@example.org>", references=references))["References"]
    assert header.split() == [f"<{bare}>" for bare in ids]


def test_references_without_a_parent() -> None:
    message = parsed(built(references=["<a@example.org>"]))
    assert message["References"] == "<a@example.org>"
    assert message["In-Reply-To"] is None


def test_foreign_ids_that_are_not_msg_ids_are_dropped() -> None:
    message = parsed(
        built(
            in_reply_to="<parent@example.org>\r\nBcc: evil@evil.test",
            references=["<ok@example.org>", "bad id with spaces", "<x@y>\nX-Injected: 1", f"<{EW_INJECTION}@e.test>"],
        )
    )
    assert message["In-Reply-To"] is None
    assert message["References"] == "<ok@example.org>"
    assert_no_injection(message.as_bytes())


def test_references_must_be_a_list() -> None:
    with pytest.raises(ValueError, match="list of Message-IDs"):
        built(references="<a@example.org>")


# --- MIME structure ----------------------------------------------------------------


def test_text_only_is_a_single_text_part() -> None:
    message = parsed(built())
    assert message.get_content_type() == "text/plain"
    assert content(message) == "Hello,\n\nthank you.\n"


def test_html_makes_multipart_alternative() -> None:
    message = parsed(built(html="<p>Hello &amp; thanks</p>\n"))
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert content(message.get_body(("plain",))) == "Hello,\n\nthank you.\n"
    assert content(message.get_body(("html",))) == "<p>Hello &amp; thanks</p>\n"


def test_attachments_make_multipart_mixed() -> None:
    pdf = b"%PDF-1.7\x00\xff binary"
    message = parsed(built(html="<p>Hi</p>", attachments=[("report.pdf", "application/pdf", pdf), ("notes.txt", "text/plain", b"plain notes\n")]))
    assert message.get_content_type() == "multipart/mixed"
    body, *attachments = message.iter_parts()
    assert body.get_content_type() == "multipart/alternative"
    assert [(part.get_filename(), part.get_content_type()) for part in attachments] == [
        ("report.pdf", "application/pdf"),
        ("notes.txt", "text/plain"),
    ]
    assert attachments[0].get_payload(decode=True) == pdf
    assert attachments[1].get_payload(decode=True) == b"plain notes\n"
    assert all(part.get_content_disposition() == "attachment" for part in attachments)


def test_attachment_with_text_only_body() -> None:
    message = parsed(built(attachments=[("a.bin", "application/octet-stream", b"\x00\x01")]))
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "application/octet-stream"]


def test_non_ascii_attachment_name() -> None:
    message = parsed(built(attachments=[("Prüfbericht ü.pdf", "application/pdf", b"x")]))
    assert next(message.iter_attachments()).get_filename() == "Prüfbericht ü.pdf"


@pytest.mark.parametrize("filename", ["../../etc/passwd", "..\\..\\boot.ini", "/abs/path.txt", "..", ""])
def test_attachment_names_carry_no_directories(filename: str) -> None:
    name = next(parsed(built(attachments=[(filename, "text/plain", b"x")])).iter_attachments()).get_filename()
    assert name and "/" not in name and "\\" not in name and not name.startswith(".")


@pytest.mark.parametrize("content_type", ["multipart/mixed", "message/rfc822", "text", "text/plain; charset=utf-8", "text/plain\r\nX-Injected: 1", ""])
def test_attachment_content_types_are_plain(content_type: str) -> None:
    with pytest.raises(ValueError, match="invalid attachment content type"):
        built(attachments=[("a.txt", content_type, b"x")])


# --- bytes on the wire -------------------------------------------------------------


def test_bytes_use_crlf_line_endings_only() -> None:
    raw = built(html="<p>Hi</p>", text="one\ntwo\rthree\r\nfour\n", attachments=[("a.txt", "text/plain", b"x\ny\n")])
    assert b"\r\n" in raw
    assert re.search(rb"(?<!\r)\n", raw) is None
    assert re.search(rb"\r(?!\n)", raw) is None


def test_non_ascii_body_is_seven_bit_clean() -> None:
    raw = built(text="Grüße aus Köln — ✓\n", html="<p>Grüße</p>\n", subject="Grüße", sender_name="Sécurité")
    assert raw.isascii()
    message = parsed(raw)
    assert content(message.get_body(("plain",))) == "Grüße aus Köln — ✓\n"
    assert message["Subject"] == "Grüße"


def test_lone_surrogates_do_not_break_composition() -> None:
    message = parsed(built(subject="bad \udcff byte", text="body \udcff\n"))
    assert message["Subject"] == "bad \ufffd byte"
    assert content(message) == "body \ufffd\n"


def test_very_long_body_lines_are_encoded() -> None:
    raw = built(text="x" * 5000 + "\n")
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert content(parsed(raw)) == "x" * 5000 + "\n"


# --- header injection --------------------------------------------------------------

INJECTIONS = [
    "hello\r\nBcc: evil@evil.test",
    "hello\nBcc: evil@evil.test",
    "hello\rBcc: evil@evil.test",
    "hello\r\n\r\nbody takeover",
    "hello\x00\x0b\x0c\x1c\x85\u2028\u2029Bcc: evil@evil.test",
    f"hello {EW_INJECTION}",
    EW_INJECTION,
    "=?utf-8?b?eA0KQmNjOiBldmlsQGV2aWwudGVzdA==?=",
    "a=?utf-8?q?=0D=0AX-Injected=3A_1?=b",
]


@pytest.mark.parametrize("value", INJECTIONS)
def test_no_injection_through_the_subject(value: str) -> None:
    raw = built(subject=value, tracking_id="SEC-2026-0042")
    assert_no_injection(raw)
    subject = parsed(raw)["Subject"]
    assert subject.startswith("[SEC-2026-0042] ")
    if "hello" in value:
        assert "hello" in subject


@pytest.mark.parametrize("value", INJECTIONS)
def test_no_injection_through_the_display_name(value: str) -> None:
    raw = built(sender_name=value)
    assert_no_injection(raw)
    assert parsed(raw)["From"].addresses[0].display_name == safe_header_text(value, 256)


@pytest.mark.parametrize("value", INJECTIONS)
def test_no_injection_through_the_tracking_id(value: str) -> None:
    assert_no_injection(built(tracking_id=value))


@pytest.mark.parametrize("value", INJECTIONS)
def test_no_injection_through_extra_header_values(value: str) -> None:
    raw = built(extra_headers={"X-Mailintake-Loop": value})
    assert_no_injection(raw)
    assert parsed(raw)["X-Mailintake-Loop"] == safe_header_text(value)


@pytest.mark.parametrize("value", INJECTIONS)
def test_no_injection_through_attachment_filenames(value: str) -> None:
    raw = built(attachments=[(value + ".txt", "text/plain", b"x")])
    assert_no_injection(raw)
    (attachment,) = parsed(raw).iter_attachments()
    assert not CONTROL.search(attachment.get_filename() or "")


@pytest.mark.parametrize("value", INJECTIONS)
def test_no_injection_through_the_message_id(value: str) -> None:
    with pytest.raises(ValueError, match="invalid Message-ID"):
        built(message_id=f"abc{value}@example.com")


@pytest.mark.parametrize("value", INJECTIONS)
def test_no_injection_through_reply_to(value: str) -> None:
    """A control character makes the address invalid; an encoded word alone is legal
    atext in a local part and must then go out literally, never decoded."""
    address = f"security+{value}@example.com"
    if CONTROL.search(value) or " " in value or "@" in value:
        with pytest.raises(ValueError, match="invalid email address"):
            built(reply_to=address)
        return
    raw = built(reply_to=address)
    assert_no_injection(raw)
    assert [mailbox.addr_spec for mailbox in parsed(raw)["Reply-To"].addresses] == [address]


def test_header_block_holds_only_the_headers_compose_wrote() -> None:
    raw = built(
        subject=INJECTIONS[0],
        sender_name=INJECTIONS[5],
        tracking_id=INJECTIONS[3],
        reply_to="security+r1@example.com",
        in_reply_to="<p@example.org>",
        references=["<r@example.org>"],
        auto_submitted="auto-replied",
        extra_headers={"X-Mailintake-Loop": INJECTIONS[7]},
    )
    assert header_names(raw) == [
        "From",
        "To",
        "Reply-To",
        "Subject",
        "Date",
        "Message-ID",
        "In-Reply-To",
        "References",
        "Auto-Submitted",
        "X-Mailintake-Loop",
        "Content-Type",
        "Content-Transfer-Encoding",
        "MIME-Version",
    ]


HEADER_ALPHABET = st.sampled_from(list('\r\n\t\x00\x0b\x85\u2028 =?:;<>@"\\()[],.qQbB_-xÿ€😀') + ["=?utf-8?q?", "=?utf-8?b?", "?=", "=0D=0A", "Bcc: "])


@settings(max_examples=300, deadline=None)
@given(
    subject=st.lists(HEADER_ALPHABET, max_size=40).map("".join),
    name=st.lists(HEADER_ALPHABET, max_size=20).map("".join),
    filename=st.lists(HEADER_ALPHABET, max_size=20).map("".join),
)
def test_no_input_text_adds_a_header_or_a_control_character(subject: str, name: str, filename: str) -> None:
    raw = built(
        subject=subject,
        sender_name=name,
        tracking_id="SEC-2026-0042",
        extra_headers={"X-Mailintake-Loop": subject},
        attachments=[(filename, "text/plain", b"x")],
    )
    assert_no_injection(raw)
    assert header_names(raw) == ["From", "To", "Subject", "Date", "Message-ID", "X-Mailintake-Loop", "MIME-Version", "Content-Type"]


# --- helpers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("  plain   text  ", "plain text"),
        ("a\r\nb\tc\x00d", "a b c d"),
        ("What is 1+1=?", "What is 1+1=?"),
        ("a ?= b =? c", "a ?= b =? c"),
        (EW_INJECTION, "= ?utf-8?q?x=0D=0ABcc=3A_evil@evil.test?="),
        ("Grüße", "Grüße"),
    ],
)
def test_safe_header_text(value: str, expected: str) -> None:
    assert safe_header_text(value) == expected


def test_safe_header_text_limit() -> None:
    assert safe_header_text("x" * 2000) == "x" * 998
    assert safe_header_text("abc def", 4) == "abc"


# --- text echoed back to a reporter ------------------------------------------------


def test_a_short_subject_is_echoed_as_it_is() -> None:
    assert shortened_line("Stored XSS in profile page") == "Stored XSS in profile page"
    assert shortened_line("x" * 100) == "x" * 100


def test_a_long_subject_is_cut_on_a_word_with_an_ellipsis() -> None:
    subject = "Cheap watches " * 40
    echoed = shortened_line(subject)
    assert len(echoed) <= 100 and echoed.endswith("…")
    assert echoed == ("Cheap watches " * 7).strip() + "…"
    assert subject.startswith(echoed[:-1])


def test_a_long_word_is_cut_inside_it() -> None:
    assert shortened_line("a" * 300) == "a" * 99 + "…"
    assert shortened_line("short " + "b" * 300) == "short " + "b" * 93 + "…"


@given(st.text(max_size=2000))
@settings(max_examples=200, deadline=None)
def test_echoed_text_is_one_bounded_line(text: str) -> None:
    echoed = shortened_line(text, 40)
    assert len(echoed) <= 40
    assert not CONTROL.search(echoed)


@settings(max_examples=300)
@given(name=st.sampled_from(["From", "To", "Reply-To", "Subject", "Message-ID", "In-Reply-To", "References", "Date", "X-Mailintake-Kind", "Content-Type"]), text=st.text(max_size=200))
def test_the_reused_header_classes_build_the_headers_the_standard_registry_builds(name: str, text: str) -> None:
    def built(header_policy: email.policy.EmailPolicy) -> tuple[str, str, list[str]] | str:
        try:
            header = header_policy.header_factory(name, text)
            return str(header), header.fold(policy=header_policy), [type(defect).__name__ for defect in header.defects]
        except Exception as error:
            return type(error).__name__

    assert built(COMPOSE_POLICY) == built(email.policy.default)
    assert type(COMPOSE_POLICY.header_factory(name, "x")) is type(COMPOSE_POLICY.header_factory(name, "y")), "each header class is made once"
