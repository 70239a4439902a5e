"""Routing decisions: who may write into which report."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailintake.core.tokens import ReplyToken
from mailintake.route.decision import (
    FOREIGN_REFERENCE,
    REPLY_ADDRESS_MISUSED,
    SEVERAL_REPORTS,
    STAFF_ADDRESS_MISUSED,
    STAFF_TO_PUBLIC_ADDRESS,
    UNAUTHENTICATED_STAFF,
    UNKNOWN_REPORT,
    Arrival,
    ReportParty,
    Route,
    route_of,
)

ALICE = "alice@researcher.test"
MALLORY = "mallory@evil.test"
STAFF = "bob@example.com"
PARTIES = {1: ReportParty(1, ALICE), 2: ReportParty(2, "carol@other.test")}
REPORTER_1 = ReplyToken(1, "reporter")
STAFF_1 = ReplyToken(1, "staff")
STAFF_2 = ReplyToken(2, "staff")
REPORTER_2 = ReplyToken(2, "reporter")


def arrival(sender: str, *, tokens: tuple[ReplyToken, ...] = (), referenced: tuple[int, ...] = (), tagged: tuple[int, ...] = (), member: bool = False, authenticated: bool = False) -> Arrival:
    return Arrival(from_address=sender, staff_member=member, staff_authenticated=authenticated, tokens=tokens, referenced=referenced, tagged=tagged, parties=PARTIES)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        # a fresh mail to security@
        (arrival(ALICE), Route("new_report")),
        # the reporter answers through the reporter-side address
        (arrival(ALICE, tokens=(REPORTER_1,)), Route("reporter_reply", 1)),
        (arrival(ALICE.upper(), tokens=(REPORTER_1,)), Route("reporter_reply", 1)),
        # the reporter answers security@ with a thread reference or the subject tag
        (arrival(ALICE, referenced=(1,)), Route("reporter_reply", 1)),
        (arrival(ALICE, tagged=(1,)), Route("reporter_reply", 1, verified=False)),
        (arrival(ALICE, referenced=(2,), tagged=(1,)), Route("reporter_reply", 1, verified=False)),
        (arrival(ALICE, referenced=(1,), tagged=(1,)), Route("reporter_reply", 1)),
        # authenticated staff through the staff-side address
        (arrival(STAFF, tokens=(STAFF_1,), member=True, authenticated=True), Route("staff_reply", 1)),
        # reply-all: both sides of one report, the sender decides
        (arrival(STAFF, tokens=(REPORTER_1, STAFF_1), member=True, authenticated=True), Route("staff_reply", 1)),
        (arrival(ALICE, tokens=(REPORTER_1, STAFF_1)), Route("reporter_reply", 1)),
        # forged staff From: never a staff reply, wherever it was sent
        (arrival(STAFF, tokens=(STAFF_1,), member=True), Route("new_report", flag=UNAUTHENTICATED_STAFF, related_report_id=1)),
        (arrival(STAFF, member=True), Route("new_report", flag=UNAUTHENTICATED_STAFF)),
        (arrival(STAFF, tagged=(2,), member=True), Route("new_report", flag=UNAUTHENTICATED_STAFF, related_report_id=2)),
        # a stranger who learned the staff-side address
        (arrival(MALLORY, tokens=(STAFF_1,)), Route("new_report", flag=STAFF_ADDRESS_MISUSED, related_report_id=1)),
        # the reporter cannot act as staff through a leaked staff-side address
        (arrival(ALICE, tokens=(STAFF_1,)), Route("new_report", flag=STAFF_ADDRESS_MISUSED, related_report_id=1)),
        # Ticket Trick: a service mails the reporter-side address with its own sender
        (arrival("noreply@chat.test", tokens=(REPORTER_1,)), Route("new_report", flag=REPLY_ADDRESS_MISUSED, related_report_id=1)),
        # the reporter of report 2 using report 1's address
        (arrival("carol@other.test", tokens=(REPORTER_1,)), Route("new_report", flag=REPLY_ADDRESS_MISUSED, related_report_id=1)),
        # staff writing to a reporter-side address is not a staff reply
        (arrival(STAFF, tokens=(REPORTER_1,), member=True, authenticated=True), Route("new_report", flag=REPLY_ADDRESS_MISUSED, related_report_id=1)),
        # an attacker who knows a tracking id or a Message-ID
        (arrival(MALLORY, tagged=(1,)), Route("new_report", flag=FOREIGN_REFERENCE, related_report_id=1)),
        (arrival(MALLORY, referenced=(1,)), Route("new_report", flag=FOREIGN_REFERENCE, related_report_id=1)),
        # an ambiguous From (empty after strict parsing) never matches a reporter
        (arrival("", tokens=(REPORTER_1,)), Route("new_report", flag=REPLY_ADDRESS_MISUSED, related_report_id=1)),
        (arrival("", tagged=(1,)), Route("new_report", flag=FOREIGN_REFERENCE, related_report_id=1)),
        # addresses of two reports in one mail
        (arrival(STAFF, tokens=(STAFF_1, STAFF_2), member=True, authenticated=True), Route("new_report", flag=SEVERAL_REPORTS, related_report_id=1)),
        (arrival(ALICE, tokens=(REPORTER_1, REPORTER_2)), Route("new_report", flag=SEVERAL_REPORTS, related_report_id=1)),
        # authenticated staff writing to security@ about a report
        (arrival(STAFF, tagged=(1,), member=True, authenticated=True), Route("new_report", flag=STAFF_TO_PUBLIC_ADDRESS, related_report_id=1)),
        # a valid token of a report that does not exist (a restored database): a new report
        (arrival(ALICE, tokens=(ReplyToken(9, "reporter"),)), Route("new_report", flag=UNKNOWN_REPORT)),
        (arrival(STAFF, tokens=(ReplyToken(9, "staff"),), member=True, authenticated=True), Route("new_report", flag=UNKNOWN_REPORT)),
    ],
)
def test_route(case: Arrival, expected: Route) -> None:
    assert route_of(case) == expected


senders = st.sampled_from([ALICE, MALLORY, STAFF, "", "carol@other.test"])
tokens = st.lists(st.sampled_from([REPORTER_1, STAFF_1, REPORTER_2, STAFF_2]), max_size=3).map(tuple)
ids = st.lists(st.sampled_from([1, 2, 3]), max_size=3).map(tuple)


@given(senders, tokens, ids, ids, st.booleans(), st.booleans())
def test_only_authenticated_staff_or_the_reporter_ever_join_a_report(sender: str, reply_tokens: tuple[ReplyToken, ...], referenced: tuple[int, ...], tagged: tuple[int, ...], member: bool, authenticated: bool) -> None:
    route = route_of(arrival(sender, tokens=reply_tokens, referenced=referenced, tagged=tagged, member=member, authenticated=member and authenticated))
    if route.kind == "staff_reply":
        assert member and authenticated
        assert ReplyToken(route.report_id, "staff") in reply_tokens
    elif route.kind == "reporter_reply":
        assert route.report_id is not None
        assert sender == PARTIES[route.report_id].reporter_address
        assert authenticated or not member
    else:
        assert route.report_id is None
