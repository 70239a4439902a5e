"""A staff member's reply → the text relayed to the reporter. Pure: no I/O, no clock.

Only what the staff member wrote survives: the quoted notification (with its header line),
the signature and any "Sent from my iPhone" trailer go, and the staff member's own
address becomes the public address. quotequail finds where a quote starts ("On … wrote:"
in many languages, "-----Original Message-----", Outlook's "From: … Sent: …" block, a
block of "> " lines); the rest is small line rules around it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import quotequail
from mailparser_reply.constants import MAIL_LANGUAGES

from mailintake.parse.headers import MAX_SUBJECT_LENGTH

# quotequail's patterns are super-linear in the length of a line and its header search in
# the number of lines, so it sees at most this many lines, each cut to this width; a quote
# header is short and near the top of what is left. Text beyond the window counts as quoted.
QUOTE_SEARCH_LINES = 1000
QUOTE_SEARCH_WIDTH = 200
MAX_REPLY_SEGMENTS = 20
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
REPLY_PREFIXES = r"re|aw|sv|antw(?:ort)?|fwd?|wg|tr|odp"
# Any bracketed id shaped like a tracking id, not only ours (core/vocabulary.py has that
# grammar): base_subject is not told the configured prefix, which may also have changed
# since the subject was written, so it strips every tag that may be one of ours.
ANY_TRACKING_TAG = r"\[[A-Za-z][A-Za-z0-9]{0,19}-[0-9]{4}-[0-9]{1,12}\]"
LEADING_PREFIXES = re.compile(rf"(?:\s*(?:(?:{REPLY_PREFIXES})(?:\s*\[[0-9]{{1,6}}\])?\s*:|{ANY_TRACKING_TAG}))*\s*", re.IGNORECASE)
TRAILING_TAGS = re.compile(rf"(?:\s*{ANY_TRACKING_TAG})+\s*\Z", re.IGNORECASE)
# mail-parser-reply's own "Sent from my iPhone" / "Get Outlook for iOS" rule, every language.
SENT_FROM = re.compile(
    "(?:{}) ?(?:[\\w.<>:/ ]+|(?:\\w+ ){{1,3}})".format("|".join(f"(?:{rules['sent_from']})" for rules in MAIL_LANGUAGES.values() if rules.get("sent_from"))),
    re.IGNORECASE,
)


@dataclass(frozen=True)
class CleanReply:
    text: str
    removed_quote: bool
    removed_signature: bool


@dataclass(frozen=True)
class Segment:
    """Lines [start, end) of the reply that the staff member wrote between quotes."""

    start: int
    end: int


def clean_staff_reply(
    text: str,
    *,
    personal_addresses: Iterable[str],
    public_address: str,
    signature_markers: Sequence[str] = ("-- ",),
    html: str | None = None,
) -> CleanReply:
    """The reply as the reporter may see it. `html` (the HTML of an HTML-only reply) is
    accepted but not needed: quote finding on its text form covers every client in the
    fixture corpus, and quotequail.quote_html cannot be bounded like the text search."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    segments, removed_quote = reply_segments(lines)
    markers = {marker.strip() for marker in signature_markers if marker.strip()}
    kept: list[list[str]] = []
    removed_signature = False
    for segment in segments:
        written, cut = without_signature(without_attribution(lines, segment), markers)
        removed_signature |= cut
        if any(line.strip() for line in written):
            kept.append(trimmed(written))
    reply = "\n\n".join("\n".join(block) for block in kept)
    return CleanReply(public_addresses(reply, personal_addresses, public_address), removed_quote, removed_signature)


def base_subject(subject: str) -> str:
    """The subject without reply/forward prefixes and without our "[SEC-2026-0042]" tag."""
    line = " ".join(CONTROL_CHARACTERS.sub(" ", subject).split())[:MAX_SUBJECT_LENGTH]
    line = line[LEADING_PREFIXES.match(line).end() :]
    return TRAILING_TAGS.sub("", line).strip()


def reply_segments(lines: list[str]) -> tuple[list[Segment], bool]:
    """The runs of lines outside quotes: the text above the first quote header (top-posting)
    and, where the header is followed by a "> " block, the text below it (bottom-posting)."""
    segments: list[Segment] = []
    position = 0
    for _ in range(MAX_REPLY_SEGMENTS):
        start = quote_start(lines, position)
        if start is None:
            segments.append(Segment(position, len(lines)))
            return segments, bool(segments[1:])
        segments.append(Segment(position, start))
        resume = end_of_quote_block(lines, start)
        if resume is None:
            break
        position = resume
    return segments, True


