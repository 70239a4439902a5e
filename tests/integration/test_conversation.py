"""Two-way conversation through a real daemon, a real aiosmtpd relay and a real DNS server
on loopback: staff answer from their mail client, reporters reply in the thread, and
nobody writes into a report that is not theirs. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import smtplib
import time
from collections.abc import Iterator
from datetime import date, timedelta
from email.utils import make_msgid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from mailintake.storage.db import transaction
from mailintake.storage.models import Report
from tests.daemon import REPO
from tests.dkim_keys import dkim_txt_record
from tests.dns_server import TxtDnsServer
from tests.integration.helpers import mail, plain, report_mail, run_cli, send, side_address, signed, wait_for_outbox, wait_until_processed
from tests.integration.relay import Received, Relay

pytestmark = pytest.mark.slow

REPLIES = REPO / "tests" / "fixtures" / "mail" / "replies"
TEAM, LEADS, BOB = "team@example.com", "leads@example.com", "bob@example.com"
RESEARCHER = "researcher@example.org"
POLICY_A = (REPO / "presets" / "policy-a.toml").read_text()
ETA = (date.today() + timedelta(days=60)).isoformat()


@pytest.fixture(scope="module")
def dns_server() -> Iterator[tuple[str, int]]:
    server = TxtDnsServer({"sel._domainkey.example.com": dkim_txt_record(), "sel._domainkey.evil.test": dkim_txt_record()})
    with server as address:
        yield address


@pytest.fixture
def conversation(daemon_factory, dns_server: tuple[str, int]):
    host, port = dns_server

    def start(extra: str = POLICY_A, **staff: object):
        settings = {"notify": [TEAM], "alerts": [LEADS], "members": ["example.com"], "dns_server": f"{host}:{port}"} | staff
        daemon = daemon_factory(staff=settings, calendar={"timezone": "Europe/Amsterdam", "country": "NL"}, extra=extra)
        return daemon, Relay(daemon.relay_port).start()

    return start


def deliver(port: int, raw: bytes, recipient: str, sender: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(sender, [recipient], raw)


def report_named(sessions: sessionmaker[Session], tracking_id: str) -> Report:
    with transaction(sessions) as session:
        return session.scalars(select(Report).where(Report.tracking_id == tracking_id).options(selectinload(Report.messages), selectinload(Report.milestones))).one()


def all_reports(sessions: sessionmaker[Session]) -> list[Report]:
    with transaction(sessions) as session:
        return list(session.scalars(select(Report).options(selectinload(Report.messages)).order_by(Report.id)))


def new_report(daemon, relay: Relay, sessions: sessionmaker[Session], sender: str = RESEARCHER, body: str = "Reflected XSS in /search?q=\nSuggested severity: high\n") -> tuple[Report, Received, Received]:
    before = len(relay.received)
    send(daemon.port, report_mail(sender=sender, body=body, message_id=make_msgid(domain="example.org")), sender=sender)
    relay.wait_for(before + 2)
    report = all_reports(sessions)[-1]
    [ack] = [item for item in relay.to(sender) if report.tracking_id in item.message["Subject"]][-1:]
    [notification] = [item for item in relay.to(TEAM) if report.tracking_id in item.message["Subject"]][-1:]
    return report, ack, notification


def quoted(text: str) -> str:
    return "\n".join("> " + line for line in text.splitlines())


def test_full_lifecycle_meets_every_milestone(conversation, sessions: sessionmaker[Session]) -> None:
    daemon, relay = conversation()
    try:
        report, ack, notification = new_report(daemon, relay, sessions)
        staff_side = notification.message["Reply-To"].addresses[0].addr_spec
        reporter_side = ack.message["Reply-To"].addresses[0].addr_spec
        assert staff_side == side_address(report.id, "staff") and reporter_side == side_address(report.id, "reporter")

        assessment = (
            f"#assessment\n#eta {ETA}\n#severity high\n\n"
            "We reproduced the reflected XSS and rate it high.\n\n-- \nBob Builder\nbob@example.com | +31 20 555 0100\n\n"
            f"On Tue, 24 Nov 2026 at 09:00, Example Corp Security <{staff_side}> wrote:\n{quoted(plain(notification))}\n"
        )
        deliver(daemon.port, signed(mail(f"Bob Builder <{BOB}>", staff_side, f"RE: {notification.message['Subject']}", assessment, in_reply_to=notification.message["Message-ID"])), staff_side, BOB)
        relay.wait_for(3)
        [relayed] = [item for item in relay.to(RESEARCHER) if item is not ack]
        text = plain(relayed)
        assert relayed.mail_from == "security@example.com"
        assert relayed.message["From"].addresses[0].addr_spec == "security@example.com"
        assert relayed.message["Reply-To"].addresses[0].addr_spec == reporter_side
        assert relayed.message["In-Reply-To"] == ack.message["Message-ID"]
        assert "We reproduced the reflected XSS" in text and f"Expected resolution date: {ETA}" in text
        for leak in ("bob@example.com", "Bob Builder", "#assessment", "#severity", staff_side, "Report text", "+31 20"):
            assert leak not in relayed.content.decode("utf-8", "replace")
        assert f"[{report.tracking_id}]" in relayed.message["Subject"]

        reply = mail(f"A Researcher <{RESEARCHER}>", reporter_side, f"Re: {relayed.message['Subject']}", "Thanks! It also works on /profile.\n", in_reply_to=relayed.message["Message-ID"])
        deliver(daemon.port, reply, reporter_side, RESEARCHER)
        relay.wait_for(4)
        [forwarded] = [item for item in relay.to(TEAM) if item is not notification]
        assert "It also works on /profile." in plain(forwarded)
        assert forwarded.message["Reply-To"].addresses[0].addr_spec == staff_side

        resolution = f'#status resolved\n#credit "A. Researcher"\n#bounty 500 EUR\n\nFixed in release 2.3.1.\n\nOn Wed, A Researcher wrote:\n{quoted(plain(forwarded))}\n'
        deliver(daemon.port, signed(mail(BOB, staff_side, f"Re: {forwarded.message['Subject']}", resolution)), staff_side, BOB)
        relay.wait_for(5)
        notice = [item for item in relay.to(RESEARCHER) if item not in (ack, relayed)][-1]
        assert "has been resolved" in plain(notice) and "Fixed in release 2.3.1." in plain(notice) and "A. Researcher" in plain(notice)
        wait_for_outbox(sessions, lambda rows: all(row.status == "sent" for row in rows))
    finally:
        relay.stop()
    finished = report_named(sessions, report.tracking_id)
    assert finished.status == "resolved" and finished.severity == "high" and finished.eta == date.fromisoformat(ETA) and finished.credit_as == "A. Researcher"
    assert finished.bounty == "500 EUR" and "500 EUR" not in plain(notice)
    milestones = {record.name: record for record in finished.milestones}
    assert set(milestones) == {"acknowledge", "assess", "update", "resolve", "notify_resolved"}
    assert all(record.met_at is not None for record in milestones.values()), {name: record.met_at for name, record in milestones.items()}
    assert milestones["acknowledge"].met_by == "automatic acknowledgement"
    assert milestones["assess"].met_by == BOB and milestones["resolve"].met_by == BOB and milestones["notify_resolved"].met_by == BOB
    assert not any(record.awaiting for record in milestones.values())
    kinds = [message.kind for message in finished.messages]
    assert kinds == ["report", "staff_reply", "relayed", "reporter_reply", "staff_reply", "notice"]
    shown = run_cli(daemon.config_path, "reports", "show", report.tracking_id)
    assert shown.returncode == 0, shown.stderr
    order = [shown.stdout.index(f"--- {kind}") for kind in ("report", "staff_reply", "relayed", "reporter_reply", "notice")]
    assert order == sorted(order)
    assess_line = next(line for line in shown.stdout.splitlines() if line.strip().startswith("assess "))
    assert " met 20" in assess_line and assess_line.endswith(f"by {BOB}")
    detail = json.loads(run_cli(daemon.config_path, "reports", "show", report.tracking_id, "--json").stdout)
    assert [message["kind"] for message in detail["messages"]] == kinds
    assert {item["name"]: item["met_by"] for item in detail["milestones"]}["assess"] == BOB


def test_bad_commands_are_explained_to_staff_and_nothing_reaches_the_reporter(conversation, sessions: sessionmaker[Session]) -> None:
    daemon, relay = conversation()
    try:
        report, ack, notification = new_report(daemon, relay, sessions)
        staff_side = side_address(report.id, "staff")
        deliver(daemon.port, signed(mail(BOB, staff_side, "Re: x", "#stauts triaged\n#eta 2001-01-01\n\nWe are looking into it.\n")), staff_side, BOB)
        deliver(daemon.port, signed(mail(BOB, staff_side, "Re: y", "#assessment\n#eta 2001-02-03\n\nLooks bad.\n")), staff_side, BOB)
        deliver(daemon.port, signed(mail(BOB, staff_side, "Re: z", "#internal\n#assign bob\n\nAsked the platform team; do not tell the reporter yet.\n")), staff_side, BOB)
        deliver(daemon.port, signed(mail(BOB, staff_side, "Re: w", "Hi team,\n#internal\nThe fix slips to next quarter; do not tell the reporter.\n")), staff_side, BOB)
        # a quote header no client library knows (Polish Outlook): the quoted staff mail is caught by its marker
        polish = f"Thanks, we are on it.\n\nOd: Example Corp Security\nWysłano: wtorek, 24 listopada 2026 10:00\n\n{plain(notification)}"
        deliver(daemon.port, signed(mail(BOB, staff_side, "Re: v", polish)), staff_side, BOB)
        wait_until_processed(sessions, 6)
        relay.wait_for(6)
        time.sleep(1)
        errors = relay.to(BOB)
        assert len(errors) == 4
        assert "unknown command #stauts (did you mean #status?)" in plain(errors[0])
        assert "#eta 2001-02-03 is in the past" in plain(errors[1])
        assert "#internal is below the start of your text" in plain(errors[2])
        assert "still contains quoted staff mail" in plain(errors[3])
        assert relay.to(RESEARCHER) == [ack]
    finally:
        relay.stop()
    stored = report_named(sessions, report.tracking_id)
    assert stored.status == "new" and stored.assignee == BOB
    assert [message.kind for message in stored.messages] == ["report", "refused_reply", "refused_reply", "internal_note", "refused_reply", "refused_reply"]


def test_anonymous_reporters_are_shown_to_staff_only_by_alias(conversation, sessions: sessionmaker[Session]) -> None:
    daemon, relay = conversation()
    try:
        report, ack, notification = new_report(daemon, relay, sessions, sender="whistle@anon.example", body="Please keep me anonymous.\nIDOR in /api/users/{id}\n")
        reporter_side = side_address(report.id, "reporter")
        deliver(daemon.port, mail("whistle@anon.example", reporter_side, "Re: more", "One more detail.\n"), reporter_side, "whistle@anon.example")
        relay.wait_for(3)
        [forwarded] = [item for item in relay.to(TEAM) if item is not notification]
    finally:
        relay.stop()
    alias = f"anonymous-{report.tracking_id.lower()}"
    for staff_mail in (notification, forwarded):
        assert "whistle@anon.example" not in staff_mail.content.decode("utf-8", "replace")
        assert alias in plain(staff_mail)


def test_with_auto_false_the_first_human_reply_acknowledges(conversation, sessions: sessionmaker[Session]) -> None:
    daemon, relay = conversation(extra=POLICY_A.replace("auto = true", "auto = false"))
    try:
        report, ack, notification = new_report(daemon, relay, sessions)
        assert not report_named(sessions, report.tracking_id).milestones[0].met_at
        staff_side = side_address(report.id, "staff")
        deliver(daemon.port, signed(mail(BOB, staff_side, "Re: x", "Thank you, we are looking into it.\n")), staff_side, BOB)
        relay.wait_for(3)
    finally:
        relay.stop()
    milestones = {record.name: record for record in report_named(sessions, report.tracking_id).milestones}
    assert milestones["acknowledge"].met_by == BOB and not milestones["acknowledge"].awaiting
    assert milestones["assess"].met_at is None


def test_replies_from_real_mail_clients_reach_the_reporter_as_only_what_staff_wrote(conversation, sessions: sessionmaker[Session]) -> None:
    """Outlook (HTML-only, RE:, winmail.dat), Gmail (top and bottom quote), Thunderbird,
    Apple Mail, mutt and a German Outlook (AW:) as the clients really send them."""
    from mailintake.conversation.reply_text import clean_staff_reply
    from mailintake.parse.headers import normalized_line_endings
    from mailintake.parse.message import parse_message

    fixtures = sorted(REPLIES.glob("*.eml"))
    assert len(fixtures) >= 8
    daemon, relay = conversation()
    try:
        report, ack, notification = new_report(daemon, relay, sessions)
        staff_side = side_address(report.id, "staff")
        for number, fixture in enumerate(fixtures, start=1):
            raw = normalized_line_endings(fixture.read_bytes())
            parsed = parse_message(raw)
            expected = clean_staff_reply(parsed.body_text, personal_addresses=(parsed.from_address,), public_address="security@example.com").text.strip()
            assert expected, fixture.name
            deliver(daemon.port, signed(raw), staff_side, parsed.from_address)
            relay.wait_for(2 + number)
            relayed = relay.received[-1]
            assert relayed.rcpt_tos == [RESEARCHER], fixture.name
            text = plain(relayed)
            content = relayed.content.decode("utf-8", "replace")
            assert expected.splitlines()[0] in text, fixture.name
            assert "Reply to this mail to answer the reporter" not in text, fixture.name
            assert "security+s1-" not in content and staff_side not in content, fixture.name
            assert parsed.from_address not in content.lower(), fixture.name
            assert parsed.from_name not in content, fixture.name
            assert relayed.message["Subject"] == f"Re: [{report.tracking_id}] {report.subject}", fixture.name
    finally:
        relay.stop()
    kinds = [message.kind for message in report_named(sessions, report.tracking_id).messages]
    assert kinds.count("relayed") == len(fixtures) and kinds.count("staff_reply") == len(fixtures)


def test_closing_statuses_send_their_explanation_or_the_staff_text(conversation, sessions: sessionmaker[Session]) -> None:
    daemon, relay = conversation()
    try:
        reports_and_acks = [new_report(daemon, relay, sessions, sender=f"r{number}@example.org") for number in range(3)]
        (first, _, _), (second, _, _), (third, _, _) = reports_and_acks
        commands = [
            (first, "#status duplicate SEC-1999-0001\n\nDuplicate.\n"),
            (first, f"#status duplicate {first.tracking_id}\n"),
            (first, f"#status duplicate {second.tracking_id}\n"),
            (second, "#status rejected\n\nThis is the documented behaviour of the search box; see our FAQ.\n"),
            (third, "#status out-of-scope\n"),
        ]
        for report, body in commands:
            staff_side = side_address(report.id, "staff")
            deliver(daemon.port, signed(mail(BOB, staff_side, "Re: x", body)), staff_side, BOB)
        wait_until_processed(sessions, 8)
        relay.wait_for(6 + 5)
        time.sleep(1)
        refusals = relay.to(BOB)
        assert len(refusals) == 2
        assert "there is no report SEC-1999-0001" in plain(refusals[0]) and "cannot be a duplicate of itself" in plain(refusals[1])
        [duplicate] = [item for item in relay.to("r0@example.org") if "Re: [" in item.message["Subject"]]
        [rejected] = [item for item in relay.to("r1@example.org") if "Re: [" in item.message["Subject"]]
        [out_of_scope] = [item for item in relay.to("r2@example.org") if "Re: [" in item.message["Subject"]]
    finally:
        relay.stop()
    assert "already been reported" in plain(duplicate) and second.tracking_id not in plain(duplicate)
    assert "documented behaviour of the search box" in plain(rejected) and "does not describe" not in plain(rejected)
    assert "outside the scope" in plain(out_of_scope)
    statuses = {report.tracking_id: (report.status, report.duplicate_of_id) for report in all_reports(sessions)}
    assert statuses == {first.tracking_id: ("duplicate", second.id), second.tracking_id: ("rejected", None), third.tracking_id: ("out-of-scope", None)}


def test_waiting_on_the_reporter_pauses_the_assessment_until_they_reply(conversation, sessions: sessionmaker[Session]) -> None:
    daemon, relay = conversation()
    try:
        report, ack, notification = new_report(daemon, relay, sessions)
        before = {record.name: record.due_at for record in report_named(sessions, report.tracking_id).milestones}
        staff_side, reporter_side = side_address(report.id, "staff"), side_address(report.id, "reporter")
        deliver(daemon.port, signed(mail(BOB, staff_side, "Re: x", "#wait\n\nWhich browser version did you use?\n")), staff_side, BOB)
        relay.wait_for(3)
        paused = {record.name: record for record in report_named(sessions, report.tracking_id).milestones}
        assert paused["assess"].due_at is None and not paused["assess"].awaiting
        status = json.loads(run_cli(daemon.config_path, "sla", "status", "--json").stdout)
        assert next(item for item in status if item["milestone"] == "assess")["state"] == "paused"
        deliver(daemon.port, signed(mail(BOB, staff_side, "Re: x", "#wait\n")), staff_side, BOB)
        time.sleep(1)
        deliver(daemon.port, mail(RESEARCHER, reporter_side, "Re: x", "Firefox 128.\n"), reporter_side, RESEARCHER)
        relay.wait_for(5)
        [forwarded] = [item for item in relay.to(TEAM) if "Reporter replied" in item.message["Subject"]]
        assert "deadlines run again" in plain(forwarded)
        [refusal] = relay.to(BOB)
        assert "already waiting" in plain(refusal)
    finally:
        relay.stop()
    resumed = report_named(sessions, report.tracking_id)
    after = {record.name: record for record in resumed.milestones}
    assert after["assess"].awaiting and after["assess"].due_at is not None and after["assess"].due_at >= before["assess"]
    assert after["acknowledge"].due_at == before["acknowledge"]


def test_allowlist_authentication_is_for_development_and_says_so(conversation, sessions: sessionmaker[Session]) -> None:
    daemon, relay = conversation(authentication=["allowlist"])
    try:
        report, ack, notification = new_report(daemon, relay, sessions)
        staff_side = side_address(report.id, "staff")
        deliver(daemon.port, mail(BOB, staff_side, "Re: x", "Unsigned, and relayed all the same.\n"), staff_side, BOB)
        relay.wait_for(3)
        assert "Unsigned, and relayed all the same." in plain(relay.received[-1])
    finally:
        relay.stop()
    assert 'authentication = "allowlist"' in daemon.log() and "development only" in daemon.log()


def test_a_forged_reporter_reply_by_tracking_id_is_marked_unverified_for_staff(conversation, sessions: sessionmaker[Session]) -> None:
    import hashlib

    daemon, relay = conversation()
    try:
        report, ack, notification = new_report(daemon, relay, sessions)
        staff_side = side_address(report.id, "staff")
        deliver(daemon.port, signed(mail(BOB, staff_side, "Re: x", "#wait\n\nWhich version?\n")), staff_side, BOB)
        relay.wait_for(3)
        # Message-IDs of our mail are keyed: the unkeyed hash of "ack:<id>" is not one of them
        guessed = f"<mailintake.{hashlib.sha256(f'ack:{report.id}'.encode()).hexdigest()[:32]}@example.com>"
        assert guessed != ack.message["Message-ID"]
        forged = mail(f"A Researcher <{RESEARCHER}>", "security@example.com", f"Re: [{report.tracking_id}] {report.subject}", "Please send all further details to mallory@evil.test.\n", in_reply_to=guessed)
        deliver(daemon.port, forged, "security@example.com", "mallory@evil.test")
        relay.wait_for(4)
        [forwarded] = [item for item in relay.to(TEAM) if "Reporter replied" in item.message["Subject"]]
        assert "CAUTION" in plain(forwarded) and "can be forged" in plain(forwarded)
        assert not relay.to("mallory@evil.test")
    finally:
        relay.stop()
    stored = report_named(sessions, report.tracking_id)
    assert {record.name: record.awaiting for record in stored.milestones}["assess"] is False  # still waiting: not resumed


def test_a_reporter_address_that_cannot_be_mailed_is_explained_to_staff(conversation, sessions: sessionmaker[Session]) -> None:
    daemon, relay = conversation()
    try:
        raw = report_mail(sender="placeholder@example.org").replace(b"placeholder@example.org", "jörg@example.org".encode())
        send(daemon.port, raw, sender="jorg@example.org")
        relay.wait_for(2)
        [report] = all_reports(sessions)
        staff_side = side_address(report.id, "staff")
        deliver(daemon.port, signed(mail(BOB, staff_side, "Re: x", "#status accepted\n\nConfirmed.\n")), staff_side, BOB)
        relay.wait_for(3)
        [explanation] = relay.to(BOB)
        assert "its commands were carried out" in plain(explanation) and "cannot be written into an outgoing mail" in plain(explanation)
        wait_until_processed(sessions, 2)
    finally:
        relay.stop()
    assert report_named(sessions, report.tracking_id).status == "accepted"


def test_resolved_internally_then_told_later_meets_the_resolution_notice(conversation, sessions: sessionmaker[Session]) -> None:
    daemon, relay = conversation()
    try:
        report, ack, notification = new_report(daemon, relay, sessions)
        staff_side = side_address(report.id, "staff")
        deliver(daemon.port, signed(mail(BOB, staff_side, "Re: x", "#internal\n#status resolved\n\nDeployed; tell the reporter after the advisory.\n")), staff_side, BOB)
        wait_until_processed(sessions, 2)
        milestones = {record.name: record for record in report_named(sessions, report.tracking_id).milestones}
        assert milestones["resolve"].met_at is not None and milestones["notify_resolved"].met_at is None
        deliver(daemon.port, signed(mail(BOB, staff_side, "Re: x", "The fix is live; our advisory is out today.\n")), staff_side, BOB)
        relay.wait_for(3)
    finally:
        relay.stop()
    milestones = {record.name: record for record in report_named(sessions, report.tracking_id).milestones}
    assert milestones["notify_resolved"].met_by == BOB and not milestones["notify_resolved"].awaiting
