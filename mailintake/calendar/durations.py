"""SLA durations: "24 hours", "8 business hours", "3 business days".

Plain "days" are rejected on purpose: "3 days" in a policy is ambiguous between
72 elapsed hours, three calendar days and three business days, and guessing wrong
silently breaks a published promise. The error tells the admin what to write instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Unit = Literal["hours", "business_hours", "business_days"]

UNITS: tuple[Unit, ...] = ("hours", "business_hours", "business_days")
MAX_AMOUNT = 10_000
ACCEPTED_FORMS = "'<N> hours', '<N> business hours' or '<N> business days' (N a whole number from 1 to 10000)"

_DURATION_RE = re.compile(r"^\s*(?P<amount>[0-9]+)\s+(?P<business>business\s+)?(?P<word>hours?|days?)\s*$", re.IGNORECASE)
_SINGULAR: dict[Unit, str] = {"hours": "hour", "business_hours": "business hour", "business_days": "business day"}
_PLURAL: dict[Unit, str] = {"hours": "hours", "business_hours": "business hours", "business_days": "business days"}


class DurationError(ValueError):
    """A duration that is not one of the accepted forms."""


@dataclass(frozen=True)
class Duration:
    amount: int
    unit: Unit

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise DurationError(f"invalid duration unit {self.unit!r}: expected one of {', '.join(UNITS)}")
        if isinstance(self.amount, bool) or not isinstance(self.amount, int) or not 1 <= self.amount <= MAX_AMOUNT:
            raise DurationError(f"invalid duration amount {self.amount!r}: expected a whole number from 1 to {MAX_AMOUNT}")

    def __str__(self) -> str:
        word = _SINGULAR[self.unit] if self.amount == 1 else _PLURAL[self.unit]
        return f"{self.amount} {word}"

    @property
    def is_business(self) -> bool:
        return self.unit != "hours"


def parse_duration(text: str) -> Duration:
    match = _DURATION_RE.match(text) if isinstance(text, str) else None
    if match is None:
        raise DurationError(f"invalid duration {text!r}: expected {ACCEPTED_FORMS}")
    amount = int(match["amount"])
    is_days = match["word"].lower().startswith("day")
    if is_days and not match["business"]:
        raise DurationError(f"invalid duration {text!r}: plain days are ambiguous, write '{amount * 24} hours' or '{amount} business days'; expected {ACCEPTED_FORMS}")
    if not 1 <= amount <= MAX_AMOUNT:
        raise DurationError(f"invalid duration {text!r}: expected {ACCEPTED_FORMS}")
    return Duration(amount, _unit_of(bool(match["business"]), is_days))


def _unit_of(business: bool, days: bool) -> Unit:
    if days:
        return "business_days"
    return "business_hours" if business else "hours"
