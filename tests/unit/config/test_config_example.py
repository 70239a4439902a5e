"""config.example.toml against the schema: every key of config/schema.py is shown with its
default, every key shown exists, the few keys that show something else say so, and its
[sla.*] tables are presets/policy-a.toml."""

from __future__ import annotations

import copy
import re
import tomllib
from dataclasses import fields
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from mailintake.config.loading import config_from_document, load_config
from mailintake.config.schema import KNOWN_SECTIONS, ConfigError
from mailintake.sla.policy import MILESTONE_KEYS

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "config.example.toml"
POLICY_A = REPO / "presets" / "policy-a.toml"
MINIMAL = '[intake]\naddresses = ["security@example.com"]\n'

# Keys the example shows with something other than their default, and why. Each one's
# comment in the example must say so (the word in the value) and, but for required keys,
# name the default.
REQUIRED = {
    ("intake", "addresses"): "Required",  # no default: the addresses are the mailbox's own
}
DEVELOPMENT_ONLY = {
    ("secrets", "dev_mode"): "Development only",  # `make run` starts without a token_key
}
EXAMPLE_VALUES = {
    ("staff", "notify"): "Example value",  # a mailbox whose reports reach nobody shows nothing
    ("staff", "alerts"): "Example value",  # shows that escalations may go elsewhere
    ("staff", "members"): "Example value",  # shows the bare-domain form
    ("templates", "policy_url"): "Example value",  # acknowledgements quote the policy link
    ("calendar", "timezone"): "Example value",  # the integration tests' calendar is this one
    ("calendar", "country"): "Example value",  # the same: NL public holidays
    ("calendar", "closures"): "Example value",  # shows both kinds of closure
}
# Keys shown only in a comment: their default is computed from other keys.
COMMENTED_OUT = {("listener", "require_starttls")}
MARKED = {**REQUIRED, **DEVELOPMENT_ONLY, **EXAMPLE_VALUES}


def example_document() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE.read_text())


def schema_keys() -> list[tuple[str, str]]:
    return [(name, key.name) for name, settings in KNOWN_SECTIONS.items() if name != "sla" for key in fields(settings)]


def section_text(name: str) -> str:
    """The example's lines from [name] to the next table header."""
    text = EXAMPLE.read_text()
    start = text.index(f"\n[{name}]\n") + 1
    end = text.find("\n[", start)
    return text[start:] if end == -1 else text[start : end + 1]


def comment_above(name: str, key: str) -> str:
    """The comment lines directly above `key = …` (or `# key = …`) in the example's [name]."""
    lines = section_text(name).splitlines()
    index = next(i for i, line in enumerate(lines) if re.match(rf"(# )?{key} = ", line))
    above: list[str] = []
    while index > 0 and lines[index - 1].startswith("#"):
        index -= 1
        above.insert(0, lines[index].lstrip("# "))
    return " ".join(above)


def loaded_section(document: dict[str, Any], name: str) -> object:
    return getattr(config_from_document(document, EXAMPLE, {}), name)


def test_the_header_says_every_key_is_shown_with_its_default() -> None:
    header = " ".join(line.lstrip("# ") for line in EXAMPLE.read_text().splitlines()[:5])
    assert "Every key is shown with its default" in header


@pytest.mark.parametrize(("name", "key"), schema_keys())
def test_every_key_of_the_schema_is_in_the_example(name: str, key: str) -> None:
    if (name, key) in COMMENTED_OUT:
        assert re.search(rf"^# {key} = ", section_text(name), re.MULTILINE), f"[{name}] {key} is not shown"
    else:
        assert key in example_document().get(name, {}), f"[{name}] {key} is missing from config.example.toml"


def test_every_key_of_the_example_is_in_the_schema() -> None:
    for name, table in example_document().items():
        assert name in KNOWN_SECTIONS, f"unknown section [{name}]"
        if name != "sla":
            unknown = set(table) - {key.name for key in fields(KNOWN_SECTIONS[name])}
            assert not unknown, f"[{name}] {sorted(unknown)} are not in config/schema.py"


@pytest.mark.parametrize(("name", "key"), [item for item in schema_keys() if item not in COMMENTED_OUT])
def test_every_key_shows_its_default_or_is_marked(name: str, key: str) -> None:
    """Leaving a key out of the example changes nothing, but for the marked keys."""
    document = example_document()
    without = copy.deepcopy(document)
    del without[name][key]
    if (name, key) in REQUIRED:
        with pytest.raises(ConfigError, match=f"{key} is required"):
            loaded_section(without, name)
    elif (name, key) in MARKED:
        assert loaded_section(without, name) != loaded_section(document, name), f"[{name}] {key} shows its default: unmark it"
    else:
        assert loaded_section(without, name) == loaded_section(document, name), f"[{name}] {key} does not show its default"


@pytest.mark.parametrize(("name", "key"), list(MARKED))
def test_each_marked_key_says_what_it_shows(name: str, key: str) -> None:
    comment = comment_above(name, key)
    assert MARKED[name, key] in comment, f"[{name}] {key}: say {MARKED[name, key]!r} in its comment"
    if (name, key) in EXAMPLE_VALUES:
        assert "default:" in comment
    if (name, key) in DEVELOPMENT_ONLY:
        assert "In production" in comment


def test_every_key_of_the_schema_has_a_one_line_doc() -> None:
    for name, settings in KNOWN_SECTIONS.items():
        if name != "sla":
            for key in fields(settings):
                doc = key.metadata.get("doc", "")
                assert doc and "\n" not in doc, f"[{name}] {key.name} needs a one-line doc"


def test_every_milestone_key_is_explained() -> None:
    text = EXAMPLE.read_text()
    for key in MILESTONE_KEYS:
        assert re.search(rf"^#\s+{key}\s*=", text, re.MULTILINE), f"[sla.*] {key} is not explained"


def test_the_example_sla_tables_are_a_copy_of_policy_a() -> None:
    example, preset = EXAMPLE.read_text(), POLICY_A.read_text()
    assert example[example.index("[sla.acknowledge]") :] == preset[preset.index("[sla.acknowledge]") :], "copy presets/policy-a.toml into config.example.toml"
    assert list(example_document()["sla"].items()) == list(tomllib.loads(preset)["sla"].items())


def test_the_example_config_loads_with_documented_defaults() -> None:
    config = load_config(REPO / "config.example.toml", environ={})
    assert config.intake.addresses == ("security@example.com", "psirt@example.com")
    assert config.intake.max_message_size == 25_000_000
    assert config.listener.host == "127.0.0.1" and config.listener.port == 8025 and config.listener.protocol == "smtp"
    assert config.database.url == f"sqlite:///{REPO / 'var' / 'mailintake.db'}"


def test_the_example_config_carries_policy_a_and_a_calendar_with_closures() -> None:
    config = load_config(REPO / "config.example.toml", environ={})
    assert config.sla.names == ("acknowledge", "assess", "update", "resolve", "notify_resolved")
    calendar = config.calendar.business_calendar()
    assert str(calendar.day_kind(date(2026, 12, 29))) == "closure: year-end shutdown"
    assert str(calendar.day_kind(date(2027, 12, 24))) == "closure: Christmas Eve"
    assert str(calendar.day_kind(date(2026, 12, 25))) == "Christmas Day (NL)"


@pytest.mark.parametrize("preset", ["policy-a.toml", "policy-b.toml"])
def test_each_preset_pasted_into_a_config_is_a_valid_policy(tmp_path: Path, preset: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(MINIMAL + (REPO / "presets" / preset).read_text())
    assert load_config(path, environ={}).sla.milestones
