"""HMAC-signed reply addresses: `security+TOKEN@example.com`, one per report and side.

TOKEN is a side letter ("r" reporter, "s" staff), the report id in base 36, "-", and
16 lowercase base32 characters: the first 80 bits of an HMAC-SHA256 over the side, the
report id and the base address. Everything is lowercase because some MTAs lowercase
local parts; parsing is case-insensitive. A plus-address or a tracking id alone never
validates: ids guessed from a sequence must authorise nothing. Pure: no clock, no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Literal

Side = Literal["reporter", "staff"]

MAX_REPORT_ID = 10**12
MAX_LOCAL_PART = 64
MAX_ADDRESS_LENGTH = 254
MIN_SECRET_LENGTH = 32
MIN_KEY_LENGTH = 16
MAC_BYTES = 10
SEPARATOR = "-"

SIDE_LETTERS: dict[Side, str] = {"reporter": "r", "staff": "s"}
SIDES_BY_LETTER: dict[str, Side] = {letter: side for side, letter in SIDE_LETTERS.items()}
BASE36_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
MAC_CHARS = (MAC_BYTES * 8 + 4) // 5
REPORT_DIGITS = r"[1-9a-z][0-9a-z]{0,7}"
MAC_DIGITS = rf"[a-z2-7]{{{MAC_CHARS}}}"
TOKEN = re.compile(rf"([rs])({REPORT_DIGITS}){SEPARATOR}({MAC_DIGITS})")
BASE_LOCAL = re.compile(r"[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?")
BASE_DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
KEY_CONTEXT = b"mailintake reply-address key v1"
MAC_CONTEXT = b"mailintake reply-address v1"


@dataclass(frozen=True)
class ReplyToken:
    report_id: int
    side: Side


def key_from_text(secret: str) -> bytes:
    """The HMAC key for reply addresses, derived from the configured secret (surrounding
    whitespace, such as a trailing newline from a secrets file, is ignored)."""
    secret = secret.strip()
    length = len(secret)
    if length < MIN_SECRET_LENGTH:
        raise ValueError(f"reply-address secret must be at least {MIN_SECRET_LENGTH} characters, got {length} (make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return hmac.new(secret.encode("utf-8"), KEY_CONTEXT, hashlib.sha256).digest()


def checked_base(base: str) -> tuple[str, str]:
    """(local, domain) of the lowercased base address; ValueError unless it is a plain ASCII
    address without "+" whose reply addresses fit in 64 octets for every report id."""
    text = base.lower()
    local, at, domain = text.partition("@")
    if not at or not BASE_LOCAL.fullmatch(local) or not BASE_DOMAIN.fullmatch(domain):
        raise ValueError(f"{base!r} is not a plain ASCII address like security@example.com")
    longest = len(local) + 1 + len(token_text(MAX_REPORT_ID, "staff", bytes(MIN_KEY_LENGTH), text))
    if longest > MAX_LOCAL_PART or len(text) - len(local) + longest > MAX_ADDRESS_LENGTH:
        raise ValueError(f"{base!r}: local part too long for reply addresses (at most {len(local) + MAX_LOCAL_PART - longest} characters)")
    return local, domain


def reply_address(base: str, report_id: int, side: Side, key: bytes) -> str:
    """`local+TOKEN@domain` for one report and side; ValueError for a bad base, id, side or key."""
    local, domain = checked_base(base)
    if side not in SIDE_LETTERS:
        raise ValueError(f"side must be 'reporter' or 'staff', got {side!r}")
    if isinstance(report_id, bool) or not isinstance(report_id, int) or not 1 <= report_id <= MAX_REPORT_ID:
        raise ValueError(f"report id must be an integer from 1 to {MAX_REPORT_ID}, got {report_id!r}")
    if len(key) < MIN_KEY_LENGTH:
        raise ValueError(f"reply-address key must be at least {MIN_KEY_LENGTH} bytes")
    return f"{local}+{token_text(report_id, side, key, f'{local}@{domain}')}@{domain}"


def parse_reply_address(address: str, base: str, key: bytes) -> ReplyToken | None:
    """The report and side a reply address stands for, or None for anything else:
    another base, a malformed or unsigned token, extra "+" parts, non-ASCII, over-long input."""
    if not isinstance(address, str) or len(address) > MAX_ADDRESS_LENGTH or not address.isascii():
        return None
    if len(key) < MIN_KEY_LENGTH:
        return None
    try:
        local, domain = checked_base(base)
    except ValueError:
        return None
    received_local, at, received_domain = address.lower().rpartition("@")
    prefix = f"{local}+"
    if not at or received_domain != domain or not received_local.startswith(prefix) or len(received_local) > MAX_LOCAL_PART:
        return None
    match = TOKEN.fullmatch(received_local[len(prefix) :])
    if match is None:
        return None
    letter, digits, mac = match.groups()
    report_id = int(digits, 36)
    if report_id > MAX_REPORT_ID:
        return None
    side = SIDES_BY_LETTER[letter]
    if not hmac.compare_digest(mac, mac_text(report_id, side, key, f"{local}@{domain}")):
        return None
    return ReplyToken(report_id=report_id, side=side)


def reply_address_pattern(base: str, side: Side) -> re.Pattern[str]:
    """Any address shaped like a reply address of this base and side, in any case: to find
    one quoted in a mail's text, never to trust one (parse_reply_address checks the MAC)."""
    local, _, domain = base.partition("@")
    token = rf"{SIDE_LETTERS[side]}{REPORT_DIGITS}{SEPARATOR}{MAC_DIGITS}"
    return re.compile(rf"{re.escape(local)}\+{token}@{re.escape(domain)}", re.IGNORECASE)


def token_text(report_id: int, side: Side, key: bytes, base: str) -> str:
    return f"{SIDE_LETTERS[side]}{base36(report_id)}{SEPARATOR}{mac_text(report_id, side, key, base)}"


def mac_text(report_id: int, side: Side, key: bytes, base: str) -> str:
    message = b"\x00".join((MAC_CONTEXT, side.encode("ascii"), str(report_id).encode("ascii"), base.encode("ascii")))
    digest = hmac.new(key, message, hashlib.sha256).digest()[:MAC_BYTES]
    return base64.b32encode(digest).decode("ascii").rstrip("=").lower()


def base36(number: int) -> str:
    digits = ""
    while number:
        number, remainder = divmod(number, 36)
        digits = BASE36_DIGITS[remainder] + digits
    return digits or "0"
