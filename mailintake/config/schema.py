"""The settings of config.toml: one frozen dataclass per section, each key with its
default and a one-line doc, stated here once.

config.example.toml shows every key with this default and explains it at length
(tests/unit/config/test_config_example.py keeps the two in step); config/loading.py reads
and validates a file into these classes.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field, fields
from datetime import date, time
from pathlib import Path
from typing import Any

from mailintake.calendar.business import BusinessCalendar, Closure, RecurringClosure, parse_hours, parse_workdays
from mailintake.config.staff_policy import StaffPolicy
from mailintake.core.tokens import key_from_text
from mailintake.sla.policy import Policy

# Environment variables that override keys (secrets stay out of the file in production).
CONFIG_ENV = "MAILINTAKE_CONFIG"
DATABASE_URL_ENV = "MAILINTAKE_DATABASE_URL"
RELAY_PASSWORD_ENV = "MAILINTAKE_RELAY_PASSWORD"
TOKEN_KEY_ENV = "MAILINTAKE_TOKEN_KEY"


class ConfigError(Exception):
    """A config problem, phrased as one line for the operator."""


def setting(default: Any, doc: str) -> Any:
    """A key's default and its one-line doc."""
    return field(default=default, metadata={"doc": doc})


def default_of(settings: type, key: str) -> Any:
    """The default of a key of a section whose class cannot be built without its required keys."""
    return next(item.default for item in fields(settings) if item.name == key)


@dataclass(frozen=True)
class IntakeConfig:
    addresses: tuple[str, ...] = field(metadata={"doc": "Addresses this mailbox accepts mail for (RCPT TO); required"})
    reply_address: str = field(metadata={"doc": "Base of the signed per-report reply addresses; default: the first of addresses"})
    max_message_size: int = setting(25_000_000, 'Largest message accepted, in bytes or as a size string such as "25MB"')
    tracking_prefix: str = setting("SEC", "Letters before the year and counter of tracking ids (SEC-2026-0042)")
    parse_timeout: float = setting(30.0, "Seconds one message may take to parse before it is marked failed")
    max_parse_attempts: int = setting(5, "Processing attempts for a message before its report is made from headers and raw text")
    retry_interval: float = setting(60.0, "Seconds between sweeps for pending deliveries; failed ones back off from it")
    store_timeout: float = setting(30.0, "Seconds a delivery may wait for its commit before the sender gets 451")
    max_parts: int = setting(1000, "MIME parts read into a report; the whole mail stays stored")
    parse_workers: int = setting(2, "Messages parsed at once, each in its own bounded process")


@dataclass(frozen=True)
class ListenerConfig:
    host: str = setting("127.0.0.1", "Address the SMTP/LMTP listener binds to")
    port: int = setting(8025, "Port the listener binds to (0: any free port)")
    protocol: str = setting("smtp", '"smtp", or "lmtp" to be an LMTP delivery target')
    hostname: str = setting("mailintake.localhost", "Name announced in the greeting and EHLO/LHLO reply")
    shutdown_grace: float = setting(30.0, "Seconds `serve` waits on SIGTERM for in-flight work before exiting with 75")
    max_connections: int = setting(100, "Connections open at once; one more gets 421 4.7.0")
    max_connections_per_ip: int = setting(20, "Connections open at once from one peer address")
    idle_timeout: float = setting(300.0, "Seconds a session may wait for its next command")
    data_timeout: float = setting(300.0, "Seconds a transfer may go without receiving any data")
    tls_cert: Path | None = setting(None, "PEM certificate (chain) for STARTTLS, relative to the config file; none: no STARTTLS")
    tls_key: Path | None = setting(None, "Unencrypted PEM private key for STARTTLS, relative to the config file")
    require_starttls: bool = setting(False, "Refuse MAIL before STARTTLS; default: true when tls_cert is set and host is not loopback")

    @property
    def on_loopback(self) -> bool:
        return host_is_loopback(self.host)


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = setting("sqlite:///var/mailintake.db", "SQLAlchemy URL; a relative SQLite path is relative to the config file")


@dataclass(frozen=True)
class LoggingConfig:
    level: str = setting("INFO", "DEBUG, INFO, WARNING or ERROR")


@dataclass(frozen=True)
class RelayConfig:
    host: str = setting("127.0.0.1", "SMTP relay outbound mail is handed to")
    port: int = setting(25, "Port of the relay")
    starttls: bool = setting(False, "Upgrade the relay connection with STARTTLS")
    tls: bool = setting(False, "Implicit TLS to the relay (e.g. port 465); excludes starttls")
    username: str = setting("", "SMTP AUTH user name; empty: no AUTH")
    password: str = setting("", "SMTP AUTH password (MAILINTAKE_RELAY_PASSWORD overrides it)")
    timeout: float = setting(30.0, "Seconds for connecting and for each SMTP command")


