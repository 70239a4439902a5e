"""Our side of every mail's addresses and threading: keyed Message-IDs, signed reply
addresses, what staff and reporters are each shown of a thread, and an anonymous reporter
kept out of what staff see."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from mailintake.core.tokens import Side, reply_address
from mailintake.outbound.outbox import key_exists
from mailintake.reports.read_model import hides_reporter, reporter_shown_to_staff
from mailintake.route.machine_mail import our_message_id
from mailintake.storage.models import Message, Report

# Kinds of thread message a staff member wrote; everything else inbound may be the reporter's.
STAFF_AUTHORED = frozenset({"staff_reply", "internal_note", "refused_reply"})
REPORTER_VISIBLE = frozenset({"reporter_reply", "relayed", "notice"})


@dataclass(frozen=True)
class Addressing:
    """One deployment's side: its security address (`sender`), the key that signs reply
    addresses and Message-IDs, and whether staff see anonymous reporters only as an alias."""

    sender: str
    reply_key: bytes
    anonymous_alias: bool

    @property
    def domain(self) -> str:
        return self.sender.rpartition("@")[2]

    def reply_address(self, report: Report, side: Side) -> str:
        """The signed address replies about this report go to: reporters and staff each get
        their own, so a reply's side and report come from the address, never from content."""
        return reply_address(self.sender, report.id, side, self.reply_key)

    def message_id_for(self, key: str) -> str:
        # Keyed: a stranger who knows a report's id cannot compute the Message-IDs of its
        # mail and pose as its reporter by quoting them in References.
        return our_message_id(hmac.new(self.reply_key, key.encode(), hashlib.sha256).hexdigest()[:32], self.domain)

    def notification_id(self, report: Report) -> str:
        return self.message_id_for(f"notify:{report.id}")

    def stand_in_message_id(self, message_id: str) -> str:
        return self.message_id_for(f"stand-in:{message_id}")

    def thread_of(self, report: Report | None) -> tuple[str, ...]:
        """Staff-facing threading: every message of the report. An anonymous reporter's own
        Message-IDs name their mail host, so staff get a keyed stand-in at our domain for
        each: the same one in every mail, so staff clients still thread."""
        if report is None:
            return ()
        hidden = hides_reporter(report, self.anonymous_alias)
        return tuple(self.stand_in_message_id(message.message_id) if hidden and may_be_the_reporters(message) else message.message_id for message in report.messages if message.message_id)

    def reporter_thread(self, session: Session, report: Report) -> tuple[str, ...]:
        """Reporter-facing threading: only what the reporter sent or was sent, so no staff
        member's own Message-ID (it names their host) ever reaches the reporter."""
        ids = [message.message_id for message in report.messages[:1] if message.message_id]
        if key_exists(session, f"ack:{report.id}"):
            ids.append(self.message_id_for(f"ack:{report.id}"))
        ids += [message.message_id for message in report.messages[1:] if message.message_id and message.kind in REPORTER_VISIBLE]
        return tuple(ids)

    def without_hidden_reporter(self, report: Report | None, recipients: Sequence[str], reply: str) -> tuple[list[str], str]:
        """Recipients and relay reply of a failed mail as staff may see them: an anonymous
        reporter's address (the relay may quote it too) replaced by the report's alias."""
        if report is None or not hides_reporter(report, self.anonymous_alias):
            return list(recipients), reply
        alias = reporter_shown_to_staff(report, self.anonymous_alias)
        hidden = {address.lower() for address in (report.reporter.address if report.reporter else "", report.envelope_sender) if address}
        shown = [alias if address.lower() in hidden else address for address in recipients]
        for address in hidden:
            reply = re.sub(re.escape(address), alias, reply, flags=re.IGNORECASE)
        return list(dict.fromkeys(shown)), reply


def may_be_the_reporters(message: Message) -> bool:
    """Inbound mail not written by staff: the report, the reporter's replies, machine mail."""
    return message.direction != "out" and message.kind not in STAFF_AUTHORED


def recipient_addresses(recipients: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(ascii_address(address) for address in recipients))


def ascii_address(address: str) -> str:
    """The envelope form of an address: lower case, international domain in punycode."""
    local, _, domain = address.lower().rpartition("@")
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return address.lower()
