"""Hostile checklist cases 7–13: machine mail, our own mail coming back, floods and other
help desks must never start a mail loop. A real daemon, relay sink and database."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailintake.storage.db import transaction
from mailintake.storage.models import MilestoneRecord, OutboxMessage, Report
from tests.hostile.helpers import LEADS, SECURITY, TEAM, Stack, message_id, with_headers
from tests.integration.helpers import FIXTURES, STAFF, mail, outbox, plain, report_mail, reports, run_cli, send, wait_until_processed
from tests.integration.relay import Received, Relay

pytestmark = pytest.mark.slow

AUTO_REPLIES_PER_HOUR = 3
STACK_OVERRIDES = {"outbox": {"auto_replies_per_hour": AUTO_REPLIES_PER_HOUR}}
HELPDESK_ROUNDS = 8


def dsn(recipient: str) -> bytes:
    """A delivery status notification (RFC 3464) as an MTA sends it."""
    return (
        f"From: Mail Delivery System <bounces@mx.example.net>\r\nTo: {recipient}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Date: Tue, 24 Nov 2026 10:00:00 +0100\r\nMessage-ID: <dsn-7d1@mx.example.net>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="dsn"\r\n\r\n'
        "--dsn\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--dsn\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
        "Final-Recipient: rfc822; gone@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--dsn--\r\n"
    ).encode()


def assert_machine_mail_is_stored_and_unanswered(stack: Stack, raw: bytes, envelope_from: str, reason: str) -> None:
    """Stored as a report marked with why it is machine mail; no deadlines, no outbox row
    (no acknowledgement, no staff notification) and nothing reaches its sender."""
    report = stack.report_of(stack.deliver(raw, envelope_from))
    assert report.automated is not None and reason in report.automated, report.automated
    assert report.milestones == []
    assert stack.outbox(report.id) == []
    stack.quiet()
    senders = {envelope_from.lower(), (report.reporter.address if report.reporter else "").lower()} - {""}
    assert [item for item in stack.relay.received if senders & {address.lower() for address in item.rcpt_tos}] == []


AUTO_RESPONDERS = {
    "auto-replied": (b"Auto-Submitted: auto-replied", "Auto-Submitted: auto-replied"),
    "auto-generated": (b"Auto-Submitted: auto-generated", "Auto-Submitted: auto-generated"),
    "auto-notified": (b"Auto-Submitted: auto-notified; owner-email=x@example.net", "Auto-Submitted: auto-notified"),
    "x-auto-response-suppress": (b"X-Auto-Response-Suppress: All", "X-Auto-Response-Suppress"),
}


@pytest.mark.parametrize("kind", AUTO_RESPONDERS)
def test_case_07_auto_submitted_gets_no_acknowledgement(stack: Stack, kind: str) -> None:
    header, reason = AUTO_RESPONDERS[kind]
    sender = f"{kind}@responders.example.net"
    raw = with_headers(mail(sender, SECURITY, "Out of office", "I am away until Monday.\n"), header)
    assert_machine_mail_is_stored_and_unanswered(stack, raw, sender, reason)


def test_case_07_auto_submitted_no_is_a_person_and_is_acknowledged(stack: Stack) -> None:
    sender = "person@responders.example.net"
    report = stack.report_of(stack.deliver(with_headers(mail(sender, SECURITY, "SQL injection", "In /api/orders\n"), b"Auto-Submitted: no"), sender))
    assert report.automated is None
    assert [item.rcpt_tos for item in stack.mails_of(report.id)].count([sender]) == 1


LISTS = {
    "precedence-bulk": (b"Precedence: bulk", "Precedence: bulk"),
    "precedence-junk": (b"Precedence: junk", "Precedence: junk"),
    "precedence-list": (b"Precedence: list", "Precedence: list"),
    "list-id": (b"List-Id: Announcements <announce.lists.example.net>", "List-Id"),
    "list-unsubscribe": (b"List-Unsubscribe: <mailto:leave@lists.example.net>", "List-Unsubscribe"),
}


@pytest.mark.parametrize("kind", LISTS)
def test_case_08_precedence_and_list_mail_gets_no_acknowledgement(stack: Stack, kind: str) -> None:
    header, reason = LISTS[kind]
    sender = f"{kind}@lists.example.net"
    raw = with_headers(mail(sender, SECURITY, "Weekly newsletter", "Our security tips of the week.\n"), header)
    assert_machine_mail_is_stored_and_unanswered(stack, raw, sender, reason)


def test_case_09_null_sender_gets_no_acknowledgement(stack: Stack) -> None:
    raw = mail("Someone <someone@bounces.example.net>", SECURITY, "Delivery report", "Returned mail.\n")
    assert_machine_mail_is_stored_and_unanswered(stack, raw, "", "null envelope sender")


@pytest.mark.parametrize("robot", ["MAILER-DAEMON@mx.example.net", "postmaster@mx.example.net"])
def test_case_09_mailer_daemon_and_postmaster_get_no_acknowledgement(stack: Stack, robot: str) -> None:
    raw = mail(f"Mail System <{robot}>", SECURITY, "Undeliverable", "Returned mail.\n")
    assert_machine_mail_is_stored_and_unanswered(stack, raw, robot, f"sender is {robot.split('@')[0].lower()}")


def test_case_09_delivery_status_notification_gets_no_acknowledgement(stack: Stack) -> None:
    sender = "bounces@mx.example.net"
    assert_machine_mail_is_stored_and_unanswered(stack, dsn(SECURITY), sender, "multipart/report")


@pytest.mark.parametrize("fixture", ["auto-reply.eml", "bounce-dsn.eml"])
def test_case_07_09_auto_replies_and_bounces_are_stored_and_cause_no_mail(daemon_factory, sessions: sessionmaker[Session], fixture: str) -> None:
    daemon = daemon_factory(**STAFF)
    relay = Relay(daemon.relay_port).start()
    try:
        sender = "" if fixture == "bounce-dsn.eml" else "m.kowalczyk@example.net"
        with smtplib.SMTP("127.0.0.1", daemon.port, timeout=30) as client:
            client.sendmail(sender, ["security@example.com"], (FIXTURES / fixture).read_bytes())
        wait_until_processed(sessions, 1)
        assert run_cli(daemon.config_path, "sla", "check", "--now", (datetime.now().astimezone() + timedelta(days=10)).isoformat()).returncode == 0
        time.sleep(1.5)
        [report] = reports(sessions)
        assert report.automated
        assert outbox(sessions) == [] and relay.received == []
        with transaction(sessions) as session:
            assert session.scalars(select(MilestoneRecord)).all() == []
    finally:
        relay.stop()


def test_case_08_mailing_list_mail_is_not_answered(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory(**STAFF)
    raw = report_mail().replace(b"Subject:", b"List-Id: <announce.lists.example.org>\r\nPrecedence: list\r\nSubject:", 1)
    send(daemon.port, raw)
    wait_until_processed(sessions, 1)
    assert reports(sessions)[0].automated == "Precedence: list"
    assert outbox(sessions) == []


def test_case_10_own_ack_reflected_is_dropped(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory(**STAFF)
    relay = Relay(daemon.relay_port).start()
    try:
        send(daemon.port, report_mail())
        relay.wait_for(2)
        for item in relay.received:
            send(daemon.port, item.content, sender="security@example.com")
        wait_until_processed(sessions, 3)
        time.sleep(2)
        assert len(relay.received) == 2
        assert [report.automated for report in reports(sessions)] == [None, "sent from our own address", "sent from our own address"]
    finally:
        relay.stop()


def test_case_10_own_ack_reflected_by_another_sender_is_dropped(stack: Stack) -> None:
    """Our acknowledgement bounced back by some forwarder that keeps our headers (our
    Message-ID and X-Loop) but not our sender: still ours, still not answered."""
    sender = "loop-origin@example.org"
    report, ack, _ = stack.new_report(sender)
    reflected = ack.content.replace(b"From: ", b"X-Original-From: ", 1).replace(b"\r\n\r\n", b"\r\nFrom: forwarder@relay.example.net\r\n\r\n", 1)
    echo = stack.report_of(stack.deliver(reflected, "forwarder@relay.example.net"))
    assert echo.id != report.id and echo.automated is not None
    assert stack.outbox(echo.id) == []
    stack.quiet()
    assert stack.relay.to("forwarder@relay.example.net") == [] and len(stack.relay.to(sender)) == 1


def test_case_11_flood_of_50_mails_gets_at_most_the_configured_acknowledgements(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory(outbox={"auto_replies_per_hour": 5}, **STAFF)
    for number in range(50):
        sender = "flood@example.org" if number % 2 else "Flood@Example.ORG"
        send(daemon.port, report_mail(message_id=f"<flood-{number}@example.org>", body=f"flood {number}"), sender=sender)
    wait_until_processed(sessions, 50)
    kinds = [row.kind for row in outbox(sessions)]
    assert kinds.count("acknowledgement") == 5 and kinds.count("staff_notification") == 50
    assert sum(report.automated == "no acknowledgement: hourly limit for this sender" for report in reports(sessions)) == 45


def test_case_12_ack_goes_to_the_envelope_sender_auto_submitted_and_threaded(stack: Stack) -> None:
    envelope, author = "bounce-handler@mail.example.org", "alice@example.org"
    raw = mail(f"Alice <{author}>", SECURITY, "IDOR in /api/users", "Any id works.\n", message_id="<case12-report@example.org>")
    report = stack.report_of(stack.deliver(raw, envelope))
    [ack] = [item for item in stack.mails_of(report.id) if item.rcpt_tos != [TEAM]]
    message = ack.message
    assert ack.rcpt_tos == [envelope]
    assert [address.addr_spec for address in message["To"].addresses] == [envelope]
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["In-Reply-To"] == "<case12-report@example.org>"
    assert "<case12-report@example.org>" in message["References"].split()
    assert message["Subject"].startswith(f"[{report.tracking_id}]")
    assert stack.relay.to(author) == []


def helpdesk_answer(ours: Received, ticket: int, helpdesk: str, answer_to: str) -> bytes:
    """A ticket system's "we received your mail": a new subject each time, no Auto-Submitted
    or Precedence, no threading headers, quoting what it got."""
    quoted = "\n".join("> " + line for line in ours.message.get_body(("plain",)).get_content().splitlines()[:5])
    return mail(
        f"Example Helpdesk <{helpdesk}>",
        answer_to,
        f"[Ticket#{ticket}] We received your mail",
        f"Dear customer,\n\nwe received your mail and opened ticket {ticket}. We will get back to you.\n\n{quoted}\n",
        message_id=f"<ticket-{ticket}-{helpdesk.split('@')[0]}@helpdesk.example.net>",
    )


def helpdesk_first_mail(helpdesk: str) -> bytes:
    """How it starts: someone opened a ticket there with our address as the customer's."""
    return mail(
        f"Example Helpdesk <{helpdesk}>",
        SECURITY,
        "[Ticket#1000] Your request has been received",
        "Dear customer,\n\nwe received your request and opened ticket 1000.\n",
        message_id=f"<ticket-1000-{helpdesk.split('@')[0]}@helpdesk.example.net>",
    )


