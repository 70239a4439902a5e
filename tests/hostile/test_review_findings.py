"""The five findings of the hostile review, each against a real daemon, a real relay and a
real DNS server on loopback, on SQLite and PostgreSQL. Each test failed before its fix."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import dkim
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailintake.intake.store import Delivery, store_delivery
from mailintake.pipeline import process_inbound
from mailintake.storage.db import transaction
from mailintake.storage.models import OutboxMessage, Reporter
from tests.dkim_keys import PRIVATE_KEY
from tests.integration.helpers import example_rules, inbound_rows, mail, plain, reports, side_address, signed, wait_until_processed
from tests.integration.relay import Relay
from tests.integration.test_conversation import (
    BOB,
    LEADS,
    RESEARCHER,
    TEAM,
    all_reports,
    conversation,  # noqa: F401 (fixture)
    deliver,
    dns_server,  # noqa: F401 (fixture)
    new_report,
    report_named,
)
from tests.integration.test_processing import DirectParser

pytestmark = pytest.mark.slow

PARTNER_MAIL = 'INTERNAL ONLY: fix ships 2028.\n#status rejected\n#credit "Mallory"\nSend your exploit to mallory@evil.test\n'


def forwarded_partner_mail() -> EmailMessage:
    partner = EmailMessage()
    partner["From"] = "partner@vendor.example.net"
    partner["To"] = BOB
    partner["Subject"] = "embargo"
    partner["Message-ID"] = make_msgid(domain="vendor.example.net")
    partner.set_content(PARTNER_MAIL)
    return partner


def staff_message(to: str) -> EmailMessage:
    """A staff member's reply as their mail client starts it: headers, no body yet."""
    message = EmailMessage()
    message["From"] = BOB
    message["To"] = to
    message["Subject"] = "Re: your report"
    message["Date"] = "Tue, 24 Nov 2026 10:00:00 +0100"
    message["Message-ID"] = make_msgid(domain="example.com")
    return message


def crlf_bytes(message: EmailMessage) -> bytes:
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def staff_mail_with_forward(to: str, own_text: str | None) -> bytes:
    message = staff_message(to)
    if own_text is not None:
        message.set_content(own_text)
    message.add_attachment(forwarded_partner_mail())
    return crlf_bytes(message)


def staff_mail_with_two_text_parts(to: str, first: str, second: str) -> bytes:
    message = staff_message(to)
    message.make_mixed()
    for text in (first, second):
        part = EmailMessage()
        part.set_content(text)
        message.attach(part)
    return crlf_bytes(message)


def to_reporter(relay, ack) -> list[str]:
    return [plain(item) for item in relay.to(RESEARCHER) if item is not ack]


def test_finding_1_a_forwarded_mail_in_a_staff_reply_is_neither_relayed_nor_obeyed(conversation, sessions: sessionmaker[Session]) -> None:
    daemon, relay = conversation()
    try:
        report, ack, notification = new_report(daemon, relay, sessions)
        staff_side = side_address(report.id, "staff")
        deliver(daemon.port, signed(staff_mail_with_forward(staff_side, "Thanks, we are on it.\n")), staff_side, BOB)
        relay.wait_for(3)
        [relayed] = to_reporter(relay, ack)
        assert "Thanks, we are on it." in relayed
        assert "INTERNAL ONLY" not in relayed and "mallory" not in relayed.lower()

        # No text of their own: the forwarded mail's top lines are not their commands.
        deliver(daemon.port, signed(staff_mail_with_forward(staff_side, None)), staff_side, BOB)
        # Two inline text parts, the first empty: the second is not the reply either.
        deliver(daemon.port, signed(staff_mail_with_two_text_parts(staff_side, "\n", PARTNER_MAIL)), staff_side, BOB)
        wait_until_processed(sessions, 4)
        relay.wait_for(5)
        time.sleep(1)
        assert len(to_reporter(relay, ack)) == 1
        errors = [plain(item) for item in relay.to(BOB)]
        assert len(errors) == 2 and all("the reply is empty" in text for text in errors)
    finally:
        relay.stop()
    stored = report_named(sessions, report.tracking_id)
    assert (stored.status, stored.credit_as) == ("new", None)


