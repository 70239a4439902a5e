"""HMAC-signed reply addresses: round trips, tampering, garbage, length bounds."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailintake.core.tokens import (
    MAX_REPORT_ID,
    ReplyToken,
    checked_base,
    key_from_text,
    parse_reply_address,
    reply_address,
)

BASE = "security@example.com"
KEY = key_from_text("correct horse battery staple, 32+ characters long")
OTHER_KEY = key_from_text("another secret of at least thirty-two characters")
SIDES = ("reporter", "staff")


def token_of(address: str) -> str:
    return address.partition("+")[2].rpartition("@")[0]


@given(report_id=st.integers(min_value=1, max_value=MAX_REPORT_ID), side=st.sampled_from(SIDES))
@settings(max_examples=300)
def test_round_trip(report_id: int, side: str) -> None:
    address = reply_address(BASE, report_id, side, KEY)  # type: ignore[arg-type]
    assert parse_reply_address(address, BASE, KEY) == ReplyToken(report_id, side)  # type: ignore[arg-type]
    assert address == address.lower()
    assert address.startswith("security+") and address.endswith("@example.com")


@pytest.mark.parametrize("report_id", [1, 35, 36, 1295, 1296, 10**6, MAX_REPORT_ID])
@pytest.mark.parametrize("side", SIDES)
def test_round_trip_edges(report_id: int, side: str) -> None:
    address = reply_address(BASE, report_id, side, KEY)  # type: ignore[arg-type]
    assert parse_reply_address(address, BASE, KEY) == ReplyToken(report_id, side)  # type: ignore[arg-type]


def test_shape() -> None:
    address = reply_address(BASE, 42, "reporter", KEY)
    token = token_of(address)
    letter_and_id, separator, mac = token.partition("-")
    assert (letter_and_id, separator) == ("r16", "-")
    assert len(mac) == 16 and set(mac) <= set("abcdefghijklmnopqrstuvwxyz234567")
    assert token_of(reply_address(BASE, 42, "staff", KEY)).startswith("s16-")


@pytest.mark.parametrize("side", SIDES)
def test_every_single_character_change_fails(side: str) -> None:
    address = reply_address(BASE, 123_456, side, KEY)  # type: ignore[arg-type]
    token = token_of(address)
    for position, original in enumerate(token):
        for replacement in string.ascii_lowercase + string.digits + "-+._":
            if replacement == original:
                continue
            tampered = f"security+{token[:position]}{replacement}{token[position + 1 :]}@example.com"
            assert parse_reply_address(tampered, BASE, KEY) is None, tampered


@pytest.mark.parametrize("side", SIDES)
def test_dropping_or_adding_a_character_fails(side: str) -> None:
    token = token_of(reply_address(BASE, 77, side, KEY))  # type: ignore[arg-type]
    variants = [token[:i] + token[i + 1 :] for i in range(len(token))] + [token + "a", "a" + token, token + "="]
    for variant in variants:
        assert parse_reply_address(f"security+{variant}@example.com", BASE, KEY) is None, variant


def test_swapping_the_side_fails() -> None:
    reporter = reply_address(BASE, 9, "reporter", KEY)
    staff = reply_address(BASE, 9, "staff", KEY)
    assert parse_reply_address(reporter.replace("+r", "+s", 1), BASE, KEY) is None
    assert parse_reply_address(staff.replace("+s", "+r", 1), BASE, KEY) is None


def test_other_report_id_with_the_same_mac_fails() -> None:
    token = token_of(reply_address(BASE, 10, "staff", KEY))
    mac = token.partition("-")[2]
    for other in ("s9", "s0a", "sb", "s00a"):
        assert parse_reply_address(f"security+{other}-{mac}@example.com", BASE, KEY) is None


def test_other_key_fails() -> None:
    assert parse_reply_address(reply_address(BASE, 5, "reporter", KEY), BASE, OTHER_KEY) is None


@pytest.mark.parametrize("other_base", ["psirt@example.com", "security@example.org", "security@mail.example.com"])
def test_token_for_another_base_fails(other_base: str) -> None:
    address = reply_address(other_base, 5, "reporter", KEY)
    assert parse_reply_address(address, other_base, KEY) == ReplyToken(5, "reporter")
    local, domain = other_base.split("@")
    assert parse_reply_address(address.replace(f"{local}+", "security+").replace(domain, "example.com"), BASE, KEY) is None
    assert parse_reply_address(address, BASE, KEY) is None


@pytest.mark.parametrize("transform", [str.upper, str.title, str.swapcase, lambda a: a[:12].upper() + a[12:]])
def test_case_changes_still_validate(transform) -> None:
    address = reply_address(BASE, 4711, "staff", KEY)
    assert parse_reply_address(transform(address), BASE, KEY) == ReplyToken(4711, "staff")
    assert parse_reply_address(address, "Security@Example.COM", KEY) == ReplyToken(4711, "staff")


def test_base_case_does_not_change_the_address() -> None:
    assert reply_address("Security@Example.COM", 3, "reporter", KEY) == reply_address(BASE, 3, "reporter", KEY)


VALID = reply_address(BASE, 1, "reporter", KEY)
GARBAGE = [
    "",
    " ",
    "@",
    "security@example.com",
    "SEC-2026-0001@example.com",
    "security+@example.com",
    "security+r@example.com",
    "security+r1@example.com",
    "security+r1-@example.com",
    "security+r1-xxx@example.com",
    "security+r1-xxx+y@example.com",
    "security+x1-aaaaaaaaaaaaaaaa@example.com",
    "security+r0-aaaaaaaaaaaaaaaa@example.com",
    "security+r1-aaaaaaaaaaaaaaaa@example.com",
    "security+sec-2026-0001@example.com",
    "security+security+r1-aaaaaaaaaaaaaaaa@example.com",
    VALID.replace("@example.com", "@evil.test"),
    VALID.replace("@example.com", "@example.com.evil.test"),
    VALID.replace("@example.com", "@sub.example.com"),
    VALID.replace("security+", "psirt+"),
    VALID.replace("security+", "xsecurity+"),
    VALID.replace("security+", "security++"),
    VALID.replace("security+", "security-"),
    VALID + "+y",
    VALID.replace("@", "+y@"),
    VALID + ".",
    VALID + " ",
    " " + VALID,
    "<" + VALID + ">",
    '"' + VALID.partition("@")[0] + '"@example.com',
    VALID.replace("@", "@@"),
    VALID + "@example.com",
    VALID.partition("@")[0],
    VALID.replace("-", "=", 1),
    VALID.replace("r", "ŕ", 1),
    VALID.replace("example", "exämple"),
    VALID.replace("s", "\u0455", 1),
    VALID + "\x00",
    VALID.replace("@", "\r\n@"),
    "☃@example.com",
    "security+" + "a" * 10_000 + "@example.com",
    VALID.replace("@", "@" + "a" * 10_000 + "."),
    VALID * 200,
    "\udcff" + VALID,
]


@pytest.mark.parametrize("address", GARBAGE)
def test_garbage_is_none(address: str) -> None:
    assert parse_reply_address(address, BASE, KEY) is None


@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(text: str) -> None:
    assert parse_reply_address(text, BASE, KEY) is None
    assert parse_reply_address(f"security+{text}@example.com", BASE, KEY) is None


@pytest.mark.parametrize("bad_base", ["", "security", "security+x@example.com", "s@", "@example.com", "sécurité@example.com", "a@b", "security@example.com "])
def test_bad_base_never_validates_and_refuses_to_build(bad_base: str) -> None:
    assert parse_reply_address(VALID, bad_base, KEY) is None
    with pytest.raises(ValueError):
        reply_address(bad_base, 1, "reporter", KEY)


def test_local_part_stays_within_64_octets() -> None:
    base = "s" * 37 + "@example.com"
    for side in SIDES:
        address = reply_address(base, MAX_REPORT_ID, side, KEY)  # type: ignore[arg-type]
        local = address.rpartition("@")[0]
        assert len(local.encode("ascii")) == 64
        assert parse_reply_address(address, base, KEY) == ReplyToken(MAX_REPORT_ID, side)  # type: ignore[arg-type]
    assert len(reply_address(BASE, MAX_REPORT_ID, "staff", KEY).rpartition("@")[0]) <= 64


def test_base_too_long_for_reply_addresses_is_refused() -> None:
    with pytest.raises(ValueError, match="too long"):
        checked_base("s" * 38 + "@example.com")
    with pytest.raises(ValueError, match="too long"):
        reply_address("s" * 38 + "@example.com", 1, "reporter", KEY)


@pytest.mark.parametrize("report_id", [0, -1, MAX_REPORT_ID + 1, True, 1.0, "1"])
def test_report_id_out_of_range_is_refused(report_id: object) -> None:
    with pytest.raises(ValueError):
        reply_address(BASE, report_id, "reporter", KEY)  # type: ignore[arg-type]


def test_id_above_the_maximum_never_validates() -> None:
    assert parse_reply_address("security+szzzzzzzz-aaaaaaaaaaaaaaaa@example.com", BASE, KEY) is None


def test_bad_side_or_key_is_refused() -> None:
    with pytest.raises(ValueError):
        reply_address(BASE, 1, "admin", KEY)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        reply_address(BASE, 1, "reporter", b"short")
    assert parse_reply_address(reply_address(BASE, 1, "reporter", KEY), BASE, b"") is None


@pytest.mark.parametrize("secret", ["", "short", "x" * 31, " " * 40, "  " + "x" * 31 + "  "])
def test_short_secret_is_refused_in_one_line(secret: str) -> None:
    with pytest.raises(ValueError, match="at least 32 characters") as caught:
        key_from_text(secret)
    assert "\n" not in str(caught.value)


def test_key_from_text_is_deterministic_and_secret_dependent() -> None:
    secret = "x" * 32
    assert key_from_text(secret) == key_from_text(secret)
    assert key_from_text(secret) != key_from_text("y" * 32)
    assert len(key_from_text(secret)) == 32
    assert key_from_text(secret + "\n") == key_from_text(secret)
