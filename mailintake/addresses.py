"""Strict address parsing with the standard library's RFC 5322 header parser.

Python 3.11.7 has no ``getaddresses(strict=True)``; ``email.headerregistry`` parses
address lists strictly and keeps the display name apart from the addr-spec, so
``"staff@example.com" <x@evil.test>`` yields x@evil.test and never staff@example.com.
"""

from __future__ import annotations

from email import policy
from email.headerregistry import Address
from email.parser import BytesHeaderParser


MAX_ADDRESS_LENGTH = 254
MAX_DISPLAY_NAME_LENGTH = 256


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
    message = BytesHeaderParser(policy=policy.default).parsebytes(
        b"To: " + raw_header_value.encode("utf-8", "surrogateescape").replace(b"\r", b" ").replace(b"\n", b" ") + b"\r\n\r\n"
    )
    header = message["To"]
    if header is None:
        return []
    pairs = []
    for address in header.addresses:
        if address.username and address.domain and len(address.addr_spec) <= MAX_ADDRESS_LENGTH:
            pairs.append((address.display_name[:MAX_DISPLAY_NAME_LENGTH], address.addr_spec.lower()))
    return pairs


def envelope_address(value: str) -> str:
    """The SMTP envelope address as stored: lowercased, '' for the null sender."""
    return value.strip().strip("<>").lower()
