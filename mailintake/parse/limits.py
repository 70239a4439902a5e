"""The parse limits, and the bounded walk of a message's parts that applies them: what a
limit leaves out of a report stays in the stored raw bytes. Pure."""

from __future__ import annotations

import email.message
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ParseLimits:
    """How much of a message is read into a report; the rest stays in the stored raw bytes.
    Applied inside the bounded parser process, so what it hands back is bounded too."""

    max_parts: int = 1000
    max_depth: int = 50
    max_headers: int = 1000


DEFAULT_LIMITS = ParseLimits()
# Defects that say a limit left part of a message out of its report ("Name:what was left out").
LIMIT_DEFECTS = ("TooManyParts", "NestingTooDeep", "TooManyHeaderFields", "DecodedSizeLimit")


def left_out_by_limits(defects: Sequence[str]) -> list[str]:
    """What the parse limits left out of a report, e.g. "29000 of 30000 parts left out"."""
    return [defect.partition(":")[2] for defect in defects if defect.partition(":")[0] in LIMIT_DEFECTS]


@dataclass(frozen=True)
class Shape:
    kept: tuple[email.message.Message, ...]
    defects: tuple[str, ...]


def shape_of(message: email.message.Message, limits: ParseLimits) -> Shape:
    """The leaf parts within the limits, in order, and what was left out. Iterative: a
    message nested deeper than Python's recursion limit is read too."""
    kept: list[email.message.Message] = []
    leaves = deepest = 0
    stack: list[tuple[email.message.Message, int]] = [(message, 0)]
    while stack:
        part, depth = stack.pop()
        deepest = max(deepest, depth)
        children = part.get_payload() if part.is_multipart() else None
        if isinstance(children, list):
            if depth < limits.max_depth:
                stack.extend((child, depth + 1) for child in reversed(children) if isinstance(child, email.message.Message))
            continue
        leaves += 1
        if len(kept) < limits.max_parts:
            kept.append(part)
    defects = []
    if leaves > len(kept):
        defects.append(f"TooManyParts:{leaves - len(kept)} of {leaves} parts left out")
    if deepest >= limits.max_depth:
        defects.append(f"NestingTooDeep:parts below depth {limits.max_depth} left out")
    if len(message.keys()) > limits.max_headers:
        defects.append(f"TooManyHeaderFields:{len(message.keys())}")
    return Shape(tuple(kept), tuple(defects))
