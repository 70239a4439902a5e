"""Loading config.toml: defaults from the schema, and every kind of mistake is one line naming the key."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from mailintake.config.loading import load_config
from mailintake.config.schema import KNOWN_SECTIONS, ConfigError
from mailintake.core.tokens import key_from_text

MINIMAL = '[intake]\naddresses = ["security@example.com"]\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_a_minimal_config_gets_defaults_and_the_first_address_as_reply_address(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), environ={})
    assert config.intake.reply_address == "security@example.com"
    assert config.intake.tracking_prefix == "SEC"
    assert config.database.url == f"sqlite:///{tmp_path / 'var' / 'mailintake.db'}"


# Not the schema's default as it stands: required, derived from another key, or made absolute.
DERIVED = {("intake", "addresses"), ("intake", "reply_address"), ("database", "url")}


def test_a_minimal_config_gets_the_schema_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), environ={})
    for name, settings in KNOWN_SECTIONS.items():
        if name == "sla":
            continue
        for key in fields(settings):
            if (name, key.name) not in DERIVED:
                assert getattr(getattr(config, name), key.name) == key.default, f"[{name}] {key.name}"


@pytest.mark.parametrize(
    ("size", "bytes_"),
    [("25MB", 25_000_000), ("25MiB", 26_214_400), ("10 KB", 10_000), (1048576, 1_048_576)],
)
def test_sizes_in_bytes_or_as_strings(tmp_path: Path, size: object, bytes_: int) -> None:
    value = f'"{size}"' if isinstance(size, str) else size
    assert load_config(write(tmp_path, MINIMAL + f"max_message_size = {value}\n"), environ={}).intake.max_message_size == bytes_


def test_the_environment_overrides_the_database_url(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), environ={"MAILINTAKE_DATABASE_URL": "postgresql+psycopg://u@h/db"})
    assert config.database.url == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "[intake] addresses is required"),
        ("[intake]\naddresses = []\n", "[intake] addresses must be a non-empty list"),
        ('[intake]\naddresses = ["Security <security@example.com>"]\n', "[intake] addresses: 'Security <security@example.com>' is not a plain address"),
        ('[intake]\naddresses = ["nobody"]\n', "is not a plain address"),
        (MINIMAL + 'max_message_size = "huge"\n', "[intake] max_message_size: 'huge' is not a size"),
        (MINIMAL + "max_message_size = 10\n", "must be from 1024 bytes to 500MB"),
        (MINIMAL + 'max_message_size = "5PB"\n', "must be from 1024 bytes to 500MB"),
        (MINIMAL + "retry_interval = inf\n", "[intake] retry_interval must be a positive number up to 86400"),
        (MINIMAL + "parse_timeout = nan\n", "[intake] parse_timeout must be a positive number"),
        (MINIMAL + "parse_timeout = -1\n", "[intake] parse_timeout must be a positive number"),
        (MINIMAL + 'tracking_prefix = "SEC-1"\n', "[intake] tracking_prefix must be 1 to 10 ASCII letters"),
        (MINIMAL + "maxsize = 1\n", "[intake] unknown key 'maxsize'"),
        (MINIMAL + '[listener]\nprotocol = "pop3"\n', '[listener] protocol must be "smtp" or "lmtp"'),
        (MINIMAL + "[listener]\nport = 70000\n", "[listener] port must be an integer from 0 to 65535"),
        (MINIMAL + '[database]\nurl = "mailintake.db"\n', "[database] url must be an SQLAlchemy URL"),
        (MINIMAL + '[logging]\nlevel = "LOUD"\n', "[logging] level must be one of"),
        (MINIMAL + "[listner]\n", "unknown section [listner]"),
        (MINIMAL + '[staff]\nnotify = ["Security@example.com"]\n', "[staff] notify must not contain an address of [intake]"),
        (MINIMAL + 'reply_address = "security@bücher.example"\n', "[intake] reply_address must be ASCII"),
        (MINIMAL + '[staff]\nmembers = ["not a domain"]\n', "[staff] members: 'not a domain' is neither an address nor a domain"),
        (MINIMAL + '[staff]\nmembers = ["security@example.com"]\n', "[staff] members must not contain an address of [intake]"),
        (MINIMAL + '[staff]\nauthentication = ["spf"]\n', "[staff] authentication: unknown method 'spf'"),
        (MINIMAL + '[staff]\nauthentication = ["allowlist", "dkim"]\n', "[staff] authentication: allowlist cannot be combined"),
        (MINIMAL + '[staff]\nauthentication = "authentication-results"\n', "[staff] trusted_authserv_id is required"),
        (MINIMAL + "[staff]\nauthentication = []\n", "[staff] authentication is empty"),
        (MINIMAL + '[staff]\ndns_server = "resolver.example.com"\n', "[staff] dns_server: 'resolver.example.com' is not an IP address"),
        (MINIMAL + '[staff]\nanonymous_alias = "yes"\n', "[staff] anonymous_alias must be true or false"),
        (MINIMAL + "[staff]\nmax_received_above_results = -1\n", "[staff] max_received_above_results must be an integer from 0 to 20"),
        ("[intake\n", "not valid TOML"),
    ],
)
def test_mistakes_are_one_line_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, text), environ={})
    assert message in str(raised.value)
    assert str(tmp_path / "config.toml") in str(raised.value)
    assert "\n" not in str(raised.value)


def test_staff_members_and_authentication_are_read(tmp_path: Path) -> None:
    text = MINIMAL + '[staff]\nmembers = ["Alice@Example.com", "Staff.Example.ORG"]\nauthentication = ["dkim", "authentication-results"]\ntrusted_authserv_id = "mx.example.com"\ndns_server = "127.0.0.1:5353"\n'
    staff = load_config(write(tmp_path, text), environ={}).staff
    assert staff.members == ("alice@example.com", "staff.example.org")
    assert staff.policy().authentication == ("dkim", "authentication-results") and staff.policy().trusted_authserv_id == "mx.example.com"
    assert staff.dns_server == "127.0.0.1:5353" and staff.signature_markers == ("-- ",) and staff.anonymous_alias
    default = load_config(write(tmp_path, MINIMAL), environ={}).staff
    assert default.members == () and default.authentication == ("dkim",)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.toml", environ={})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MINIMAL + '[calendar]\ncountry = "XX"\n', "[calendar] unknown holiday country 'XX'"),
        (MINIMAL + '[calendar]\ntimezone = "Mars/Olympus"\n', "[calendar]"),
        (MINIMAL + '[calendar]\nhours = "17:00-09:00"\n', "[calendar]"),
        (MINIMAL + '[calendar]\nworkdays = ["funday"]\n', "[calendar]"),
        (MINIMAL + '[calendar]\nclosures = [{ start = 2026-12-31, end = 2026-12-28, name = "x" }]\n', "is before start"),
        (MINIMAL + '[calendar]\nclosures = [{ start = "2026-12-28", name = "x" }]\n', "needs start (and optional end) as TOML dates"),
        (MINIMAL + '[sla.acknowledge]\nwithin = "3 fortnights"\n', "3 fortnights"),
        (MINIMAL + '[sla.assess]\nwithin = "1 business day"\nafter = "acknowledged"\n', "[sla.assess]"),
        (MINIMAL + '[sla.a]\nwithin = "1 hours"\nafter = "b"\n[sla.b]\nwithin = "1 hours"\nafter = "a"\n', "cycle"),
        (MINIMAL + '[sla.assess]\nwithn = "1 business day"\n', "[sla.assess] unknown key 'withn'"),
    ],
)
def test_calendar_and_policy_mistakes_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, text), environ={})
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_config_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(MINIMAL.encode() + b"# caf\xe9\n")
    with pytest.raises(ConfigError, match="the file is not UTF-8"):
        load_config(path, environ={})


def test_a_short_token_key_is_refused_and_the_environment_overrides_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[secrets\] token_key: reply-address secret must be at least 32 characters"):
        load_config(write(tmp_path, MINIMAL + '[secrets]\ntoken_key = "short"\n'), environ={})
    config = load_config(write(tmp_path, MINIMAL + '[secrets]\ntoken_key = "short"\n'), environ={"MAILINTAKE_TOKEN_KEY": "x" * 40})
    assert config.secrets.reply_key() == key_from_text("x" * 40)


def test_dev_mode_without_a_key_uses_a_random_one_and_otherwise_there_is_none(tmp_path: Path) -> None:
    dev = load_config(write(tmp_path, MINIMAL + "[secrets]\ndev_mode = true\n"), environ={})
    assert dev.secrets.reply_key() != dev.secrets.reply_key()
    with pytest.raises(ConfigError, match="token_key is required"):
        load_config(write(tmp_path, MINIMAL), environ={}).secrets.reply_key()
