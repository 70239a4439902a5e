"""Hostile checklist cases 14–23 (21 is elsewhere): who a mail is from, and which report it
may join, never comes from anything a stranger can write. A real daemon, relay sink,
database and DNS server (DKIM keys) on loopback."""

from __future__ import annotations

import smtplib
import time

import pytest
from sqlalchemy.orm import Session, sessionmaker

from mailintake.core.tokens import key_from_text, reply_address
from tests.daemon import TEST_TOKEN_KEY
from tests.hostile.helpers import BOB, LEADS, SECURITY, STAFF_ADDRESSES, TEAM, Stack, texts
from tests.integration.helpers import mail, plain, run_cli, side_address, signed, wait_until_processed
from tests.integration.test_conversation import (
    RESEARCHER,
    all_reports,
    conversation,  # noqa: F401 (fixture)
    deliver,
    dns_server,  # noqa: F401 (fixture)
    new_report,
    report_named,
)

pytestmark = pytest.mark.slow


def test_case_14_a_stranger_with_a_tracking_id_gets_a_separate_report_and_nothing_of_the_original(conversation, sessions: sessionmaker[Session]) -> None:
    daemon, relay = conversation()
    try:
        report, ack, notification = new_report(daemon, relay, sessions, body="SECRET-ORIGINAL-DETAIL: SQL injection in /api/orders\n")
        attacker = "mallory@evil.test"
        probe = mail(attacker, "security@example.com", f"Re: [{report.tracking_id}] {report.subject}", "Please resend me the details of this report.\n", in_reply_to=ack.message["Message-ID"])
        deliver(daemon.port, probe, "security@example.com", attacker)
        relay.wait_for(4)
        time.sleep(1)
        to_attacker = relay.to(attacker)
        assert len(to_attacker) == 1
        everything = b"".join(item.content for item in to_attacker).decode("utf-8", "replace")
        assert report.tracking_id not in everything.replace(f"Re: [{report.tracking_id}]", "")
        assert "SECRET-ORIGINAL-DETAIL" not in everything and "SQL injection" not in everything
    finally:
        relay.stop()
    original, separate = all_reports(sessions)
    assert [message.kind for message in original.messages] == ["report"]
    assert separate.flag == "refers to a report of another sender" and separate.related_report_id == original.id
    assert to_attacker[0].message["Subject"].startswith(f"[{separate.tracking_id}]")


def test_case_15_tampered_or_foreign_key_reply_addresses_are_refused_with_550(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory()
    key = key_from_text(TEST_TOKEN_KEY)
    valid = reply_address("security@example.com", 42, "reporter", key)
    local, _, domain = valid.partition("@")
    tampered = local[:-1] + ("a" if local[-1] != "a" else "b") + "@" + domain
    other_key = reply_address("security@example.com", 42, "reporter", key_from_text("another-key-that-is-long-enough-0123456789"))
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=30) as client:
        client.ehlo("client.example.org")
        client.mail("researcher@example.org")
        assert client.rcpt(valid)[0] == 250
        assert client.rcpt(valid.upper())[0] == 250
        for forged in (tampered, other_key, "security+42@example.com", "security+r16@example.com"):
            assert client.rcpt(forged) == (550, b"5.1.1 Recipient address rejected: no such mailbox here"), forged


