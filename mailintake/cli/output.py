"""What commands print: listings as lines or JSON, text from outside made terminal-safe."""

from __future__ import annotations

import json
import sys
import unicodedata
from collections.abc import Callable
from typing import Any


def print_listing(items: list[dict[str, Any]], as_json: bool, line: Callable[[dict[str, Any]], str], empty: str) -> int:
    if as_json:
        print_json(items)
        return 0
    for item in items:
        show(line(item))
    if not items:
        print(empty)
    return 0


def show(text: str = "") -> None:
    """Print text from outside (subjects, bodies, names) with control characters made
    visible, so a report cannot drive the admin's terminal (escape sequences)."""
    print(terminal_safe(text))


def terminal_safe(text: str) -> str:
    return "".join(character if character in "\n\t" or unicodedata.category(character) not in ("Cc", "Cf") else f"\\u{ord(character):04x}" for character in text)


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
