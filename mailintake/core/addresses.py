"""Strict address parsing with the standard library's RFC 5322 header parser.

Python 3.11.7 has no ``getaddresses(strict=True)``; ``email.headerregistry`` parses
address lists strictly and keeps the display name apart from the addr-spec, so
``"staff@example.com" <x@evil.test>`` yields x@evil.test and never staff@example.com.
"""

from __future__ import annotations

import re
from email import errors, policy
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.headerregistry import Address, AddressHeader
from email.parser import Parser

MAX_ADDRESS_LENGTH = 254
MAX_DISPLAY_NAME_LENGTH = 256
MAX_HEADER_LENGTH = 16_384
ENCODED_WORD = re.compile(r"=\?[^?\s]{1,64}\?[bBqQ]\?[^?\s]*\?=")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


class AddressError(ValueError):
    """Text that is not exactly one plain addr-spec."""


def normalized_addr_spec(value: str) -> str:
    """Validate one bare address (local@domain.tld) and return it lowercased."""
    try:
        address = Address(addr_spec=value.strip())
    except (ValueError, IndexError) as error:
        raise AddressError(f"{value!r} is not a plain address like security@example.com") from error
    if not address.username or "." not in address.domain:
        raise AddressError(f"{value!r} is not a plain address like security@example.com")
    return address.addr_spec.lower()


def header_addresses(raw_header_value: str) -> list[tuple[str, str]]:
    """(display name, lowercased addr-spec) pairs of an address header, dropping unusable ones
    (no domain, or longer than the 254 octets RFC 5321 allows)."""
    return usable_pairs(parsed_address_header(raw_header_value))


def single_sender(raw_from_values: list[str]) -> tuple[str, str] | None:
    """The one (display name, addr-spec) of a From header, or None when it is ambiguous:
    several From fields, several mailboxes, or a malformed list that mail clients read
    differently from us (`staff@example.com <x@evil.test>`)."""
    if len(raw_from_values) != 1:
        return None
    header = parsed_address_header(raw_from_values[0])
    pairs = usable_pairs(header)
    if len(header.addresses) != 1 or len(pairs) != 1 or any(is_ambiguity(defect) for defect in header.defects):
        return None
    return pairs[0]


def parsed_address_header(raw_header_value: str) -> AddressHeader:
    """Parse with the strict RFC 5322/6532 parser. Raw 8-bit header bytes (kept as surrogate
    escapes by the compat32 parser) are read as UTF-8; only the first MAX_HEADER_LENGTH
    characters are read, so a 1 MB To: header cannot stall parsing."""
    text = raw_header_value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    text = text[:MAX_HEADER_LENGTH].replace("\r", " ").replace("\n", " ").replace("\x00", "")
    try:
        return Parser(policy=policy.default).parsestr(f"To: {text}\n\n")["To"]
    except ValueError:
        # An encoded word that decodes to CR, LF or NUL (=?utf-8?q?Eve=0D=0Ax?=): the
        # standard library refuses such a display name outright. Read it as plain text.
        return Parser(policy=policy.default).parsestr(f"To: {ENCODED_WORD.sub(quoted_plain_word, text)}\n\n")["To"]


def quoted_plain_word(match: re.Match[str]) -> str:
    """An encoded word as a quoted string of its text, control characters made spaces."""
    try:
        decoded = str(make_header(decode_header(match.group(0))))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        decoded = match.group(0)
    cleaned = " ".join(CONTROL_CHARACTERS.sub(" ", decoded).split())
    return '"' + cleaned.replace("\\", "\\\\").replace('"', '\\"') + '"'


def usable_pairs(header: AddressHeader | None) -> list[tuple[str, str]]:
    if header is None:
        return []
    return [(address.display_name[:MAX_DISPLAY_NAME_LENGTH], address.addr_spec.lower()) for address in header.addresses if address.username and address.domain and len(address.addr_spec) <= MAX_ADDRESS_LENGTH]


def is_ambiguity(defect: Exception) -> bool:
    return isinstance(defect, errors.InvalidHeaderDefect) and not isinstance(defect, errors.NonASCIILocalPartDefect)


def envelope_address(value: str) -> str:
    """The SMTP envelope address as stored: lowercased, '' for the null sender, and storable
    (aiosmtpd hands over undecodable bytes as surrogate escapes; NUL and controls go)."""
    return storable_line(value).strip().strip("<>").lower()


def storable_line(value: str) -> str:
    text = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return "".join(character for character in text if character.isprintable())