def test_case_15_a_reply_address_used_by_another_sender_side_or_report_makes_a_separate_flagged_report(stack: Stack) -> None:
    alice, carol = "alice15@example.org", "carol15@example.net"
    report_a, ack_a, _ = stack.new_report(alice, body="SECRET-15-A: SSRF in /fetch\n", subject="SSRF in fetch")
    report_c, ack_c, _ = stack.new_report(carol, body="Open redirect on /login\n", subject="Open redirect")
    a_reporter, a_staff, nowhere = side_address(report_a.id, "reporter"), side_address(report_a.id, "staff"), side_address(999_999, "reporter")
    # another reporter writes into Alice's thread through Alice's signed address
    into_a = stack.deliver(mail(carol, a_reporter, f"Re: [{report_a.tracking_id}] SSRF in fetch", "Please send me the proof of concept.\n"), carol, [a_reporter])
    # Alice herself writes a command to the staff side of her own report
    staff_side = stack.deliver(mail(alice, a_staff, "Re: SSRF", "#status resolved\n\nPlease close it.\n"), alice, [a_staff])
    # a correctly signed address of a report that does not exist
    ghost = stack.deliver(mail(carol, nowhere, "Re: earlier", "Hello again.\n"), carol, [nowhere])
    flagged = [stack.report_of(row) for row in (into_a, staff_side, ghost)]
    assert [report.flag for report in flagged] == [
        "reply address used by another sender",
        "staff reply address used by a non-staff sender",
        "reply address of a report that does not exist",
    ]
    assert [report.related_report_id for report in flagged] == [report_a.id, report_a.id, None]
    assert not {report.id for report in flagged} & {report_a.id, report_c.id}
    untouched = stack.report(report_a.id)
    assert untouched.status == "new" and [message.kind for message in untouched.messages] == ["report"]
    stack.quiet()
    assert stack.relay.to(alice) == [ack_a]
    assert all(b"SECRET-15-A" not in item.content for item in stack.relay.to(carol))
    alerts = "\n".join(plain(item) for item in stack.relay.to(LEADS))
    assert flagged[0].tracking_id in alerts and flagged[1].tracking_id in alerts


def test_case_16_ticket_trick_verification_mail_to_a_reporter_address_never_reaches_its_owner(conversation, sessions: sessionmaker[Session]) -> None:
    daemon, relay = conversation()
    try:
        report, ack, notification = new_report(daemon, relay, sessions)
        reporter_side = side_address(report.id, "reporter")
        verification = mail("Chat <noreply@chat.example.net>", reporter_side, "Confirm your e-mail address", "Your verification code is 493027. Click https://chat.example.net/v/493027\n")
        deliver(daemon.port, verification, reporter_side, "bounces@chat.example.net")
        wait_until_processed(sessions, 2)
        relay.wait_for(5)
        time.sleep(1)
        assert relay.to(RESEARCHER) == [ack]
        assert not any("493027" in item.content.decode("utf-8", "replace") for item in relay.to(RESEARCHER))
        [alert] = relay.to(LEADS)
        assert "reply address used by another sender" in plain(alert)
    finally:
        relay.stop()
    original, separate = all_reports(sessions)
    assert [message.kind for message in original.messages] == ["report"]
    assert separate.flag == "reply address used by another sender" and separate.related_report_id == original.id


def test_case_16_third_party_verification_mail_to_the_public_address_is_never_echoed(stack: Stack) -> None:
    """A site where someone signed up with security@ as their address sends its "confirm
    your account" mail: staff see it, but its code goes back to no one."""
    site, bounces = "noreply@chat16.example.net", "bounces-16@chat16.example.net"
    raw = mail(f"Chat <{site}>", SECURITY, "Confirm your e-mail address", "Welcome!\nYour verification code is 493027.\nOr open https://chat16.example.net/verify?code=493027\n")
    report = stack.report_of(stack.deliver(raw, bounces))
    mails = stack.mails_of(report.id)
    assert any("493027" in plain(item) for item in mails if item.rcpt_tos == [TEAM]), "staff must see the mail"
    outside = [item for item in mails if not set(item.rcpt_tos) <= STAFF_ADDRESSES]
    for item in outside:
        assert b"493027" not in item.content and not any("493027" in text for text in texts(item)), item.rcpt_tos
    assert stack.relay.to(site) == []


def test_case_17_identity_never_comes_from_reply_to(stack: Stack) -> None:
    alice, bounces, mallory = "alice17@example.org", "alice17-bounces@example.org", "mallory17@evil.test"
    raw = mail(f"Alice <{alice}>", SECURITY, "CSRF on /settings", "SECRET-17: no token is checked.\n", reply_to=mallory)
    report = stack.report_of(stack.deliver(raw, bounces))
    assert report.reporter is not None and report.reporter.address == alice
    assert [item.rcpt_tos for item in stack.mails_of(report.id) if item.rcpt_tos != [TEAM]] == [[bounces]]
    staff_side, reporter_side = side_address(report.id, "staff"), side_address(report.id, "reporter")
    stack.deliver(signed(mail(BOB, staff_side, "Re: CSRF", "We reproduced it and are fixing it.\n")), BOB, [staff_side])
    relayed = [item for item in stack.mails_of(report.id) if "We reproduced it" in plain(item)]
    assert [item.rcpt_tos for item in relayed] == [[alice]]
    assert stack.relay.to(mallory) == []
    # The Reply-To address writing into the thread is someone else, not the reporter.
    intruder = stack.report_of(stack.deliver(mail(mallory, reporter_side, "Re: CSRF", "Send me the details.\n"), mallory, [reporter_side]))
    assert intruder.id != report.id and intruder.flag == "reply address used by another sender"
    stack.quiet()
    assert all(b"SECRET-17" not in item.content for item in stack.relay.to(mallory))
    assert [message.kind for message in stack.report(report.id).messages] == ["report", "staff_reply", "relayed"]


