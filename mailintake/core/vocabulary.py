"""The words every stage shares, each stated once: report statuses, severities, milestone
titles and the shape of a tracking id."""

from __future__ import annotations

import re

STATUSES = ("new", "triaged", "accepted", "fixing", "resolved", "rejected", "duplicate", "out-of-scope")
# What staff may set with #status: every status but the one a report starts in.
SETTABLE_STATUSES = STATUSES[1:]
CLOSED_STATUSES = frozenset({"resolved", "rejected", "duplicate", "out-of-scope"})
SEVERITIES = ("low", "medium", "high", "critical")

MILESTONE_TITLES = {
    "acknowledge": "Acknowledgement",
    "confirm": "Confirmation of receipt",
    "assess": "Initial assessment",
    "update": "Progress update",
    "resolve": "Resolution",
    "notify_resolved": "Resolution notice",
}

# A tracking id is PREFIX-YEAR-NUMBER: the prefix is 1 to 10 ASCII letters ([intake]
# tracking_prefix), the number at least four digits.
TRACKING_PREFIX = r"[A-Za-z]{1,10}"
TRACKING_NUMBER = r"[0-9]{4}-[0-9]{4,9}"
TRACKING_ID = re.compile(rf"{TRACKING_PREFIX}-{TRACKING_NUMBER}")


def title_of(milestone: str) -> str:
    return MILESTONE_TITLES.get(milestone, milestone.replace("_", " ").capitalize())


def tracking_id(prefix: str, year: int, number: int) -> str:
    return f"{prefix}-{year}-{number:04d}"


def tracking_tag_pattern(prefix: str) -> str:
    """A tracking id with this prefix in a subject's square brackets, captured."""
    return rf"\[({re.escape(prefix)}-{TRACKING_NUMBER})\]"