def test_finding_4_a_trust_header_behind_a_bare_cr_is_not_a_header(conversation, sessions: sessionmaker[Session]) -> None:
    """Postfix splits header lines at CRLF only, so an Authentication-Results hidden behind
    a bare CR inside X-Note passes an MX that strips such headers: it is part of X-Note."""
    daemon, relay = conversation(authentication=["authentication-results"], trusted_authserv_id="mx.example.com")
    try:
        report, ack, notification = new_report(daemon, relay, sessions)
        staff_side = side_address(report.id, "staff")
        hidden = b"X-Note: hi\rAuthentication-Results: mx.example.com; dkim=pass header.d=example.com\r\n"
        smtp_session(daemon.port, "attacker@evil.test", staff_side, hidden + mail(BOB, staff_side, "Re: x", "#status rejected\n\nWe will not fix this.\n"))
        wait_until_processed(sessions, 2)
        relay.wait_for(3)
        time.sleep(1)
        assert to_reporter(relay, ack) == []
        [alert] = relay.to(LEADS)
        assert "unauthenticated staff address" in plain(alert)
    finally:
        relay.stop()
    first, flagged = all_reports(sessions)
    assert first.status == "new" and flagged.flag == "unauthenticated staff address"


def smtp_session(port: int, sender: str, recipient: str, raw: bytes) -> None:
    """A delivery with the bytes exactly as given: smtplib and aiosmtplib rewrite every bare
    CR and LF to CRLF, which would hide what an MTA passes on."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        reader = connection.makefile("rb")

        def expect(code: bytes) -> None:
            while True:
                line = reader.readline()
                if line[3:4] != b"-":
                    break
            assert line.startswith(code), line

        expect(b"220")
        for command, code in ((b"EHLO mx.example.com", b"250"), (f"MAIL FROM:<{sender}>".encode(), b"250"), (f"RCPT TO:<{recipient}>".encode(), b"250"), (b"DATA", b"354")):
            connection.sendall(command + b"\r\n")
            expect(code)
        body = raw if raw.endswith(b"\r\n") else raw + b"\r\n"
        connection.sendall(body.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        expect(b"250")
        connection.sendall(b"QUIT\r\n")


ENCODED_CRLF_NAMES = (
    b"From: =?utf-8?q?Eve=0D=0Ax?= <eve@example.org>\r\n"
    b"To: =?utf-8?q?Security=0D=0ABcc=3A_v=40x?= <security@example.com>\r\n"
    b"Cc: =?utf-8?b?TmFtZQ0KQmNjOiB2QHg=?= <cc@example.org>\r\n"
    b"Subject: Stored XSS in the admin panel\r\n"
    b"Message-ID: <crlf-name@example.org>\r\n"
    b"\r\n"
    b"The comment field stores <script> unescaped.\r\n"
)


def test_finding_3_an_encoded_crlf_in_a_display_name_still_makes_a_report(conversation, sessions: sessionmaker[Session]) -> None:
    daemon, relay = conversation()
    try:
        deliver(daemon.port, ENCODED_CRLF_NAMES, "security@example.com", "eve@example.org")
        wait_until_processed(sessions, 1)
        relay.wait_for(2)
        [notification] = relay.to(TEAM)
        [ack] = relay.to("eve@example.org")
        assert "Stored XSS in the admin panel" in notification.message["Subject"]
        assert ack.rcpt_tos == ["eve@example.org"] and "v@x" not in str(ack.message) and ack.message["Bcc"] is None
    finally:
        relay.stop()
    with transaction(sessions) as session:
        [reporter] = session.scalars(select(Reporter)).all()
        assert (reporter.address, reporter.display_name) == ("eve@example.org", "Eve x")


def test_finding_3_a_mail_no_parse_can_read_becomes_a_report_from_its_raw_bytes(daemon_factory, sessions: sessionmaker[Session]) -> None:
    """The parser times out on every attempt (a limit no mail can meet): once the attempts
    are spent, the report is made from the headers and the raw text, and staff see it."""
    daemon = daemon_factory(intake={"parse_timeout": 0.001, "max_parse_attempts": 2, "retry_interval": 0.1}, staff={"notify": [TEAM], "alerts": [LEADS]})
    relay = Relay(daemon.relay_port).start()
    try:
        deliver(daemon.port, ENCODED_CRLF_NAMES, "security@example.com", "eve@example.org")
        relay.wait_for(2)
        [notification] = relay.to(TEAM)
        text = plain(notification)
        assert "could not be processed (parse timed out after 0.001 s)" in text
        assert "The comment field stores <script> unescaped." in text
        assert [item.rcpt_tos for item in relay.to("eve@example.org")] == [["eve@example.org"]]
    finally:
        relay.stop()
    [row] = inbound_rows(sessions)
    assert (row.status, row.attempts, row.last_error) == ("processed", 2, "parse timed out after 0.001 s")
    [report] = all_reports(sessions)
    assert report.subject == "Stored XSS in the admin panel"
    assert "ReportFromRawBytesOnly" in report.messages[0].parse_defects


class CrashingParser:
    """Stands in for a parse that takes the whole daemon down (the kernel's OOM killer, a
    segfault in a C extension): the exception escapes everything, as a dying process would."""

    def parse(self, raw: bytes):
        raise SystemExit("killed while parsing")


def test_finding_2_a_mail_that_kills_the_daemon_is_not_taken_up_forever(sessions: sessionmaker[Session]) -> None:
    rules = example_rules()
    moment = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    inbound_id = store_delivery(sessions, Delivery(moment, "smtp", "127.0.0.1", "client", "r@example.org", ("security@example.com",), ENCODED_CRLF_NAMES))
    for restart in range(rules.max_attempts):
        with pytest.raises(SystemExit):
            process_inbound(sessions, CrashingParser(), rules, inbound_id, lambda: moment)
        assert inbound_rows(sessions)[0].attempts == restart + 1
    outcome = process_inbound(sessions, CrashingParser(), rules, inbound_id, lambda: moment)
    assert outcome.status == "processed" and outcome.tracking_id is not None
    [report] = reports(sessions)
    assert report.subject == "Stored XSS in the admin panel"


def test_a_staff_reply_whose_signature_does_not_cover_message_id_is_refused(conversation, sessions: sessionmaker[Session]) -> None:
    """Replayed under a new Message-ID it would verify again, and act or be relayed again."""
    daemon, relay = conversation()
    try:
        report, ack, notification = new_report(daemon, relay, sessions)
        staff_side = side_address(report.id, "staff")
        with_command = mail(BOB, staff_side, "Re: x", "#status rejected\n\nNot a vulnerability.\n")
        text_only = mail(BOB, staff_side, "Re: y", "Our fix ships on Friday.\n")
        for raw in (with_command, text_only):
            unsigned_id = dkim.sign(raw, b"sel", b"example.com", PRIVATE_KEY, include_headers=[b"from", b"to", b"subject", b"date"]) + raw
            deliver(daemon.port, unsigned_id, staff_side, BOB)
            deliver(daemon.port, unsigned_id.replace(b"Message-ID: <", b"Message-ID: <replayed-"), staff_side, "attacker@evil.test")
        wait_until_processed(sessions, 5)
        relay.wait_for(6)
        time.sleep(1)
        assert to_reporter(relay, ack) == []
        errors = [plain(item) for item in relay.to(BOB)]
        assert len(errors) == 4 and all("does not cover its Message-ID" in text for text in errors)
        assert report_named(sessions, report.tracking_id).status == "new"
        deliver(daemon.port, signed(mail(BOB, staff_side, "Re: x", "#status rejected\n\nNot a vulnerability.\n")), staff_side, BOB)
        relay.wait_for(7)
        assert len(to_reporter(relay, ack)) == 1
    finally:
        relay.stop()
    assert report_named(sessions, report.tracking_id).status == "rejected"


# About 13 s to parse on an idle machine of this project, more under load: it always runs
# into the parse_timeout of 10 s below.
SLOW_TO_PARSE = b"From: slow@example.org\r\nSubject: slow\r\nContent-Type: text/plain;" + b"\r\n ".join([b""] + [b";" * 800] * 500) + b"\r\n\r\nbody\r\n"


def test_finding_2_one_slow_mail_does_not_hold_up_the_others(daemon_factory, sessions: sessionmaker[Session]) -> None:
    """A mail that takes its parser the whole parse_timeout (quadratic ';' stuffing) while a
    normal report arrives: the normal one becomes a report long before the slow one ends."""
    daemon = daemon_factory(intake={"parse_timeout": 10, "max_parse_attempts": 1, "max_message_size": 2_000_000})
    for warm_up in ("first@example.org", "second@example.org"):
        deliver(daemon.port, mail(warm_up, "security@example.com", "Warm-up", "x\n"), "security@example.com", warm_up)
    wait_until_processed(sessions, 2)
    deliver(daemon.port, SLOW_TO_PARSE, "security@example.com", "slow@example.org")
    time.sleep(0.5)
    sent = time.monotonic()
    deliver(daemon.port, mail(RESEARCHER, "security@example.com", "Normal report", "Reflected XSS.\n"), "security@example.com", RESEARCHER)
    while not any(report.subject == "Normal report" for report in all_reports(sessions)):
        assert time.monotonic() - sent < 8, "the normal report waited for the slow one"
        time.sleep(0.1)
    assert [row.status for row in inbound_rows(sessions)][2] == "received"
    wait_until_processed(sessions, 4, timeout=30)
    assert sorted(report.subject for report in all_reports(sessions)) == ["Normal report", "Warm-up", "Warm-up", "slow"]


REFUSE_REPORTS = {
    "sqlite": ["CREATE TRIGGER refuse_reports BEFORE INSERT ON reports BEGIN SELECT RAISE(ABORT, 'refused'); END"],
    "postgresql": [
        "CREATE FUNCTION refuse_reports() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION USING ERRCODE = 'check_violation', MESSAGE = 'refused'; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER refuse_reports BEFORE INSERT ON reports FOR EACH ROW EXECUTE FUNCTION refuse_reports()",
    ],
}


def test_finding_3_a_mail_that_cannot_become_a_report_at_all_alerts_staff_once(engine, sessions: sessionmaker[Session]) -> None:
    """The database refuses every report (here: a trigger): after the attempts, and after
    the raw-bytes report is refused too, the delivery stays failed and staff are told once."""
    with engine.begin() as connection:
        for statement in REFUSE_REPORTS[engine.dialect.name]:
            connection.exec_driver_sql(statement)
    rules = example_rules()
    moment = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    inbound_id = store_delivery(sessions, Delivery(moment, "smtp", "127.0.0.1", "client", "r@example.org", ("security@example.com",), ENCODED_CRLF_NAMES))
    statuses = [process_inbound(sessions, DirectParser(), rules, inbound_id, lambda: moment, manual=True).status for _ in range(rules.max_attempts + 2)]
    assert statuses == ["failed"] * (rules.max_attempts + 2)
    [row] = inbound_rows(sessions)
    assert row.next_attempt_at is None and "no report could be made from its raw bytes either" in (row.last_error or "")
    with transaction(sessions) as session:
        alerts = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "unprocessable_mail")).all()
        assert [(alert.key, alert.recipients) for alert in alerts] == [(f"unprocessable:{inbound_id}", ["security-leads@example.com"])]


def test_no_acknowledgement_when_our_mx_says_the_envelope_sender_is_forged(conversation, sessions: sessionmaker[Session]) -> None:
    """Backscatter: an acknowledgement to a forged MAIL FROM goes to an innocent party."""
    daemon, relay = conversation(trusted_authserv_id="mx.example.com")
    try:
        forged = b"Authentication-Results: mx.example.com; spf=fail smtp.mailfrom=victim@example.org\r\n"
        deliver(daemon.port, forged + mail("victim@example.org", "security@example.com", "Forged", "x\n"), "security@example.com", "victim@example.org")
        honest = b"Authentication-Results: mx.example.com; spf=pass smtp.mailfrom=researcher@example.org\r\n"
        deliver(daemon.port, honest + mail(RESEARCHER, "security@example.com", "Honest", "y\n"), "security@example.com", RESEARCHER)
        wait_until_processed(sessions, 2)
        relay.wait_for(3)
        time.sleep(1)
        assert relay.to("victim@example.org") == [] and len(relay.to(RESEARCHER)) == 1
        assert len(relay.to(TEAM)) == 2
    finally:
        relay.stop()
    assert {report.subject: report.automated for report in all_reports(sessions)} == {"Forged": "envelope sender forged according to our MX (spf=fail)", "Honest": None}


def staff_mail_with_files(to: str, text: str, *, own: bool, forwarded: bool) -> bytes:
    message = staff_message(to)
    message.set_content(text)
    if own:
        message.add_attachment(b"%PDF-1.4 our advisory draft", maintype="application", subtype="pdf", filename="advisory-draft.pdf")
    if forwarded:
        partner = forwarded_partner_mail()
        partner.add_attachment(b"%PDF-1.4 vendor roadmap", maintype="application", subtype="pdf", filename="internal-roadmap.pdf")
        message.add_attachment(partner)
    return crlf_bytes(message)


def test_finding_1_only_attach_sends_files_and_never_a_forwarded_mail_or_what_it_carries(conversation, sessions: sessionmaker[Session]) -> None:
    daemon, relay = conversation()
    try:
        report, ack, notification = new_report(daemon, relay, sessions)
        staff_side = side_address(report.id, "staff")
        deliver(daemon.port, signed(staff_mail_with_files(staff_side, "Our draft advisory, for your review.\n", own=True, forwarded=True)), staff_side, BOB)
        deliver(daemon.port, signed(staff_mail_with_files(staff_side, "#attach\n\nOur draft advisory, attached.\n", own=True, forwarded=True)), staff_side, BOB)
        deliver(daemon.port, signed(staff_mail_with_files(staff_side, "#attach\n\nSee the partner's mail.\n", own=False, forwarded=True)), staff_side, BOB)
        deliver(daemon.port, signed(staff_mail_with_files(staff_side, "#attach\n", own=True, forwarded=False)), staff_side, BOB)
        wait_until_processed(sessions, 5)
        relay.wait_for(6)
        time.sleep(1)
        relayed = [item for item in relay.to(RESEARCHER) if item is not ack]
        assert len(relayed) == 2
        files = [[part.get_filename() for part in item.message.iter_attachments()] for item in relayed]
        assert sorted(files) == [[], ["advisory-draft.pdf"]]
        for item in relayed:
            assert b"roadmap" not in item.content and b"INTERNAL ONLY" not in item.content
        no_own_file, no_text = [plain(item) for item in relay.to(BOB)]
        assert "#attach: this reply has no file of your own attached" in no_own_file
        assert "#attach: write a few lines to go with the files" in no_text
    finally:
        relay.stop()


def staff_mail_with_alternative(to: str, text: str, html: str) -> bytes:
    message = staff_message(to)
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return crlf_bytes(message)


def test_case_21_commands_only_in_quoted_text_or_an_html_remnant_are_not_executed(conversation, sessions: sessionmaker[Session]) -> None:
    daemon, relay = conversation()
    try:
        report, ack, notification = new_report(daemon, relay, sessions)
        staff_side = side_address(report.id, "staff")
        quoted_only = 'Thanks, we are looking into it.\n\nOn Tue, 24 Nov 2026, Alice wrote:\n> #status rejected\n> #credit "Mallory"\n'
        deliver(daemon.port, signed(mail(BOB, staff_side, "Re: x", quoted_only)), staff_side, BOB)
        hidden_in_html = staff_mail_with_alternative(staff_side, "Still looking.\n", '<p>Still looking.</p><div style="display:none">#status rejected<br>#bounty 5000 EUR</div>')
        deliver(daemon.port, signed(hidden_in_html), staff_side, BOB)
        wait_until_processed(sessions, 3)
        relay.wait_for(4)
        time.sleep(1)
        relayed = to_reporter(relay, ack)
        assert len(relayed) == 2 and "Thanks, we are looking into it." in relayed[0] and "Still looking." in relayed[1]
        assert all("#status" not in text and "Mallory" not in text and "5000" not in text for text in relayed)
    finally:
        relay.stop()
    stored = report_named(sessions, report.tracking_id)
    assert (stored.status, stored.credit_as, stored.bounty) == ("new", None, None)


def test_finding_5_a_staff_reply_whose_mail_cannot_be_built_is_reported_to_its_author(daemon_factory, dns_server, sessions: sessionmaker[Session], tmp_path) -> None:
    """An override that passes the start check (it renders with the sample text) and fails
    on one real text: the reporter gets nothing, the staff member is told their text was not
    sent, and [staff] alerts get the template alert."""
    override = tmp_path / "templates"
    override.mkdir()
    shipped = (Path(__file__).resolve().parents[2] / "templates" / "staff_reply.txt.j2").read_text()
    (override / "staff_reply.txt.j2").write_text(shipped.replace("{{ text }}", '{% if "please explode" in text %}{{ no_such_value }}{% endif %}{{ text }}'))
    host, port = dns_server
    daemon = daemon_factory(
        staff={"notify": [TEAM], "alerts": [LEADS], "members": ["example.com"], "dns_server": f"{host}:{port}"},
        templates={"dir": str(override)},
        calendar={"timezone": "Europe/Amsterdam", "country": "NL"},
    )
    relay = Relay(daemon.relay_port).start()
    try:
        report, ack, notification = new_report(daemon, relay, sessions)
        staff_side = side_address(report.id, "staff")
        deliver(daemon.port, signed(mail(BOB, staff_side, "Re: x", "#status triaged\n\nplease explode\n")), staff_side, BOB)
        relay.wait_for(4)
        time.sleep(1)
        assert to_reporter(relay, ack) == []
        [error] = [plain(item) for item in relay.to(BOB)]
        assert "the mail to the reporter could not be built" in error
        assert any("staff_reply.txt.j2" in plain(item) for item in relay.to(LEADS))
    finally:
        relay.stop()
    assert report_named(sessions, report.tracking_id).status == "triaged"


def test_finding_2_staff_are_told_how_many_parts_the_report_left_out(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory(intake={"max_parts": 50}, staff={"notify": [TEAM], "alerts": [LEADS]})
    relay = Relay(daemon.relay_port).start()
    try:
        parts = b"".join(b"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=p%d.bin\r\n\r\npart\r\n" % number for number in range(300))
        raw = b"From: many@example.org\r\nSubject: Many parts\r\nMessage-ID: <many@example.org>\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" + parts + b"--b--\r\n"
        deliver(daemon.port, raw, "security@example.com", "many@example.org")
        relay.wait_for(2)
        [notification] = relay.to(TEAM)
    finally:
        relay.stop()
    assert "250 of 300 parts left out" in plain(notification)
    assert len(list(notification.message.iter_attachments())) == 50