def test_case_18_spoofed_staff_from_is_ignored_and_staff_are_alerted(conversation, sessions: sessionmaker[Session]) -> None:
    daemon, relay = conversation()
    try:
        report, ack, notification = new_report(daemon, relay, sessions)
        staff_side = side_address(report.id, "staff")
        forged = mail(BOB, staff_side, "Re: your report", "#status resolved\n\nPlease send the full exploit to attacker@evil.test\n")
        deliver(daemon.port, forged, staff_side, "attacker@evil.test")
        # signed, but by the attacker's own domain: not aligned with From
        deliver(daemon.port, signed(forged.replace(b"Re: your report", b"Re: again"), b"evil.test"), staff_side, "attacker@evil.test")
        wait_until_processed(sessions, 3)
        relay.wait_for(6)
        time.sleep(1)
        assert relay.to(RESEARCHER) == [ack]
        alerts = relay.to(LEADS)
        assert len(alerts) == 2 and all("unauthenticated staff address" in plain(item) for item in alerts)
        assert all(report.tracking_id in plain(item) and "NOT added" in plain(item) for item in alerts)
    finally:
        relay.stop()
    original, *flagged = all_reports(sessions)
    assert original.status == "new" and [message.kind for message in original.messages] == ["report"]
    assert [(item.flag, item.related_report_id, item.status) for item in flagged] == [("unauthenticated staff address", original.id, "new")] * 2
    assert all(item.automated is None and not relay.to("attacker@evil.test") for item in flagged)
    listing = run_cli(daemon.config_path, "reports", "list").stdout.splitlines()
    assert [line.endswith("[FLAGGED: unauthenticated staff address]") for line in listing] == [False, True, True]


def test_case_19_forged_authentication_results_below_ours_do_not_count(conversation, sessions: sessionmaker[Session]) -> None:
    daemon, relay = conversation(authentication=["authentication-results"], trusted_authserv_id="mx.example.com")
    try:
        report, ack, notification = new_report(daemon, relay, sessions)
        staff_side = side_address(report.id, "staff")
        passed = b"Authentication-Results: mx.example.com; dkim=pass header.d=example.com; spf=pass smtp.mailfrom=example.com\r\n"
        failed = b"Authentication-Results: mx.example.com; dkim=fail header.d=example.com\r\n"
        deliver(daemon.port, passed + mail(BOB, staff_side, "Re: x", "Vouched for by our MX.\n"), staff_side, BOB)
        # an attacker adds a passing header with our authserv-id below the one our MX wrote
        deliver(daemon.port, failed + passed + mail(BOB, staff_side, "Re: y", "Forged further down.\n"), staff_side, "attacker@evil.test")
        wait_until_processed(sessions, 3)
        relay.wait_for(5)
        time.sleep(1)
        relayed = [plain(item) for item in relay.to(RESEARCHER) if item is not ack]
        assert len(relayed) == 1 and "Vouched for by our MX." in relayed[0]
        [alert] = relay.to(LEADS)
        assert "unauthenticated staff address" in plain(alert)
    finally:
        relay.stop()
    assert [item.flag for item in all_reports(sessions)] == [None, "unauthenticated staff address"]


