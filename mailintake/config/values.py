"""Readers of one key's value: each checks type and range and raises a ConfigError that
names the file, the section and the key. A missing key gets the default the caller takes
from config/schema.py."""

from __future__ import annotations

import re
from typing import Any

import humanfriendly

from mailintake.config.schema import ConfigError
from mailintake.core.addresses import AddressError, normalized_addr_spec

MAX_MESSAGE_SIZE = 500_000_000
DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z][a-z0-9-]*[a-z0-9]")


def flag(table: dict[str, Any], key: str, default: bool, name: str, where: str) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: {name} {key} must be true or false, got {value!r}")
    return value


def mailbox_address(value: Any, key: str, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be a string address, got {value!r}")
    try:
        return normalized_addr_spec(value)
    except AddressError as error:
        raise ConfigError(f"{where}: {key}: {error}") from None


def size_in_bytes(value: Any, key: str, where: str, minimum: int, example: str) -> int:
    """A size as bytes or a string like "25MB"."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str):
        try:
            size = humanfriendly.parse_size(value)
        except humanfriendly.InvalidSize:
            raise ConfigError(f'{where}: {key}: {value!r} is not a size (use bytes, "{example}" or "{example[:-2]}MiB")') from None
    else:
        raise ConfigError(f'{where}: {key} must be bytes or a string such as "{example}", got {value!r}')
    if not minimum <= size <= MAX_MESSAGE_SIZE:
        lowest = f"{minimum} bytes" if minimum else "0"
        raise ConfigError(f"{where}: {key} must be from {lowest} to {MAX_MESSAGE_SIZE // 1_000_000}MB, got {size}")
    return size


def tracking_prefix(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.isascii() or not value.isalpha() or not 1 <= len(value) <= 10:
        raise ConfigError(f"{where}: [intake] tracking_prefix must be 1 to 10 ASCII letters, got {value!r}")
    return value.upper()


def text(table: dict[str, Any], key: str, default: str, name: str, where: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: {name} {key} must be a non-empty string, got {value!r}")
    return value


def string_or_empty(table: dict[str, Any], key: str, default: str, name: str, where: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {name} {key} must be a string, got {type(value).__name__}")
    return value


def optional_text(table: dict[str, Any], key: str, name: str, where: str) -> str | None:
    """A string, or None (the schema's "not set") when the key is missing or empty."""
    if key not in table or table[key] == "":
        return None
    return text(table, key, "", name, where)


def string_list(table: dict[str, Any], key: str, default: tuple[str, ...], name: str, where: str) -> tuple[str, ...]:
    value = table.get(key, list(default))
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{where}: {name} {key} must be a string or a list of strings, got {value!r}")
    return tuple(value)


def count(table: dict[str, Any], key: str, default: int, name: str, where: str, maximum: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise ConfigError(f"{where}: {name} {key} must be an integer from 0 to {maximum}, got {value!r}")
    return value


def positive_number(table: dict[str, Any], key: str, default: float, name: str, where: str, maximum: float, integer: bool = False) -> float:
    value = table.get(key, default)
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not 0 < value <= maximum:
        kind = "a positive integer" if integer else "a positive number"
        raise ConfigError(f"{where}: {name} {key} must be {kind} up to {maximum:g}, got {value!r}")
    return value