@dataclass(frozen=True)
class StaffConfig:
    notify: tuple[str, ...] = setting((), "Who gets a notification per new report, reporters' replies and the digest")
    alerts: tuple[str, ...] = setting((), "Who gets escalations and security alerts; default: the notify list")
    members: tuple[str, ...] = setting((), "Addresses or bare domains that may answer reports and give commands")
    authentication: tuple[str, ...] = setting(("dkim",), "How a member's reply is authenticated: dkim, authentication-results or allowlist")
    trusted_authserv_id: str = setting("", "authserv-id of our MX in Authentication-Results; required with authentication-results")
    max_received_above_results: int = setting(1, "Received headers our own servers add above the trusted Authentication-Results")
    dns_server: str = setting("", 'DNS server for DKIM key lookups, e.g. "127.0.0.1:53"; empty: the system resolver')
    signature_markers: tuple[str, ...] = setting(("-- ",), "Lines that start a signature in staff replies; it is not relayed")
    anonymous_alias: bool = setting(True, "Show staff an alias instead of the address of a reporter who asked to stay anonymous")
    max_attachment_bytes: int = setting(10_000_000, "Attachments passed on to staff up to this size each and in total; 0: list only")

    def policy(self) -> StaffPolicy:
        return StaffPolicy(
            members=self.members,
            authentication=self.authentication,
            trusted_authserv_id=self.trusted_authserv_id or None,  # type: ignore[arg-type]
            max_received_above_results=self.max_received_above_results,
        )


@dataclass(frozen=True)
class TemplatesConfig:
    dir: Path | None = setting(None, "Directory of own templates that take precedence over the shipped ones")
    organisation: str = setting("Example Corp", "Organisation named in mail to reporters")
    policy_url: str = setting("", "Link to the published disclosure policy, quoted in acknowledgements")


@dataclass(frozen=True)
class OutboxConfig:
    max_attempts: int = setting(10, "Delivery attempts before a message is marked failed")
    retry_interval: float = setting(60.0, "Seconds before the first retry, doubled each time")
    auto_replies_per_hour: int = setting(5, "Automatic replies to one sender within an hour")


@dataclass(frozen=True)
class SchedulerConfig:
    sla_interval: float = setting(60.0, "Seconds between SLA passes")
    outbox_interval: float = setting(30.0, "Seconds between sweeps of the outbox")
    digest_time: time | None = setting(time(8, 30), 'Local time of the daily digest on business days; "": none')


@dataclass(frozen=True)
class WorkersConfig:
    processes: int | str = setting("auto", 'Worker processes `serve` runs for processing, the outbox and the scheduler; "auto": cores - 1, at least 1; 0: all in the listener\'s process')
    claim_lease: float = setting(300.0, "Seconds a worker holds the deliveries it claimed; those of a daemon that died are taken up again after it")

    def process_count(self, cores: int | None) -> int:
        if self.processes == "auto":
            return max(1, (cores or 1) - 1)
        return int(self.processes)


@dataclass(frozen=True)
class SecretsConfig:
    token_key: str = setting("", "HMAC key of the signed reply addresses (MAILINTAKE_TOKEN_KEY overrides it)")
    dev_mode: bool = setting(False, "Development only: without a token_key, a random key per start")

    def reply_key(self) -> bytes:
        """The HMAC key of signed reply addresses; in dev mode without a key, a random one
        (reply addresses then stop working at the next start)."""
        if self.token_key:
            return key_from_text(self.token_key)
        if not self.dev_mode:
            raise ConfigError(f"[secrets] token_key is required (or {TOKEN_KEY_ENV}); set dev_mode = true only for development")
        return secrets.token_bytes(32)


@dataclass(frozen=True)
class CalendarConfig:
    timezone: str = setting("UTC", "IANA time zone of the office")
    country: str | None = setting(None, "ISO country code of the public holidays; none: no public holidays")
    subdivision: str | None = setting(None, "Subdivision of the country for its holidays")
    categories: tuple[str, ...] = setting(("public",), "Which holiday categories count")
    workdays: tuple[str, ...] = setting(("mon", "tue", "wed", "thu", "fri"), "Days with business hours")
    hours: tuple[str, ...] = setting(("09:00-17:00",), "Business hours in local wall time")
    closures: tuple[Closure | RecurringClosure, ...] = setting((), "Closed days, ranges or recurring rules besides the holidays")

    def business_calendar(self, extra_closures: tuple[Closure, ...] = (), worked_holidays: frozenset[date] = frozenset()) -> BusinessCalendar:
        """The calendar of this config plus the closures and worked holidays admins keep in the database."""
        return BusinessCalendar(
            timezone=self.timezone,
            workdays=parse_workdays(self.workdays),
            hours=parse_hours(self.hours),
            country=self.country,
            subdivision=self.subdivision,
            categories=self.categories,
            closures=self.closures + extra_closures,
            worked_holidays=worked_holidays,
        )


@dataclass(frozen=True)
class Config:
    intake: IntakeConfig
    listener: ListenerConfig
    database: DatabaseConfig
    logging: LoggingConfig
    calendar: CalendarConfig
    sla: Policy
    relay: RelayConfig
    staff: StaffConfig
    templates: TemplatesConfig
    outbox: OutboxConfig
    scheduler: SchedulerConfig
    workers: WorkersConfig
    secrets: SecretsConfig


# The [sla] section is no fixed set of keys: one [sla.NAME] table per milestone (sla/policy.py).
KNOWN_SECTIONS = {
    "intake": IntakeConfig,
    "listener": ListenerConfig,
    "database": DatabaseConfig,
    "logging": LoggingConfig,
    "calendar": CalendarConfig,
    "sla": Policy,
    "relay": RelayConfig,
    "staff": StaffConfig,
    "templates": TemplatesConfig,
    "outbox": OutboxConfig,
    "scheduler": SchedulerConfig,
    "workers": WorkersConfig,
    "secrets": SecretsConfig,
}


def host_is_loopback(host: str) -> bool:
    """Only a loopback address or `localhost`; any other name may be reachable from outside."""
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback
