"""Who really sent a mail, from its raw (outer, signed) bytes: is it an authenticated staff
member, and does our MX say its envelope sender is forged? DNS is injected."""

from __future__ import annotations

import logging
from collections.abc import Collection

from mailintake.config.schema import StaffConfig
from mailintake.parse.headers import normalized_line_endings
from mailintake.route.authentication import DnsFunc, StaffVerdict, envelope_sender_forgery, is_member, staff_verdict

log = logging.getLogger(__name__)


class SenderChecks:
    def __init__(self, staff: StaffConfig, own_addresses: Collection[str], lookup: DnsFunc) -> None:
        self.policy = staff.policy()
        self.own_addresses = frozenset(address.lower() for address in own_addresses)
        self.lookup = lookup

    def staff_verdict(self, raw: bytes, from_address: str) -> StaffVerdict:
        # Our own mail coming back is never staff, whatever a member domain covers.
        sender = "" if from_address.lower() in self.own_addresses else from_address
        # Only a member's mail is worth the normalising copy DKIM needs (the hot path).
        signed = normalized_line_endings(raw) if is_member(sender, self.policy.members) else b""
        return staff_verdict(signed, sender, self.policy, self.lookup)

    def sender_forgery(self, raw: bytes, envelope_from: str) -> str | None:
        """Why our trusted MX says the envelope sender is forged, or None (also when no
        trusted MX is configured, or its header cannot be read: no verdict is no forgery)."""
        if not self.policy.trusted_authserv_id:
            return None
        domain = envelope_from.rpartition("@")[2].lower()
        try:
            return envelope_sender_forgery(normalized_line_endings(raw), domain, self.policy.trusted_authserv_id, self.policy.max_received_above_results)
        except Exception as error:
            log.warning("sender check failed unexpectedly (%s)", type(error).__name__)
            return None
