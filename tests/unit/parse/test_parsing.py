"""parse_message against the fixture corpus and its hand-written expectations."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from mailintake.parse.body import safe_filename
from mailintake.parse.headers import normalized_line_endings, origin_key
from mailintake.parse.limits import ParseLimits
from mailintake.parse.message import parse_message

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "mail"
EXPECTED = tomllib.loads((FIXTURES / "expected.toml").read_text(encoding="utf-8"))
FIXTURE_NAMES = sorted(path.name for path in FIXTURES.glob("*.eml"))


def test_every_fixture_has_expectations() -> None:
    assert FIXTURE_NAMES == sorted(EXPECTED)
    assert len(FIXTURE_NAMES) >= 20


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_parses_to_the_expected_facts(name: str) -> None:
    expected = EXPECTED[name]
    parsed = parse_message((FIXTURES / name).read_bytes())
    assert parsed.subject == expected.get("subject", "")
    assert parsed.from_address == expected["from_address"]
    assert (parsed.message_id is not None) == expected["has_message_id"]
    assert parsed.statements.severity == expected.get("severity")
    assert parsed.statements.credit == expected.get("credit")
    assert parsed.statements.anonymous == expected["anonymous"]
    assert list(parsed.statements.urls) == expected.get("urls", [])
    for fragment in expected["body_contains"]:
        assert fragment in parsed.body_text
    attachments = [{"filename": item.filename, "content_type": item.content_type, "size": item.size, "sha256": item.sha256} for item in parsed.attachments]
    for got, wanted in zip(attachments, expected["attachments"], strict=True):
        assert {key: got[key] for key in wanted} == wanted


def test_html_only_mail_becomes_text_without_markup() -> None:
    parsed = parse_message((FIXTURES / "html-only.eml").read_bytes())
    assert parsed.body_from_html
    assert "<p" not in parsed.body_text and "<style" not in parsed.body_text and "{" not in parsed.body_text


def test_template_syntax_from_a_reporter_is_kept_literally() -> None:
    parsed = parse_message((FIXTURES / "template-injection.eml").read_bytes())
    assert "{{7*7}}" in parsed.body_text and "{{config}}" in parsed.subject


def test_header_lines_are_split_at_crlf_only_as_the_mta_splits_them() -> None:
    """A bare CR or LF inside the header section is data: it never starts a header (Postfix
    splits at CRLF, so a header hidden behind a bare CR passes the MX unseen). Body line
    breaks of every kind become CRLF."""
    assert normalized_line_endings(b"Subject: a\rBcc: x\nTo: y\r\n\r\nbody\nmore\rend\r\n") == b"Subject: a Bcc: x To: y\r\n\r\nbody\r\nmore\r\nend\r\n"


def test_a_message_without_any_crlf_uses_lf_as_its_line_break() -> None:
    assert normalized_line_endings(b"From: a@example.org\nSubject: s\n\nbody\n") == b"From: a@example.org\r\nSubject: s\r\n\r\nbody\r\n"


def test_a_header_smuggled_with_a_bare_cr_stays_part_of_the_header_it_hides_in() -> None:
    parsed = parse_message(b"From: a@example.org\r\nSubject: hello\rX-Injected: yes\r\nMessage-ID: <m@example.org>\r\n\r\nbody\r\n")
    assert parsed.subject == "hello X-Injected: yes"
    assert "BareLineBreakInHeader" in parsed.defects
    smuggled_sender = parse_message(b"Subject: hi\rFrom: staff@example.com\r\nMessage-ID: <m@example.org>\r\n\r\nbody\r\n")
    assert smuggled_sender.from_address == ""


def test_display_name_that_looks_like_an_address_is_not_the_sender() -> None:
    parsed = parse_message(b'From: "staff@example.com" <x@evil.test>\r\nReply-To: staff@example.com\r\nSubject: s\r\n\r\nbody\r\n')
    assert parsed.from_address == "x@evil.test"
    assert parsed.from_name == "staff@example.com"


def test_origin_key_ignores_per_delivery_trace_headers_but_not_content() -> None:
    message = b"From: a@example.org\r\nSubject: s\r\n\r\nbody\r\n"
    first = origin_key(normalized_line_endings(b"Received: from a by b\r\nDelivered-To: security@example.com\r\n" + message), None, "a@example.org")
    second = origin_key(normalized_line_endings(b"Received: from c by d\r\n\tfolded\r\nDelivered-To: psirt@example.com\r\n" + message), None, "a@example.org")
    other = origin_key(normalized_line_endings(message.replace(b"body", b"other")), None, "a@example.org")
    assert first == second != other


def test_a_reused_message_id_with_other_content_or_author_is_another_message() -> None:
    message = b"From: a@example.org\r\nSubject: s\r\n\r\nbody\r\n"
    assert origin_key(message, "m@x", "a@example.org") == origin_key(b"Received: from b\r\n" + message, "m@x", "a@example.org")
    assert origin_key(message, "m@x", "a@example.org") != origin_key(message.replace(b"body", b"RCE"), "m@x", "a@example.org")
    assert origin_key(message, "m@x", "a@example.org") != origin_key(message, "m@x", "b@example.org")


@pytest.mark.parametrize(
    ("given", "shown"),
    [("../../etc/passwd", "passwd"), ("C:\\Users\\x\\evil.exe", "evil.exe"), ("a\r\nBcc: x.txt", "a Bcc: x.txt"), ("", "unnamed"), ("..", "unnamed"), ("x" * 400, "x" * 255)],
)
def test_attachment_names_lose_directories_and_control_characters(given: str, shown: str) -> None:
    assert safe_filename(given) == shown


def test_ten_thousand_mime_parts_parse_without_crashing() -> None:
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\npart\r\n" for _ in range(10_000))
    raw = b"From: a@example.org\r\nSubject: many\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" + parts + b"--b--\r\n"
    parsed = parse_message(raw)
    assert parsed.subject == "many"


def test_undecodable_bytes_and_nul_become_text_every_database_stores() -> None:
    raw = b"From: a@example.org\r\nSubject: caf\xe9\x00\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nbad \xff\xfe bytes \x00 here\r\n"
    parsed = parse_message(raw)
    for value in (parsed.subject, parsed.body_text):
        value.encode("utf-8")
        assert "\x00" not in value
    assert "bad" in parsed.body_text and "here" in parsed.body_text


def test_oversized_addresses_and_names_are_not_taken_as_the_sender() -> None:
    parsed = parse_message(b"From: " + b"N" * 900 + b" <" + b"a" * 300 + b"@example.org>\r\nTo: security@example.com\r\n\r\nbody\r\n")
    assert parsed.from_address == ""
    parsed = parse_message(b'From: "' + b"N" * 900 + b'" <a@example.org>\r\n\r\nbody\r\n')
    assert parsed.from_address == "a@example.org" and len(parsed.from_name) == 256


@pytest.mark.parametrize(
    "from_header",
    [b"staff@example.com <x@evil.test>", b"<staff@example.com>@evil.test", b"<staff@example.com> x@evil.test", b"alice@example.org)<bob@evil.test>", b"a@example.org, b@example.org"],
)
def test_an_ambiguous_from_names_no_sender_and_is_recorded_as_a_defect(from_header: bytes) -> None:
    parsed = parse_message(b"From: " + from_header + b"\r\nSubject: s\r\n\r\nbody\r\n")
    assert parsed.from_address == "" and "AmbiguousFrom" in parsed.defects


def test_two_from_fields_name_no_sender() -> None:
    parsed = parse_message(b"From: a@example.org\r\nFrom: b@example.org\r\nSubject: s\r\n\r\nbody\r\n")
    assert parsed.from_address == "" and "AmbiguousFrom" in parsed.defects


def test_raw_utf8_headers_rfc_6532_are_read_as_utf8() -> None:
    parsed = parse_message("From: Jürgen <jürgen@example.org>\r\nTo: Søren <søren@example.com>\r\nSubject: Lücke\r\n\r\nbody\r\n".encode())
    assert (parsed.from_name, parsed.from_address, parsed.to_addresses, parsed.subject) == ("Jürgen", "jürgen@example.org", ("søren@example.com",), "Lücke")


def test_message_ids_with_control_characters_are_not_message_ids() -> None:
    parsed = parse_message(b"From: a@example.org\r\nMessage-ID: <a\x00b@example.org>\r\nIn-Reply-To: <x\x07y@example.org>\r\n\r\nbody\r\n")
    assert parsed.message_id is None and parsed.in_reply_to is None


def test_a_date_beyond_the_calendar_is_no_date() -> None:
    assert parse_message(b"From: a@example.org\r\nDate: Fri, 31 Dec 9999 23:59:59 -0100\r\n\r\nbody\r\n").date is None


def test_a_mail_with_more_parts_than_the_limit_keeps_the_first_and_says_how_many_went() -> None:
    parts = b"".join(b"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=p%d.bin\r\n\r\npart\r\n" % number for number in range(30_000))
    raw = b"From: a@example.org\r\nSubject: many\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" + parts + b"--b--\r\n"
    parsed = parse_message(raw, ParseLimits(max_parts=1000))
    assert [item.filename for item in parsed.attachments] == [f"p{number}.bin" for number in range(1000)]
    assert "TooManyParts:29000 of 30000 parts left out" in parsed.defects
    assert parse_message(raw, ParseLimits(max_parts=10)).attachments[-1].filename == "p9.bin"


def test_a_forwarded_mail_nested_in_itself_cannot_multiply_the_decoded_size() -> None:
    inner = b"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=big.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b"QUFBQUFB\r\n" * 20_000
    for level in range(20):
        inner = (
            b"Content-Type: message/rfc822\r\nContent-Disposition: attachment; filename=f%d.eml\r\n\r\nFrom: f@example.org\r\nContent-Type: multipart/mixed; boundary=l%d\r\n\r\n--l%d\r\n" % (level, level, level)
            + inner
            + b"\r\n--l%d--\r\n" % level
        )
    raw = b"From: a@example.org\r\nSubject: nested\r\nContent-Type: multipart/mixed; boundary=top\r\n\r\n--top\r\n" + inner + b"\r\n--top--\r\n"
    parsed = parse_message(raw)
    assert parsed.attachments[0].filename == "f19.eml"
    assert sum(item.size for item in parsed.attachments) <= 2 * len(raw) + 1_000_000
    assert any(defect.startswith("DecodedSizeLimit:") for defect in parsed.defects)


def own_text_of(raw: bytes) -> str:
    return parse_message(raw).own_text.strip()


def test_the_authors_own_text_is_the_first_text_part_never_a_forwarded_mail() -> None:
    forward = b"Content-Type: message/rfc822\r\n\r\nFrom: p@vendor.example\r\nSubject: x\r\n\r\n#status rejected\r\n"
    with_text = b"From: b@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nmine\r\n--b\r\n" + forward + b"--b--\r\n"
    assert own_text_of(with_text) == "mine"
    forward_only = b"From: b@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" + forward + b"--b--\r\n"
    assert own_text_of(forward_only) == "" and "#status rejected" in parse_message(forward_only).body_text
    empty_first = b"From: b@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n#status rejected\r\n--b--\r\n"
    assert own_text_of(empty_first) == ""
    attached_text = b"From: b@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\n#status rejected\r\n--b--\r\n"
    assert own_text_of(attached_text) == ""


def test_the_authors_own_text_of_an_alternative_is_its_plain_part_else_its_html() -> None:
    both = b"From: b@example.com\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n--a\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--a\r\nContent-Type: text/plain\r\n\r\nplain\r\n--a--\r\n"
    assert own_text_of(both) == "plain"
    html_only = b"From: b@example.com\r\nContent-Type: text/html\r\n\r\n<p>#status triaged</p><p>Thanks</p>\r\n"
    assert own_text_of(html_only).splitlines()[0] == "#status triaged"


def test_nesting_too_deep_for_mail_parser_still_yields_a_report_from_the_headers() -> None:
    depth = 3000
    opening = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (level, level) for level in range(depth))
    raw = b"From: deep@example.org\r\nSubject: deep\r\nMessage-ID: <deep@example.org>\r\n" + opening + b"Content-Type: text/plain\r\n\r\ninner\r\n"
    parsed = parse_message(raw)
    assert (parsed.subject, parsed.from_address, parsed.message_id) == ("deep", "deep@example.org", "deep@example.org")
    assert any(defect.startswith("BodyNotParsed:") for defect in parsed.defects)


def test_a_huge_to_header_is_read_only_in_part() -> None:
    addresses = b", ".join(b"user%d@example.org" % number for number in range(80_000))
    parsed = parse_message(b"From: a@example.org\r\nTo: " + addresses + b"\r\n\r\nbody\r\n")
    assert 0 < len(parsed.to_addresses) <= 200


def test_when_mail_parser_gives_up_the_standard_library_still_reads_body_and_attachments() -> None:
    raw = (
        b"From: =?utf-8?b?A?= Name <someone@example.org>\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain; charset=no-such-charset\r\n\r\n'
        b"the body\r\n--b\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=poc.png\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--b--\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.defects == ("MailParserFailed:HeaderParseError",)
    assert parsed.body_text.strip() == "the body"
    assert [(item.filename, item.content_type, item.content) for item in parsed.attachments] == [("poc.png", "image/png", b"hello")]
    assert parsed.from_address == "someone@example.org"
