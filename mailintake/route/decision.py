"""Where an inbound mail goes: a new report, a reply from a report's reporter, or a staff reply.

Pure: the caller gathers the facts (signed reply addresses among the envelope recipients,
the strict From address, the staff verdict, the reports a mail refers to) and this decides.
A mail joins an existing report only through a signed reply address or a thread reference
AND a sender who belongs there (every byte from outside is hostile); everything else becomes a new
report, flagged when it looks like someone reaching into a report that is not theirs, and
is never attached to that report or answered with its content.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from mailintake.core.tokens import ReplyToken

RouteKind = Literal["new_report", "reporter_reply", "staff_reply"]

UNAUTHENTICATED_STAFF = "unauthenticated staff address"
STAFF_ADDRESS_MISUSED = "staff reply address used by a non-staff sender"
REPLY_ADDRESS_MISUSED = "reply address used by another sender"
FOREIGN_REFERENCE = "refers to a report of another sender"
SEVERAL_REPORTS = "addressed to several reports"
UNKNOWN_REPORT = "reply address of a report that does not exist"
STAFF_TO_PUBLIC_ADDRESS = "staff mail about a report sent to the public address"


@dataclass(frozen=True)
class Effects:
    """What a new report with this flag causes besides the staff notification:
    `alert`: [staff] alerts are told someone used an address or identity not theirs;
    `answered`: it is a researcher's mail, so it gets deadlines and an acknowledgement."""

    alert: bool
    answered: bool


# Every flag a route can carry (None: not flagged), and what it causes.
FLAG_EFFECTS: Mapping[str | None, Effects] = {
    None: Effects(alert=False, answered=True),
    UNAUTHENTICATED_STAFF: Effects(alert=True, answered=False),
    STAFF_ADDRESS_MISUSED: Effects(alert=True, answered=False),
    REPLY_ADDRESS_MISUSED: Effects(alert=True, answered=True),
    FOREIGN_REFERENCE: Effects(alert=False, answered=True),
    SEVERAL_REPORTS: Effects(alert=False, answered=True),
    UNKNOWN_REPORT: Effects(alert=False, answered=True),
    STAFF_TO_PUBLIC_ADDRESS: Effects(alert=False, answered=False),
}


@dataclass(frozen=True)
class ReportParty:
    """What routing knows of an existing report: who reported it."""

    report_id: int
    reporter_address: str


@dataclass(frozen=True)
class Arrival:
    """Facts of one inbound mail. `referenced` are reports whose messages the mail's
    In-Reply-To/References name, `tagged` those named by a tracking id in its subject."""

    from_address: str
    staff_member: bool = False
    staff_authenticated: bool = False
    tokens: tuple[ReplyToken, ...] = ()
    referenced: tuple[int, ...] = ()
    tagged: tuple[int, ...] = ()
    parties: Mapping[int, ReportParty] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    """`verified` is False for a reporter reply recognised only by the tracking id in its
    subject and its From address, both of which anyone can write."""

    kind: RouteKind
    report_id: int | None = None
    flag: str | None = None
    related_report_id: int | None = None
    verified: bool = True


def route_of(arrival: Arrival) -> Route:
    if arrival.staff_member and not arrival.staff_authenticated:
        return new_report(UNAUTHENTICATED_STAFF, first_of(token_report_ids(arrival.tokens), arrival.referenced, arrival.tagged))
    if arrival.tokens:
        return route_by_reply_address(arrival)
    return route_by_reference(arrival)


def route_by_reply_address(arrival: Arrival) -> Route:
    report_ids = token_report_ids(arrival.tokens)
    if len(report_ids) > 1:
        return new_report(SEVERAL_REPORTS, report_ids[0])
    report_id = report_ids[0]
    if report_id not in arrival.parties:
        return new_report(UNKNOWN_REPORT, None)
    sides = {token.side for token in arrival.tokens}
    if "staff" in sides and arrival.staff_authenticated:
        return Route("staff_reply", report_id)
    if "reporter" in sides and is_reporter(arrival, report_id):
        return Route("reporter_reply", report_id)
    if "staff" in sides and not arrival.staff_authenticated:
        return new_report(STAFF_ADDRESS_MISUSED, report_id)
    return new_report(REPLY_ADDRESS_MISUSED, report_id)


def route_by_reference(arrival: Arrival) -> Route:
    candidates = tuple(dict.fromkeys(arrival.referenced + arrival.tagged))
    if not candidates:
        return Route("new_report")
    if arrival.staff_authenticated:
        return new_report(STAFF_TO_PUBLIC_ADDRESS, candidates[0])
    for report_id in candidates:
        if is_reporter(arrival, report_id):
            return Route("reporter_reply", report_id, verified=report_id in arrival.referenced)
    return new_report(FOREIGN_REFERENCE, candidates[0])


def is_reporter(arrival: Arrival, report_id: int) -> bool:
    party = arrival.parties.get(report_id)
    sender = arrival.from_address.lower()
    return party is not None and bool(sender) and sender == party.reporter_address.lower()


def token_report_ids(tokens: Sequence[ReplyToken]) -> tuple[int, ...]:
    return tuple(dict.fromkeys(token.report_id for token in tokens))


def first_of(*groups: Sequence[int]) -> int | None:
    return next((report_id for group in groups for report_id in group), None)


def new_report(flag: str, related_report_id: int | None) -> Route:
    return Route("new_report", flag=flag, related_report_id=related_report_id)