def mails_per_report(rows: list[OutboxMessage]) -> dict[int | None, int]:
    counts: dict[int | None, int] = {}
    for row in rows:
        counts[row.report_id] = counts.get(row.report_id, 0) + 1
    return counts


def ping_pong(stack: Stack, helpdesk: str, answer_to: Callable[[Received], str]) -> tuple[list[Report], list[OutboxMessage]]:
    """Let the help desk answer every mail we send it, for at most HELPDESK_ROUNDS rounds;
    the reports made from its mail and our outbox rows addressed to it."""
    first = stack.report_of(stack.deliver(helpdesk_first_mail(helpdesk), helpdesk))
    answered: set[str] = set()
    ticket = 1001
    for _ in range(HELPDESK_ROUNDS):
        stack.quiet()
        waiting = [item for item in stack.relay.to(helpdesk) if message_id(item) not in answered]
        if not waiting:
            break
        for item in waiting:
            answered.add(message_id(item))
            stack.deliver(helpdesk_answer(item, ticket, helpdesk, answer_to(item)), helpdesk, [answer_to(item)])
            ticket += 1
    else:
        pytest.fail(f"the ping-pong did not stop: {len(stack.relay.to(helpdesk))} mails to the help desk after {HELPDESK_ROUNDS} rounds")
    reports_of_helpdesk = [report for report in [first, *stack.reports_after(first.id)] if report.reporter and report.reporter.address == helpdesk]
    return reports_of_helpdesk, [row for report in reports_of_helpdesk for row in stack.outbox(report.id) if helpdesk in row.recipients]


