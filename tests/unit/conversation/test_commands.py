"""Staff commands at the unquoted top of a reply."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from inscriptis import get_text

from mailintake.conversation.commands.base import Command, StaffReply
from mailintake.conversation.commands.parser import parse_staff_reply


def only(reply: StaffReply) -> Command:
    assert reply.errors == ()
    assert len(reply.commands) == 1
    return reply.commands[0]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("#status triaged", Command("status", "triaged", 1)),
        ("#status accepted", Command("status", "accepted", 1)),
        ("#status fixing", Command("status", "fixing", 1)),
        ("#status resolved", Command("status", "resolved", 1)),
        ("#status rejected", Command("status", "rejected", 1)),
        ("#status out-of-scope", Command("status", "out-of-scope", 1)),
        ("#status duplicate SEC-2026-0001", Command("status", "duplicate", 1, duplicate_of="SEC-2026-0001")),
        ("#status duplicate sec-2026-12345", Command("status", "duplicate", 1, duplicate_of="SEC-2026-12345")),
        ("#Status  Triaged", Command("status", "triaged", 1)),
        ("#STATUS\tresolved  ", Command("status", "resolved", 1)),
        ("  #status\u00a0triaged", Command("status", "triaged", 1)),
        ("\ufeff#status triaged", Command("status", "triaged", 1)),
        ("#severity low", Command("severity", "low", 1)),
        ("#severity medium", Command("severity", "medium", 1)),
        ("#severity High", Command("severity", "high", 1)),
        ("#severity critical", Command("severity", "critical", 1)),
        ("#assign alice", Command("assign", "alice", 1)),
        ("#assign alice@example.com", Command("assign", "alice@example.com", 1)),
        ("#eta 2027-01-15", Command("eta", "2027-01-15", 1, eta=date(2027, 1, 15))),
        ("#eta 2028-02-29", Command("eta", "2028-02-29", 1, eta=date(2028, 2, 29))),
        ("#internal", Command("internal", None, 1)),
        ("#wait", Command("wait", None, 1)),
        ("#resume", Command("resume", None, 1)),
        ("#attach", Command("attach", None, 1)),
        ("#Resume   ", Command("resume", None, 1)),
        ('#credit "Jane Doe"', Command("credit", "Jane Doe", 1)),
        ("#credit \u201cJos\u00e9 N\u00fa\u00f1ez\u201d", Command("credit", "Jos\u00e9 N\u00fa\u00f1ez", 1)),
        ("#credit \u201eAnna M\u00fcller\u201c", Command("credit", "Anna M\u00fcller", 1)),
        ("#bounty 500 EUR", Command("bounty", "500 EUR", 1, amount=Decimal("500"), currency="EUR")),
        ("#bounty 1250.50 usd", Command("bounty", "1250.50 USD", 1, amount=Decimal("1250.50"), currency="USD")),
        ("#bounty 0 EUR", Command("bounty", "0 EUR", 1, amount=Decimal("0"), currency="EUR")),
    ],
)
def test_valid_commands(line: str, expected: Command) -> None:
    assert only(parse_staff_reply(line + "\n\nThanks.\n")) == expected


def test_assessment_with_eta() -> None:
    reply = parse_staff_reply("#assessment\n#eta 2027-01-15\n\nWe confirmed the issue.\n")
    assert reply.errors == ()
    assert [command.name for command in reply.commands] == ["assessment", "eta"]
    assert reply.command("eta") == Command("eta", "2027-01-15", 2, eta=date(2027, 1, 15))
    assert reply.text == "We confirmed the issue.\n"
    assert reply.ok


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("#stauts triaged", "line 1: unknown command #stauts (did you mean #status?)"),
        ("#severty high", "line 1: unknown command #severty (did you mean #severity?)"),
        ("#frobnicate", "line 1: unknown command #frobnicate (known: #status,"),
        ("#status", "line 1: #status needs a value, e.g. #status triaged"),
        ("#status done", "line 1: #status 'done' is not one of triaged|accepted|"),
        ("#status triage", "is not one of"),
        ("#status out of scope", "is not one of"),
        ("#status triaged now", "line 1: #status triaged takes nothing after it"),
        ("#status duplicate", "line 1: #status duplicate needs the original's tracking id"),
        ("#status duplicate #42", "is not a tracking id like SEC-2026-0001"),
        ("#status duplicate SEC-2026-0001 SEC-2026-0002", "is not a tracking id"),
        ("#status: triaged", "line 1: cannot read '#status: triaged'"),
        ("#status=triaged", "cannot read"),
        ("#severity", "#severity needs a value"),
        ("#severity urgent", "line 1: #severity 'urgent' is not one of low|medium|high|critical"),
        ("#severity high!", "is not one of"),
        ("#severity very high", "is not one of"),
        ("#assign", "#assign needs a value"),
        ("#assign Alice Smith", "#assign needs one staff name without spaces"),
        ("#eta", "#eta needs a value"),
        ("#eta 2027-02-30", "line 1: #eta 2027-02-30 is not a real date"),
        ("#eta 2027-13-01", "#eta 2027-13-01 is not a real date"),
        ("#eta 2027-1-15", "#eta needs a date as YYYY-MM-DD"),
        ("#eta 15.01.2027", "#eta needs a date as YYYY-MM-DD"),
        ("#eta 20270115", "#eta needs a date as YYYY-MM-DD"),
        ("#eta next week", "#eta needs a date as YYYY-MM-DD"),
        ("#eta 2027-01-15T10:00", "#eta needs a date as YYYY-MM-DD"),
        ("#internal please", "line 1: #internal takes no value"),
        ("#wait 3 days", "#wait takes no value"),
        ("#resume now", "#resume takes no value"),
        ("#attach all", "#attach takes no value"),
        ("#assessment done", "#assessment takes no value"),
        ("#credit", "#credit needs a value"),
        ("#credit Jane Doe", "#credit needs a name in quotes"),
        ('#credit ""', "#credit needs a name in quotes"),
        ('#credit "Jane', "#credit needs a name in quotes"),
        ('#credit "Jane" "Doe"', "#credit needs a name in quotes"),
        ('#credit "' + "x" * 300 + '"', "at most 200 characters"),
        ("#bounty", "#bounty needs a value"),
        ("#bounty 500", "#bounty needs an amount and a currency code"),
        ("#bounty EUR 500", "#bounty needs an amount and a currency code"),
        ("#bounty 1,000 EUR", "#bounty needs an amount and a currency code"),
        ("#bounty -5 EUR", "#bounty needs an amount and a currency code"),
        ("#bounty 5.001 EUR", "#bounty needs an amount and a currency code"),
        ("#bounty 500 euros", "#bounty needs an amount and a currency code"),
        ("#bounty 500 €", "#bounty needs an amount and a currency code"),
        ("#bounty NaN EUR", "#bounty needs an amount and a currency code"),
        ("#status " + "x" * 600, "line 1: command line longer than 500 characters"),
    ],
)
def test_invalid_commands(line: str, error: str) -> None:
    reply = parse_staff_reply(line + "\n\nThanks.\n")
    assert len(reply.errors) == 1
    assert reply.errors[0].startswith(error) or error in reply.errors[0]
    assert "\n" not in reply.errors[0] and len(reply.errors[0]) < 300
    assert reply.commands == ()
    assert reply.text == "Thanks.\n"
    assert not reply.ok


def test_assessment_without_eta_is_an_error() -> None:
    reply = parse_staff_reply("#assessment\n\nWe confirmed it.\n")
    assert reply.errors == ("#assessment needs #eta YYYY-MM-DD",)
    assert reply.commands == (Command("assessment", None, 1),)


def test_eta_without_assessment_is_allowed() -> None:
    assert only(parse_staff_reply("#eta 2027-01-15\nThe fix ships in January.\n")).eta == date(2027, 1, 15)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("#status triaged\n#status fixing\n", "line 2: #status given twice (first on line 1)"),
        ("#internal\n\n#INTERNAL\n", "line 3: #internal given twice (first on line 1)"),
        ("#wait\n#resume\n", "#wait and #resume contradict each other"),
        ("#assessment\n#eta 2027-01-15\n#internal\n", "#assessment goes to the reporter and #internal does not"),
    ],
)
def test_conflicting_commands(text: str, error: str) -> None:
    (found,) = parse_staff_reply(text).errors
    assert found.startswith(error)


def test_errors_keep_the_commands_as_parsed() -> None:
    reply = parse_staff_reply("#status triaged\n#stauts fixing\n#severity high\n\nHi\n")
    assert [command.name for command in reply.commands] == ["status", "severity"]
    assert reply.errors == ("line 2: unknown command #stauts (did you mean #status?)",)
    assert reply.text == "Hi\n"


def test_every_problem_is_reported() -> None:
    reply = parse_staff_reply("#assessment\n#eta 2027-02-30\n#severity huge\n")
    assert reply.errors == (
        "line 2: #eta 2027-02-30 is not a real date",
        "line 3: #severity 'huge' is not one of low|medium|high|critical",
        "#assessment needs #eta YYYY-MM-DD",
    )


@pytest.mark.parametrize(
    "text",
    [
        "Thanks for the report.\n#status resolved\n",
        "Hi,\n\n#status resolved\n#severity high\n",
        "We fixed it. #status resolved\n",
        "Hi\n\n#internal\n",
        "Great find! #bugbounty #infosec\n",
        "#1 priority for us.\n#status resolved\n",
        "## Summary\n#status resolved\n",
        "#\n#status resolved\n",
        "Thanks.\n\n-- \nAlice\n#stauts\n",
    ],
)
def test_commands_after_text_are_prose(text: str) -> None:
    assert parse_staff_reply(text) == StaffReply(commands=(), errors=(), text=text)


QUOTED = [
    pytest.param(
        "Thanks, looking into it.\n\nOn Mon, 23 Nov 2026 at 10:00, X <x@example.com> wrote:\n> #status resolved\n> #severity critical\n",
        id="top-posting-gmail",
    ),
    pytest.param(
        "On Mon, 23 Nov 2026 at 10:00, X <x@example.com> wrote:\n> #status resolved\n> details\n\nThanks, looking into it.\n",
        id="bottom-posting-gmail",
    ),
    pytest.param("> #status resolved\n> details\n\nAgreed.\n", id="bottom-posting-bare-quote"),
    pytest.param(">#status resolved\n", id="quote-without-space"),
    pytest.param(" > #status resolved\n", id="indented-quote"),
    pytest.param(
        "-----Original Message-----\nFrom: Alice\nSent: Monday\n\n#status resolved\n",
        id="outlook-original-message-only",
    ),
    pytest.param(
        "From: Researcher <r@example.org>\nSent: Monday, November 23, 2026 10:00 AM\nTo: security@example.com\nSubject: XSS\n\n#status resolved\n",
        id="outlook-header-block",
    ),
    pytest.param(
        "Am Mo., 23. Nov. 2026 um 10:00 Uhr schrieb X <x@example.com>:\n#status resolved\n",
        id="german-quote-header",
    ),
    pytest.param(
        "Le lun. 23 nov. 2026 \u00e0 10:00, X <x@example.com> a \u00e9crit :\n#status resolved\n",
        id="french-quote-header",
    ),
    pytest.param(
        "---------- Forwarded message ---------\nFrom: X <x@example.com>\n\n#status resolved\n",
        id="forwarded",
    ),
]


@pytest.mark.parametrize("text", QUOTED)
def test_quoted_and_forwarded_commands_are_ignored(text: str) -> None:
    assert parse_staff_reply(text) == StaffReply(commands=(), errors=(), text=text)


def test_top_posted_commands_above_a_gmail_quote() -> None:
    text = "#status triaged\n\nThanks, looking into it.\n\nOn Mon, 23 Nov 2026 at 10:00, X <x@example.com> wrote:\n> #status resolved\n> #severity critical\n"
    reply = parse_staff_reply(text)
    assert reply.commands == (Command("status", "triaged", 1),)
    assert reply.errors == ()
    assert reply.text == text.split("\n\n", 1)[1]


def test_commands_followed_directly_by_an_outlook_quote() -> None:
    text = "#status fixing\r\n-----Original Message-----\r\nFrom: X\r\nSent: Monday\r\n\r\n#status resolved\r\n#internal\r\n"
    reply = parse_staff_reply(text)
    assert reply.commands == (Command("status", "fixing", 1),)
    assert reply.text == text.removeprefix("#status fixing\r\n")


def test_crlf_input() -> None:
    text = "\r\n#Status Triaged\r\n#eta 2027-01-15\r\n\r\nHello,\r\nwe are on it.\r\n\r\n> #status resolved\r\n"
    reply = parse_staff_reply(text)
    assert reply.commands == (Command("status", "triaged", 2), Command("eta", "2027-01-15", 3, eta=date(2027, 1, 15)))
    assert reply.errors == ()
    assert reply.text == "Hello,\r\nwe are on it.\r\n\r\n> #status resolved\r\n"


def test_bare_cr_lines() -> None:
    reply = parse_staff_reply("#severity low\rok\r")
    assert reply.commands == (Command("severity", "low", 1),)
    assert reply.text == "ok\r"


def test_html_converted_reply() -> None:
    html = (
        "<html><body><div>#Status&nbsp;triaged</div><div>#severity high</div><div><br></div>"
        "<div>Thanks, we are on it.</div><div class=gmail_quote>"
        "<div>On Mon, 23 Nov 2026 at 10:00, X &lt;x@example.com&gt; wrote:<br></div>"
        "<blockquote>#status resolved<br>hello</blockquote></div></body></html>"
    )
    text = get_text(html).strip()
    reply = parse_staff_reply(text)
    assert reply.commands == (Command("status", "triaged", 1), Command("severity", "high", 2))
    assert reply.errors == ()
    assert reply.text.lstrip().startswith("Thanks, we are on it.")
    assert "#status resolved" in reply.text


def test_html_paragraphs() -> None:
    reply = parse_staff_reply(get_text("<p>#status triaged</p><p>#eta 2027-01-15</p><p>Hi</p>"))
    assert [command.name for command in reply.commands] == ["status", "eta"]
    assert reply.text == "Hi\n"


def test_text_has_only_the_command_block_removed() -> None:
    body = "Hello,\n\n  indented line\t\n#not-a-command here\n\n> quoted\n\n-- \nAlice"
    reply = parse_staff_reply("\n\n#status accepted\n\n#severity medium\n\n" + body)
    assert reply.text == body
    assert len(reply.commands) == 2


def test_text_without_commands_is_unchanged() -> None:
    text = "\n\n  Hello\r\n\u00a0\n#hashtag\n"
    assert parse_staff_reply(text) == StaffReply(commands=(), errors=(), text=text)


@pytest.mark.parametrize("text", ["", "\n", "\r\n\r\n", "   "])
def test_empty_replies(text: str) -> None:
    assert parse_staff_reply(text) == StaffReply(commands=(), errors=(), text=text)


def test_commands_only() -> None:
    reply = parse_staff_reply("#wait")
    assert reply.commands == (Command("wait", None, 1),)
    assert reply.text == ""


def test_line_numbers_count_leading_blank_lines() -> None:
    assert parse_staff_reply("\n\n#stauts x\n").errors == ("line 3: unknown command #stauts (did you mean #status?)",)


def test_hostile_values_are_shown_bounded_on_one_line() -> None:
    reply = parse_staff_reply("#severity " + "\x1b[31m" * 20 + "\u2028x\n")
    (error,) = reply.errors
    assert "\x1b" not in error and "\u2028" not in error and len(error) < 200


def test_large_reply_is_read_only_at_the_top() -> None:
    text = "#status fixing\nbody\n" + "#status resolved\n" * 100_000
    reply = parse_staff_reply(text)
    assert reply.commands == (Command("status", "fixing", 1),)
    assert reply.errors == ()


@given(st.text(max_size=500))
def test_arbitrary_text_never_raises(text: str) -> None:
    reply = parse_staff_reply(text)
    assert isinstance(reply.text, str)
    assert all("\n" not in error and "\r" not in error for error in reply.errors)
    if not reply.commands and not reply.errors:
        assert reply.text == text


@given(st.lists(st.sampled_from(["#status triaged", "#severity low", "", "#eta 2027-01-15", "#wait"]), max_size=6), st.text(max_size=80))
def test_text_is_the_input_minus_the_command_block(block: list[str], rest: str) -> None:
    body = "Body " + rest
    text = "".join(line + "\n" for line in block) + body
    reply = parse_staff_reply(text)
    expected = body if any(block) else text
    assert reply.text == expected


def test_every_command_is_in_the_help_list_staff_get() -> None:
    from mailintake.conversation.commands.registry import COMMAND_NAMES, help_list

    listed = " ".join(f"{usage} {text}" for usage, text in help_list())
    assert [name for name in COMMAND_NAMES if f"#{name}" not in listed] == []