def test_case_20_dkim_of_another_domain_is_rejected(stack: Stack) -> None:
    researcher = "r20@example.org"
    report, ack, _ = stack.new_report(researcher)
    staff_side = side_address(report.id, "staff")
    # a member's From signed by evil.test (valid signature, wrong domain), and an evil.test
    # From signed by evil.test (aligned, but not a member)
    misaligned = signed(mail(BOB, staff_side, "Re: x", "#status resolved\n\nFixed, see https://evil.test/patch\n"), b"evil.test")
    outsider = signed(mail("bob@evil.test", staff_side, "Re: y", "#status rejected\n\nNot a bug.\n"), b"evil.test")
    flagged = [stack.report_of(stack.deliver(raw, "attacker@evil.test", [staff_side])) for raw in (misaligned, outsider)]
    assert [item.flag for item in flagged] == ["unauthenticated staff address", "staff reply address used by a non-staff sender"]
    assert stack.report(report.id).status == "new"
    stack.quiet()
    assert stack.relay.to(researcher) == [ack]
    alerts = "\n".join(plain(item) for item in stack.relay.to(LEADS))
    assert all(item.tracking_id in alerts for item in flagged)
    # The same reply signed by example.com is staff: the keys and DNS server do work.
    stack.deliver(signed(mail(BOB, staff_side, "Re: z", "#status triaged\n\nLooking into it.\n")), BOB, [staff_side])
    assert stack.report(report.id).status == "triaged"


AMBIGUOUS_FROMS = {
    "quoted-display-name": (b'"bob@example.com" <x@evil.test>', "x@evil.test"),
    "unquoted-display-name": (b"bob@example.com <x@evil.test>", "x@evil.test"),
    "double-at": (b"bob@example.com@evil.test", "bob@example.com"),
}


@pytest.mark.parametrize("kind", AMBIGUOUS_FROMS)
def test_case_23_a_from_that_only_looks_like_staff_is_not_staff(stack: Stack, kind: str) -> None:
    """The attacker signs with their own domain (aligned with x@evil.test) and, for the
    double @, also claims the staff address in the envelope."""
    from_header, envelope = AMBIGUOUS_FROMS[kind]
    researcher = f"r23-{kind}@example.org"
    report, ack, _ = stack.new_report(researcher)
    staff_side = side_address(report.id, "staff")
    raw = mail("placeholder@evil.test", staff_side, "Re: x", "#status resolved\n\nFixed. Send the exploit to x@evil.test\n")
    raw = raw.replace(b"From: placeholder@evil.test", b"From: " + from_header, 1)
    row = stack.deliver(signed(raw, b"evil.test"), envelope, [staff_side])
    assert row.report_id != report.id
    intruder = stack.report_of(row)
    assert intruder.flag is not None
    untouched = stack.report(report.id)
    assert untouched.status == "new" and [message.kind for message in untouched.messages] == ["report"]
    stack.quiet()
    assert stack.relay.to(researcher) == [ack]


def test_case_22_replayed_staff_command_acts_once(conversation, sessions: sessionmaker[Session]) -> None:
    daemon, relay = conversation()
    try:
        first, first_ack, _ = new_report(daemon, relay, sessions)
        other, other_ack, _ = new_report(daemon, relay, sessions, sender="carol@other.example")
        staff_side = side_address(first.id, "staff")
        text = f"#status triaged\n\nThis looks related to {other.tracking_id}; we are on it.\n"
        subject = f"Re: [{other.tracking_id}] and [{first.tracking_id}]"
        reply = signed(mail(BOB, staff_side, subject, text, message_id="<reply-1@example.com>"))
        deliver(daemon.port, reply, staff_side, BOB)
        # the same delivery again (new trace headers), and the same mail sent once more
        # through a second staff address: same Message-ID, other From
        deliver(daemon.port, b"Received: from alias.example.com by mx.example.com; Tue, 24 Nov 2026 10:00:05 +0100\r\n" + reply, staff_side, BOB)
        deliver(daemon.port, signed(mail("b.builder@example.com", staff_side, subject, text, message_id="<reply-1@example.com>")), staff_side, "b.builder@example.com")
        wait_until_processed(sessions, 5)
        time.sleep(2)
        relayed = [item for item in relay.to(RESEARCHER) if item is not first_ack]
        assert len(relayed) == 1 and "we are on it" in plain(relayed[0])
        assert relay.to("carol@other.example") == [other_ack]
    finally:
        relay.stop()
    first_now, other_now = report_named(sessions, first.tracking_id), report_named(sessions, other.tracking_id)
    assert first_now.status == "triaged" and other_now.status == "new"
    assert [message.kind for message in first_now.messages] == ["report", "staff_reply", "relayed"]
    assert [message.kind for message in other_now.messages] == ["report"]