def quote_start(lines: list[str], position: int) -> int | None:
    """The first line at or after `position` that starts a quote: a quote header found by
    quotequail, a "> " line, or the end of the search window."""
    window = [line[:QUOTE_SEARCH_WIDTH] for line in lines[position : position + QUOTE_SEARCH_LINES]]
    candidates = [position + index for index, line in enumerate(window) if is_quoted(line)][:1]
    header = quotequail_header(window)
    if header is not None:
        candidates.append(position + header)
    if len(lines) - position > QUOTE_SEARCH_LINES:
        candidates.append(position + QUOTE_SEARCH_LINES)
    return min(candidates, default=None)


def quotequail_header(window: list[str]) -> int | None:
    """Index of the line where quotequail.unwrap sees a reply, forward or quote begin. It
    returns the text above that line, stripped; the header is the next non-blank line."""
    text = "\n".join(window)
    found = quotequail.unwrap(text)
    if found is None:
        return None
    top = found.get("text_top", "")
    first = text.index(top) + len(top) if top else 0
    after_top = text.count("\n", 0, first) + (1 if top else 0)
    return next((index for index in range(after_top, len(window)) if window[index].strip()), None)


def end_of_quote_block(lines: list[str], start: int) -> int | None:
    """Where the text after a quote resumes, if the quote at `start` is a header line (maybe
    wrapped onto a second line) followed by a "> " block; None if everything below is quote."""
    index = start
    if not is_quoted(lines[index]):
        if not lines[index].rstrip().endswith(":") and index + 1 < len(lines) and lines[index + 1].rstrip().endswith(":"):
            index += 1
        index = next_non_blank(lines, index + 1)
        if index >= len(lines) or not is_quoted(lines[index]):
            return None
    while index < len(lines):
        if is_quoted(lines[index]):
            index += 1
            continue
        following = next_non_blank(lines, index)
        if following >= len(lines) or not is_quoted(lines[following]):
            break
        index = following
    return index


def without_attribution(lines: list[str], segment: Segment) -> list[str]:
    """The segment without the line that introduces the "> " block after it, which no
    pattern knows (mutt's "* Name <address> [date]:"): any line ending in ":" counts."""
    return [lines[index] for index in range(segment.start, segment.end) if not is_attribution(lines, index)]


def is_attribution(lines: list[str], index: int) -> bool:
    if not lines[index].rstrip().endswith(":"):
        return False
    following = next_non_blank(lines, index + 1)
    return following < len(lines) and is_quoted(lines[following])


def without_signature(lines: list[str], markers: set[str]) -> tuple[list[str], bool]:
    """The lines above the first signature marker ("-- " or "--", whitespace around it
    ignored) and above a "Sent from my iPhone" trailer at the end of the lines."""
    for index, line in enumerate(lines):
        if line.strip() in markers:
            return lines[:index], True
    written = trimmed(lines)
    if written and len(written[-1]) <= QUOTE_SEARCH_WIDTH and SENT_FROM.fullmatch(written[-1].strip()):
        return written[:-1], True
    return lines, False


def public_addresses(text: str, personal_addresses: Iterable[str], public_address: str) -> str:
    """Every personal address (any case; bare, in <…>, after mailto:, or with "@" written
    as %40) replaced by the public address."""
    addresses = sorted({address.strip() for address in personal_addresses if address.strip()}, key=len, reverse=True)
    if not addresses:
        return text
    pattern = "|".join(address_pattern(address) for address in addresses)
    return re.sub(rf"(?<![\w.+-])(?:{pattern})(?![\w-])", lambda _: public_address, text, flags=re.IGNORECASE)


def address_pattern(address: str) -> str:
    local, at, domain = address.rpartition("@")
    return f"{re.escape(local)}(?:@|%40){re.escape(domain)}" if at else re.escape(address)


def is_quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


def next_non_blank(lines: list[str], index: int) -> int:
    while index < len(lines) and not lines[index].strip():
        index += 1
    return index


def trimmed(lines: list[str]) -> list[str]:
    """Without leading and trailing blank lines."""
    start = next_non_blank(lines, 0)
    end = len(lines)
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end]
