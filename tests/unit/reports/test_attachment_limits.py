"""How many attachment bytes a mail to staff carries ([staff] max_attachment_bytes), and
how many attachments any mail lists: bounded whatever a report brings. Attachments go to
staff as files, never as MIME structure."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mailintake.config.loading import load_config
from mailintake.config.schema import ConfigError
from mailintake.reports.attachments import MAX_LISTED_ATTACHMENTS, attachment_plan, mailable_attachment
from mailintake.storage.models import Attachment

MINIMAL = '[intake]\naddresses = ["security@example.com"]\n'


def attachment(name: str, size: int, content_type: str = "application/octet-stream") -> Attachment:
    content = name.encode()[:1] * size
    return Attachment(filename=name, content_type=content_type, size=size, sha256=hashlib.sha256(content).hexdigest(), content=content)


def config_with(tmp_path: Path, staff: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(MINIMAL + "[staff]\n" + staff)
    return path


def test_each_attachment_within_the_limit_is_attached_in_order_while_the_total_fits() -> None:
    items = [attachment("a", 400), attachment("big", 1_500), attachment("b", 500), attachment("c", 200), attachment("d", 100)]
    plan = attachment_plan(items, limit=1_000)
    assert [name for name, _, _ in plan.attached] == ["a", "b", "d"]
    assert [(item["filename"], item["attached"]) for item in plan.listed] == [("a", True), ("big", False), ("b", True), ("c", False), ("d", True)]
    assert sum(len(data) for _, _, data in plan.attached) <= 1_000
    assert plan.more == 0


def test_a_limit_of_zero_lists_every_attachment_and_attaches_none() -> None:
    plan = attachment_plan([attachment("empty", 0), attachment("a", 10)], limit=0)
    assert plan.attached == [] and [item["attached"] for item in plan.listed] == [False, False]


def test_thirty_thousand_parts_list_the_first_hundred_and_count_the_rest() -> None:
    items = [attachment(f"part-{number}.txt", 1, "text/plain") for number in range(30_000)]
    plan = attachment_plan(items, limit=10_000_000)
    assert len(plan.listed) == MAX_LISTED_ATTACHMENTS == 100
    assert len(plan.attached) == 100 and plan.more == 29_900
    assert plan.listed[-1]["filename"] == "part-99.txt"


def test_listed_attachments_carry_what_templates_show() -> None:
    [item] = attachment_plan([attachment("fwd", 3, "message/rfc822")], limit=10).listed
    assert item == {"filename": "fwd", "content_type": "message/rfc822", "size": 3, "sha256": hashlib.sha256(b"fff").hexdigest(), "attached": True}
    assert attachment_plan([attachment("fwd", 3, "message/rfc822")], limit=10).attached == [("fwd.eml", "application/octet-stream", b"fff")]


@pytest.mark.parametrize(("value", "expected"), [(None, 10_000_000), ('"2MB"', 2_000_000), ('"1 MiB"', 1_048_576), ("0", 0), ("5000", 5_000)])
def test_max_attachment_bytes_is_read(tmp_path: Path, value: str | None, expected: int) -> None:
    staff = "" if value is None else f"max_attachment_bytes = {value}\n"
    assert load_config(config_with(tmp_path, staff), environ={}).staff.max_attachment_bytes == expected


def test_the_example_config_documents_the_default() -> None:
    example = Path(__file__).resolve().parents[3] / "config.example.toml"
    assert load_config(example, environ={}).staff.max_attachment_bytes == 10_000_000
    assert 'max_attachment_bytes = "10MB"' in example.read_text()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"lots"', '[staff] max_attachment_bytes: \'lots\' is not a size (use bytes, "10MB" or "10MiB")'),
        ("-1", "[staff] max_attachment_bytes must be from 0 to 500MB, got -1"),
        ('"600MB"', "[staff] max_attachment_bytes must be from 0 to 500MB, got 600000000"),
        ("true", '[staff] max_attachment_bytes must be bytes or a string such as "10MB", got True'),
        ("1.5", '[staff] max_attachment_bytes must be bytes or a string such as "10MB", got 1.5'),
    ],
)
def test_a_bad_max_attachment_bytes_is_one_line_naming_file_section_and_key(tmp_path: Path, value: str, message: str) -> None:
    path = config_with(tmp_path, f"max_attachment_bytes = {value}\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path, environ={})
    assert str(raised.value) == f"{path}: {message}"


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        (("poc.py", "text/x-python", b"x"), ("poc.py", "text/x-python", b"x")),
        (("fwd.eml", "message/rfc822", b"x"), ("fwd.eml", "application/octet-stream", b"x")),
        (("Original", "message/rfc822", b"x"), ("Original.eml", "application/octet-stream", b"x")),
        (("parts", "multipart/mixed", b"x"), ("parts", "application/octet-stream", b"x")),
        (("odd", "text/plain; x=\r\nBcc: y", b"x"), ("odd", "application/octet-stream", b"x")),
        (("pct", "application/x%41", b"x"), ("pct", "application/octet-stream", b"x")),
    ],
)
def test_attachments_go_to_staff_as_files(given: tuple[str, str, bytes], sent: tuple[str, str, bytes]) -> None:
    assert mailable_attachment(*given) == sent
