"""The daemon talks: acknowledgements, staff notifications, SLA alerts, retries and
failures, through a real aiosmtpd relay on loopback. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailintake.core.tokens import ReplyToken, key_from_text, parse_reply_address
from mailintake.storage.db import transaction
from mailintake.storage.models import MilestoneRecord
from tests.daemon import TEST_TOKEN_KEY
from tests.integration.helpers import FIXTURES, LEADS, POLICY_A, STAFF, TEAM, outbox, report_mail, reports, run_cli, send, wait_for_outbox
from tests.integration.relay import Received, Relay

pytestmark = pytest.mark.slow


def test_a_new_report_is_acknowledged_in_thread_and_staff_get_it_with_attachments(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory(**STAFF)
    relay = Relay(daemon.relay_port).start()
    try:
        raw = (FIXTURES / "multipart-attachments.eml").read_bytes()
        send(daemon.port, raw, sender="anon-7f3k@mailbox.example.net")
        relay.wait_for(2)
        wait_for_outbox(sessions, lambda rows: len(rows) == 2 and all(row.status == "sent" for row in rows))
        [report] = reports(sessions)
        [ack] = relay.to("anon-7f3k@mailbox.example.net")
        [notification] = relay.to(TEAM)
    finally:
        relay.stop()
    message = ack.message
    original_id = "<" + next(line for line in raw.decode("latin-1").splitlines() if line.lower().startswith("message-id:")).split(":", 1)[1].strip().strip("<>") + ">"
    assert ack.mail_from == "security@example.com"
    assert message["From"].addresses[0].addr_spec == "security@example.com"
    assert message["Subject"].startswith(f"[{report.tracking_id}] ")
    assert message["In-Reply-To"] == original_id and original_id in message["References"]
    assert message["Auto-Submitted"] == "auto-replied"
    key = key_from_text(TEST_TOKEN_KEY)
    assert parse_reply_address(message["Reply-To"].addresses[0].addr_spec, "security@example.com", key) == ReplyToken(report.id, "reporter")
    assert parse_reply_address(notification.message["Reply-To"].addresses[0].addr_spec, "security@example.com", key) == ReplyToken(report.id, "staff")
    assert message["Reply-To"].addresses[0].addr_spec in message.get_body(("plain",)).get_content()
    assert message["Message-ID"].endswith("@example.com>")
    body = message.get_body(("plain",)).get_content()
    assert report.tracking_id in body and "Initial assessment" in body
    assert message.get_content_type() == "multipart/alternative"
    assert report.tracking_id in message.get_body(("html",)).get_content()
    staff = notification.message
    assert staff["Subject"].startswith(f"[{report.tracking_id}] ")
    assert {part.get_filename() for part in staff.iter_attachments()} == {"screenshot.png", "report.pdf", "poc.py"}
    assert "insecure direct object reference" in staff.get_body(("plain",)).get_content()
    # The acknowledgement's milestones are met in the transaction after the one marking it sent.
    deadline = time.monotonic() + 10
    while (acknowledge := milestone_named(sessions, "acknowledge")).met_at is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert acknowledge.met_at is not None and acknowledge.met_by == "automatic acknowledgement"
    assess = milestone_named(sessions, "assess")
    assert assess.promised_due_at == assess.due_at is not None


def milestone_named(sessions: sessionmaker[Session], name: str) -> MilestoneRecord:
    with transaction(sessions) as session:
        return session.scalars(select(MilestoneRecord).where(MilestoneRecord.name == name)).one()


def test_warning_breach_and_escalation_are_sent_once_even_across_passes_and_restarts(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory(**STAFF)
    relay = Relay(daemon.relay_port).start()
    try:
        send(daemon.port, report_mail())
        relay.wait_for(2)
        status = json.loads(run_cli(daemon.config_path, "sla", "status", "--json").stdout)
        assess = next(item for item in status if item["milestone"] == "assess")
        warn_at, due_at = datetime.fromisoformat(assess["warn_at"]), datetime.fromisoformat(assess["due_at"])
        between = (warn_at + (due_at - warn_at) / 2).isoformat()
        after = (due_at + timedelta(minutes=5)).isoformat()
        for moment in (between, between, after, after):
            assert run_cli(daemon.config_path, "sla", "check", "--now", moment).returncode == 0
        relay.wait_for(5)
        daemon.terminate()
        daemon.restart()
        assert run_cli(daemon.config_path, "sla", "check", "--now", after).stdout.endswith(": 0 mail(s) enqueued\n")
        time.sleep(2)
        kinds = sorted(row.kind for row in outbox(sessions))
        assert kinds == ["acknowledgement", "sla_breach", "sla_escalation", "sla_warning", "staff_notification"]
        assert [len(relay.to(TEAM)), len(relay.to(LEADS))] == [3, 1]
        [escalation] = relay.to(LEADS)
        assert "Initial assessment" in escalation.message.get_body(("plain",)).get_content()
    finally:
        relay.stop()


def test_relay_down_means_retries_then_one_delivery_when_it_is_back(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory(**STAFF)
    send(daemon.port, report_mail())
    # Tries that never reach the relay are retried without counting towards max_attempts.
    wait_for_outbox(sessions, lambda rows: len(rows) == 2 and all(row.status == "pending" and row.last_reply for row in rows))
    assert all("relay unreachable" in row.last_reply and row.attempts == 0 for row in outbox(sessions))
    relay = Relay(daemon.relay_port).start()
    try:
        wait_for_outbox(sessions, lambda rows: all(row.status == "sent" for row in rows), timeout=60)
        time.sleep(2)
        assert len(relay.received) == 2
    finally:
        relay.stop()


def test_a_550_from_the_relay_fails_the_mail_and_alerts_staff(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory(**STAFF)
    relay = Relay(daemon.relay_port)
    relay.handler.refuse.add("gone@example.org")
    relay.start()
    try:
        send(daemon.port, report_mail(sender="gone@example.org"), sender="gone@example.org")
        rows = wait_for_outbox(sessions, lambda rows: any(row.kind == "delivery_failure" and row.status == "sent" for row in rows))
        [ack] = [row for row in rows if row.kind == "acknowledgement"]
        assert (ack.status, ack.attempts, ack.last_reply) == ("failed", 1, "550 5.1.1 Mailbox unavailable")
        [alert] = relay.to(LEADS)
        assert "550" in alert.message.get_body(("plain",)).get_content()
        assert "gone@example.org" not in daemon.log()
    finally:
        relay.stop()


def test_a_german_reporter_is_acknowledged_in_german(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory(**STAFF)
    relay = Relay(daemon.relay_port).start()
    try:
        send(daemon.port, b"Content-Language: de-DE\r\n" + report_mail(message_id="<de@example.org>"))
        relay.wait_for(2)
        [ack] = relay.to("researcher@example.org")
    finally:
        relay.stop()
    assert reports(sessions)[0].language == "de-de"
    assert "vielen Dank, dass Sie Example Corp ein Sicherheitsproblem gemeldet" in ack.message.get_body(("plain",)).get_content()


def test_the_digest_goes_out_once_on_business_days_at_its_local_time(daemon_factory, sessions: sessionmaker[Session]) -> None:
    no_deadlines = {key: value for key, value in STAFF.items() if key != "extra"}
    daemon = daemon_factory(scheduler={"sla_interval": 3600, "digest_time": "08:30"}, **no_deadlines)
    relay = Relay(daemon.relay_port).start()
    try:
        send(daemon.port, report_mail())
        relay.wait_for(2)
        for moment in ("2026-11-28T09:00+01:00", "2026-11-24T08:00+01:00"):  # a Saturday; before 08:30
            assert run_cli(daemon.config_path, "sla", "check", "--now", moment).stdout.endswith(": 0 mail(s) enqueued\n")
        for expected, moment in ((1, "2026-11-24T08:31+01:00"), (0, "2026-11-24T16:00+01:00"), (1, "2026-11-25T08:45+01:00")):
            assert run_cli(daemon.config_path, "sla", "check", "--now", moment).stdout.endswith(f": {expected} mail(s) enqueued\n")

        # The daemon's own pass may also send today's digest (when the suite runs after
        # digest_time on a business day); only the two checked days count here.
        def checked_days() -> list[Received]:
            return [item for item in relay.to(TEAM) if item.message["Subject"].startswith("Security reports ") and any(day in item.message.get_body(("plain",)).get_content() for day in ("2026-11-24", "2026-11-25"))]

        deadline = time.monotonic() + 30
        while len(checked_days()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)
        digests = checked_days()
        assert len(digests) == 2
        assert reports(sessions)[0].tracking_id in digests[0].message.get_body(("plain",)).get_content()
    finally:
        relay.stop()


def test_outbox_commands_list_retry_and_flush(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory(**STAFF)
    relay = Relay(daemon.relay_port)
    relay.handler.refuse.add("later@example.org")
    relay.start()
    try:
        send(daemon.port, report_mail(sender="later@example.org"), sender="later@example.org")
        rows = wait_for_outbox(sessions, lambda rows: any(row.kind == "acknowledgement" and row.status == "failed" for row in rows))
        daemon.terminate()
        listed = json.loads(run_cli(daemon.config_path, "outbox", "list", "--json").stdout)
        [failed] = [item for item in listed if item["status"] == "failed"]
        assert failed["kind"] == "acknowledgement" and failed["recipients"] == ["later@example.org"]
        relay.handler.refuse.clear()
        assert run_cli(daemon.config_path, "outbox", "retry", str(failed["id"])).stdout == f"outbox {failed['id']} (acknowledgement) is due now\n"
        refused = run_cli(daemon.config_path, "outbox", "retry", str(rows[0].id))
        assert refused.returncode == 2 and "is sent, not failed or pending" in refused.stderr
        flushed = run_cli(daemon.config_path, "outbox", "flush")
        assert flushed.returncode == 0 and flushed.stdout.startswith("attempted 1;")
        assert [item.rcpt_tos for item in relay.received if "later@example.org" in item.rcpt_tos] == [["later@example.org"]]
    finally:
        relay.stop()


def test_two_daemons_on_one_database_never_send_the_same_row(daemon_factory, sessions: sessionmaker[Session]) -> None:
    first = daemon_factory(**STAFF)
    second = daemon_factory(relay={"port": first.relay_port}, **STAFF)
    relay = Relay(first.relay_port).start()
    try:
        for number in range(10):
            sender = f"pair-{number}@example.org"
            send((first, second)[number % 2].port, report_mail(sender=sender, message_id=f"<pair-{number}@example.org>", body=f"pair {number}"), sender=sender)
        wait_for_outbox(sessions, lambda rows: len(rows) == 20 and all(row.status == "sent" for row in rows), timeout=60)
        time.sleep(2)
        message_ids = [item.message["Message-ID"] for item in relay.received]
        assert len(message_ids) == 20 and len(set(message_ids)) == 20
    finally:
        relay.stop()


def test_with_auto_false_only_a_human_meets_the_acknowledgement(daemon_factory, sessions: sessionmaker[Session]) -> None:
    manual = STAFF | {"extra": POLICY_A.replace("auto = true", "auto = false")}
    daemon = daemon_factory(**manual)
    relay = Relay(daemon.relay_port).start()
    try:
        send(daemon.port, report_mail())
        wait_for_outbox(sessions, lambda rows: len(rows) == 2 and all(row.status == "sent" for row in rows))
    finally:
        relay.stop()
    with transaction(sessions) as session:
        acknowledge = session.scalars(select(MilestoneRecord).where(MilestoneRecord.name == "acknowledge")).one()
        assert acknowledge.met_at is None and acknowledge.awaiting


def test_keep_informed_duties_remind_staff_once_per_round(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory(**STAFF)
    relay = Relay(daemon.relay_port).start()
    try:
        send(daemon.port, report_mail())
        wait_for_outbox(sessions, lambda rows: len(rows) == 2 and all(row.status == "sent" for row in rows))
        update = next(item for item in json.loads(run_cli(daemon.config_path, "sla", "status", "--json").stdout) if item["milestone"] == "update")
        warn_at, due_at = datetime.fromisoformat(update["warn_at"]), datetime.fromisoformat(update["due_at"])
        moment = (warn_at + (due_at - warn_at) / 2).isoformat()
        run_cli(daemon.config_path, "sla", "check", "--now", moment)
        run_cli(daemon.config_path, "sla", "check", "--now", moment)
        rows = wait_for_outbox(sessions, lambda rows: any(row.kind == "progress_reminder" and row.status == "sent" for row in rows))
        assert [row.kind for row in rows].count("progress_reminder") == 1
        [reminder] = [item for item in relay.to(TEAM) if "Reminder" in item.message["Subject"]]
        assert "Progress update" in reminder.message["Subject"]
    finally:
        relay.stop()


def test_a_forwarded_mail_attachment_reaches_staff_as_a_file(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory(**STAFF)
    relay = Relay(daemon.relay_port).start()
    try:
        send(daemon.port, (FIXTURES / "forwarded-rfc822.eml").read_bytes())
        relay.wait_for(2)
        [notification] = relay.to(TEAM)
        [attachment] = list(notification.message.iter_attachments())
        assert (attachment.get_filename(), attachment.get_content_type()) == ("Open redirect on login page.eml", "application/octet-stream")
        assert b"Open redirect" in attachment.get_content()
    finally:
        relay.stop()


def test_recipients_the_relay_refuses_among_others_are_reported_to_staff(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory(staff={"notify": [TEAM, "gone-staff@example.com"], "alerts": [LEADS]}, calendar=STAFF["calendar"], extra=POLICY_A)
    relay = Relay(daemon.relay_port)
    relay.handler.refuse.add("gone-staff@example.com")
    relay.start()
    try:
        send(daemon.port, report_mail())
        rows = wait_for_outbox(sessions, lambda rows: any(row.kind == "delivery_failure" and row.status == "sent" for row in rows))
        [notification] = [row for row in rows if row.kind == "staff_notification"]
        assert notification.status == "sent" and notification.attempts == 1
        [alert] = relay.to(LEADS)
        assert "gone-staff@example.com" in alert.message.get_body(("plain",)).get_content()
        assert len(relay.to(TEAM)) == 1
    finally:
        relay.stop()
