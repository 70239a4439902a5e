"""Every SMTP/LMTP reply is a named constant in intake/replies.py with a reply code and an
enhanced status code of the same class (RFC 3463); no other intake module spells one out."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from mailintake.intake import replies
from mailintake.intake.replies import ENHANCED_BUILTIN_REPLIES, ENHANCED_CODE_FOR_ERROR, stored_reply, with_enhanced_code

INTAKE = Path(replies.__file__).parent
REPLY = re.compile(r"^([2-5])\d\d[ -]")
ENHANCED = re.compile(r"^([2-5])\d\d[ -]([245])\.\d{1,3}\.\d{1,3} ")
# RFC 2034: no enhanced status code on the 354 go-ahead or on EHLO keyword lines.
WITHOUT_ENHANCED_CODE = ("START_DATA", "EHLO_ENHANCED_STATUS_CODES", "EHLO_AUTH")


def reply_constants() -> dict[str, str]:
    return {name: value for name, value in vars(replies).items() if name.isupper() and isinstance(value, str) and REPLY.match(value)}


def reply_literals_in(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [f"{path.name}:{node.lineno}: {node.value!r}" for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str) and REPLY.match(node.value)]


def test_no_intake_module_but_replies_spells_out_a_reply() -> None:
    modules = sorted(path for path in INTAKE.glob("*.py") if path.name != "replies.py")
    assert modules, "intake/ has no modules"
    found = [literal for path in modules for literal in reply_literals_in(path)]
    assert found == []


def test_the_replies_module_names_every_reply_it_sends() -> None:
    assert set(reply_constants()) >= {"SENDER_OK", "RECIPIENT_OK", "RECIPIENT_REJECTED", "STORAGE_UNAVAILABLE", "MESSAGE_TOO_BIG", "STORED"}


@pytest.mark.parametrize(("name", "reply"), sorted(reply_constants().items()))
def test_every_reply_has_an_enhanced_code_of_its_class(name: str, reply: str) -> None:
    if name in WITHOUT_ENHANCED_CODE:
        assert ENHANCED.match(reply) is None
        return
    match = ENHANCED.match(reply)
    assert match is not None, f"{name} has no enhanced status code: {reply!r}"
    assert match.group(1) == match.group(2), f"{name}: enhanced code class does not match the reply class: {reply!r}"


def test_replies_are_distinct() -> None:
    values = list(reply_constants().values())
    assert len(values) == len(set(values))


@pytest.mark.parametrize(("code", "enhanced"), sorted(ENHANCED_CODE_FOR_ERROR.items()))
def test_enhanced_codes_for_aiosmtpd_errors_match_their_class(code: str, enhanced: str) -> None:
    assert code[0] == enhanced[0]


def test_aiosmtpd_replies_get_an_enhanced_code() -> None:
    for builtin, enhanced in ENHANCED_BUILTIN_REPLIES.items():
        assert with_enhanced_code(builtin) == enhanced
    assert with_enhanced_code("502 Command not implemented") == "502 5.5.1 Command not implemented"
    assert with_enhanced_code("599 Something new") == "599 5.0.0 Something new"


def test_replies_that_carry_an_enhanced_code_pass_unchanged() -> None:
    for reply in reply_constants().values():
        assert with_enhanced_code(reply) == reply
    assert with_enhanced_code("250 OK") == "250 OK"


def test_the_stored_reply_names_the_start_of_the_digest() -> None:
    assert stored_reply("0123456789abcdef0123") == "250 2.0.0 Stored, sha256 0123456789abcdef"