def mentions_any(item: Received, tracking_ids: set[str]) -> bool:
    text = str(item.message["Subject"]) + "\n" + plain(item)
    return any(tracking_id in text for tracking_id in tracking_ids)


def test_case_13_help_desk_answering_our_reply_to_joins_the_thread_and_the_exchange_stops(stack: Stack) -> None:
    helpdesk = "support-reply-to@helpdesk.example.net"
    reports_of_helpdesk, to_helpdesk = ping_pong(stack, helpdesk, lambda ours: ours.message["Reply-To"].addresses[0].addr_spec)
    [report] = reports_of_helpdesk
    assert len(to_helpdesk) == 1
    assert [message.kind for message in stack.report(report.id).messages] == ["report", "reporter_reply"]
    assert any("we received your mail" in plain(item) for item in stack.relay.to(TEAM) if mentions_any(item, {report.tracking_id}))


def test_case_13_help_desk_answering_our_envelope_sender_stops_per_thread_and_staff_are_alerted(stack: Stack) -> None:
    """As RFC 3834 tells auto-responders to: to the Return-Path, security@ itself. Each
    answer is a new mail, with a new subject and no reference to ours."""
    helpdesk = "support-return-path@helpdesk.example.net"
    reports_of_helpdesk, to_helpdesk = ping_pong(stack, helpdesk, lambda ours: ours.mail_from)
    assert 1 <= len(to_helpdesk) <= AUTO_REPLIES_PER_HOUR
    assert all(count == 1 for count in mails_per_report(to_helpdesk).values()), "a thread got more than one automatic mail"
    tracking_ids = {report.tracking_id for report in reports_of_helpdesk}
    alerts = [item for item in stack.relay.to(LEADS) if mentions_any(item, tracking_ids)]
    assert alerts, f"{len(to_helpdesk)} automatic mails went to the help desk, {len(reports_of_helpdesk)} reports were opened from its answers, and [staff] alerts heard nothing"
