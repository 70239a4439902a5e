"""What a reporter states in plain words: severity, credit, anonymity, URLs and endpoints.

Pure functions over the decoded text body. They look for explicit statements only; a
report that says nothing gets None/False/empty, never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

SEVERITY_SYNONYMS = {"moderate": "medium", "med": "medium", "crit": "critical"}
SEVERITY_WORD = r"(low|medium|moderate|med|high|critical|crit)"
MAX_CREDIT_LENGTH = 120
MAX_FINDINGS = 50

SEVERITY_AFTER_WORD = re.compile(r"\bseverity\b[^\n.;]{0,30}?\b" + SEVERITY_WORD + r"\b", re.IGNORECASE)
SEVERITY_BEFORE_WORD = re.compile(r"\b" + SEVERITY_WORD + r"[- ]severity\b", re.IGNORECASE)
CREDIT_STATEMENT = re.compile(
    r"""(?:\bcredit(?:ed)?\s+(?:me|this|the\s+finding|the\s+report|it)?\s*(?:as|to)\b\s*:?\s*
        |^\s*(?:please\s+)?credit(?:\s+(?:name|as|to))?\s*:\s*)
        (?P<name>[^\n]+)""",
    re.IGNORECASE | re.MULTILINE | re.VERBOSE,
)
ANONYMITY_FIELD = re.compile(r"^\s*(?:remain\s+|stay\s+|report\s+)?anonym\w*\s*[:=]\s*(yes|y|true|no|n|false)\b", re.IGNORECASE | re.MULTILINE)
ANONYMITY_STATEMENT = re.compile(
    r"""\b(?:remain|stay|be|kept|keep\s+me|prefer|wish|want|like|report(?:ing)?|submit(?:ting)?)\s+
        (?:\w+\s+){0,3}anonymous(?:ly)?\b
        |\bdo(?:\s+not|n['’]t)\s+(?:publicly\s+)?(?:credit|name|mention)\s+me\b
        |\bno\s+credit\b""",
    re.IGNORECASE | re.VERBOSE,
)
URL = re.compile(r"\b(?:https?|wss?)://[^\s<>\"'\[\]{}]+", re.IGNORECASE)
ENDPOINT = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)\s+(/[^\s<>\"'`]*)")
TRAILING_PUNCTUATION = ".,;:!?'\"»”’*_"


@dataclass(frozen=True)
class ReporterStatements:
    severity: str | None
    credit: str | None
    anonymous: bool
    urls: tuple[str, ...]
    endpoints: tuple[str, ...]


def reporter_statements(text: str) -> ReporterStatements:
    credit = credit_from(text)
    anonymous = asks_for_anonymity(text) or (credit is not None and credit.lower().startswith("anonymous"))
    return ReporterStatements(
        severity=severity_from(text),
        credit=None if anonymous else credit,
        anonymous=anonymous,
        urls=urls_from(text),
        endpoints=endpoints_from(text),
    )


def severity_from(text: str) -> str | None:
    matches = [match for pattern in (SEVERITY_AFTER_WORD, SEVERITY_BEFORE_WORD) if (match := pattern.search(text))]
    if not matches:
        return None
    word = min(matches, key=lambda match: match.start()).group(1).lower()
    return SEVERITY_SYNONYMS.get(word, word)


def credit_from(text: str) -> str | None:
    match = CREDIT_STATEMENT.search(text)
    if match is None:
        return None
    name = match.group("name").strip().strip(TRAILING_PUNCTUATION).strip()
    name = re.split(r"\s+(?:if|when|once|in|on)\s+(?:you|the|your|any)\b", name, maxsplit=1)[0].strip(TRAILING_PUNCTUATION).strip()
    if not name or len(name) > MAX_CREDIT_LENGTH:
        return None
    return name


def asks_for_anonymity(text: str) -> bool:
    """A form field ("Remain anonymous: no") wins over prose, which is read only without one."""
    field = ANONYMITY_FIELD.search(text)
    if field is not None:
        return field.group(1).lower() in ("yes", "y", "true")
    return ANONYMITY_STATEMENT.search(text) is not None


def urls_from(text: str) -> tuple[str, ...]:
    return unique_in_order(url_without_trailing_punctuation(match.group(0)) for match in URL.finditer(text))


def url_without_trailing_punctuation(url: str) -> str:
    """Drop sentence punctuation and a closing parenthesis that belongs to the prose around the URL."""
    while True:
        trimmed = url.rstrip(TRAILING_PUNCTUATION)
        if trimmed.endswith(")") and trimmed.count(")") > trimmed.count("("):
            trimmed = trimmed[:-1]
        if trimmed == url:
            return url
        url = trimmed


def endpoints_from(text: str) -> tuple[str, ...]:
    found = (f"{match.group(1)} {match.group(2).rstrip(TRAILING_PUNCTUATION)}" for match in ENDPOINT.finditer(text))
    return unique_in_order(found)


def unique_in_order(values: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for value in values:
        if value and len(seen) < MAX_FINDINGS:
            seen.setdefault(value, None)
    return tuple(seen)
