"""Load and validate config.toml into the settings of config/schema.py.

Every problem is reported as one ConfigError line naming the file, the key and what is
wrong; callers print it and exit with status 2.
"""

from __future__ import annotations

import os
import tomllib
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from mailintake.calendar.business import CalendarError, Closure, RecurringClosure
from mailintake.calendar.durations import DurationError
from mailintake.config.schema import (
    CONFIG_ENV,
    DATABASE_URL_ENV,
    KNOWN_SECTIONS,
    RELAY_PASSWORD_ENV,
    TOKEN_KEY_ENV,
    CalendarConfig,
    Config,
    ConfigError,
    DatabaseConfig,
    IntakeConfig,
    ListenerConfig,
    LoggingConfig,
    OutboxConfig,
    RelayConfig,
    SchedulerConfig,
    SecretsConfig,
    StaffConfig,
    TemplatesConfig,
    WorkersConfig,
    default_of,
    host_is_loopback,
)
from mailintake.config.staff_policy import dns_server_address, policy_problem
from mailintake.config.values import (
    DOMAIN,
    count,
    flag,
    mailbox_address,
    optional_text,
    positive_number,
    size_in_bytes,
    string_list,
    string_or_empty,
    text,
    tracking_prefix,
)
from mailintake.core.tokens import checked_base, key_from_text
from mailintake.sla.policy import Policy, PolicyError, policy_from_mapping

PROTOCOLS = ("smtp", "lmtp")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def config_path_from(explicit: str | None) -> Path:
    chosen = explicit or os.environ.get(CONFIG_ENV)
    if not chosen:
        raise ConfigError(f"no config file: pass --config PATH or set {CONFIG_ENV}")
    return Path(chosen)


def load_config(path: Path, environ: dict[str, str] | None = None) -> Config:
    environ = dict(os.environ) if environ is None else environ
    return config_from_document(read_toml(path), path, environ)


def config_from_document(document: dict[str, Any], path: Path, environ: dict[str, str]) -> Config:
    """The config of a parsed TOML document read from `path` (relative paths in it are relative to its directory)."""
    where = str(path)
    reject_unknown_sections(document, where)
    intake = intake_from(section(document, "intake", where), where)
    listener = listener_from(section(document, "listener", where), where, path)
    database = database_from(section(document, "database", where), where, path, environ)
    logging_config = logging_from(section(document, "logging", where), where)
    calendar = calendar_from(section(document, "calendar", where), where)
    sla = sla_from(document.get("sla", {}), where)
    relay = relay_from(section(document, "relay", where), where, environ)
    staff = staff_from(section(document, "staff", where), where, intake)
    templates = templates_from(section(document, "templates", where), where, path)
    outbox = outbox_from(section(document, "outbox", where), where)
    scheduler = scheduler_from(section(document, "scheduler", where), where)
    workers = workers_from(section(document, "workers", where), where, intake)
    secrets_config = secrets_from(section(document, "secrets", where), where, environ)
    return Config(intake, listener, database, logging_config, calendar, sla, relay, staff, templates, outbox, scheduler, workers, secrets_config)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config file ({error.strerror})") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid TOML: the file is not UTF-8") from None


def reject_unknown_sections(document: dict[str, Any], where: str) -> None:
    for name in document:
        if name not in KNOWN_SECTIONS:
            known = ", ".join(f"[{known}]" for known in KNOWN_SECTIONS)
            raise ConfigError(f"{where}: unknown section [{name}] (known: {known})")


def section(document: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    """A fixed-key section; the milestone tables under [sla] are checked by sla_from."""
    table = document.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [{name}] must be a table")
    allowed = KNOWN_SECTIONS[name].__dataclass_fields__
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where}: [{name}] unknown key '{key}'")
    return table


def intake_from(table: dict[str, Any], where: str) -> IntakeConfig:
    if "addresses" not in table:
        raise ConfigError(f'{where}: [intake] addresses is required (e.g. ["security@example.com"])')
    addresses = table["addresses"]
    if not isinstance(addresses, list) or not addresses:
        raise ConfigError(f"{where}: [intake] addresses must be a non-empty list of addresses")
    parsed = tuple(mailbox_address(value, "[intake] addresses", where) for value in addresses)
    reply = table.get("reply_address", parsed[0])
    if isinstance(reply, str) and not reply.isascii():
        raise ConfigError(f"{where}: [intake] reply_address must be ASCII (use the punycode form of an international domain)")
    try:
        checked_base(str(reply))
    except ValueError as error:
        raise ConfigError(f"{where}: [intake] reply_address: {error}") from None

    def default(key: str) -> Any:
        return default_of(IntakeConfig, key)

    return IntakeConfig(
        addresses=parsed,
        reply_address=mailbox_address(reply, "[intake] reply_address", where),
        max_message_size=size_in_bytes(table.get("max_message_size", default("max_message_size")), "[intake] max_message_size", where, 1024, "25MB"),
        tracking_prefix=tracking_prefix(table.get("tracking_prefix", default("tracking_prefix")), where),
        parse_timeout=positive_number(table, "parse_timeout", default("parse_timeout"), "[intake]", where, maximum=3600),
        max_parse_attempts=int(positive_number(table, "max_parse_attempts", default("max_parse_attempts"), "[intake]", where, integer=True, maximum=100)),
        retry_interval=positive_number(table, "retry_interval", default("retry_interval"), "[intake]", where, maximum=86_400),
        store_timeout=positive_number(table, "store_timeout", default("store_timeout"), "[intake]", where, maximum=600),
        max_parts=int(positive_number(table, "max_parts", default("max_parts"), "[intake]", where, integer=True, maximum=100_000)),
        parse_workers=int(positive_number(table, "parse_workers", default("parse_workers"), "[intake]", where, integer=True, maximum=64)),
    )


def listener_from(table: dict[str, Any], where: str, path: Path) -> ListenerConfig:
    defaults = ListenerConfig()
    host = text(table, "host", defaults.host, "[listener]", where)
    port = table.get("port", defaults.port)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ConfigError(f"{where}: [listener] port must be an integer from 0 to 65535, got {port!r}")
    protocol = text(table, "protocol", defaults.protocol, "[listener]", where).lower()
    if protocol not in PROTOCOLS:
        raise ConfigError(f'{where}: [listener] protocol must be "smtp" or "lmtp", got {protocol!r}')
    hostname = text(table, "hostname", defaults.hostname, "[listener]", where)
    grace = positive_number(table, "shutdown_grace", defaults.shutdown_grace, "[listener]", where, maximum=3600)
    tls_cert, tls_key = (listener_file(table, key, where, path) for key in ("tls_cert", "tls_key"))
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError(f"{where}: [listener] tls_cert and tls_key go together: set both or neither")
    require_starttls = flag(table, "require_starttls", tls_cert is not None and not host_is_loopback(host), "[listener]", where)
    if require_starttls and tls_cert is None:
        raise ConfigError(f"{where}: [listener] require_starttls needs tls_cert and tls_key")
    return ListenerConfig(
        host=host,
        port=port,
        protocol=protocol,
        hostname=hostname,
        shutdown_grace=grace,
        max_connections=int(positive_number(table, "max_connections", defaults.max_connections, "[listener]", where, maximum=10_000, integer=True)),
        max_connections_per_ip=int(positive_number(table, "max_connections_per_ip", defaults.max_connections_per_ip, "[listener]", where, maximum=10_000, integer=True)),
        idle_timeout=positive_number(table, "idle_timeout", defaults.idle_timeout, "[listener]", where, maximum=3600),
        data_timeout=positive_number(table, "data_timeout", defaults.data_timeout, "[listener]", where, maximum=3600),
        tls_cert=tls_cert,
        tls_key=tls_key,
        require_starttls=require_starttls,
    )


def listener_file(table: dict[str, Any], key: str, where: str, path: Path) -> Path | None:
    """A TLS file, relative to the config file; it is read when `serve` starts, as the daemon's user."""
    name = optional_text(table, key, "[listener]", where)
    return (path.parent / name).resolve() if name else None


def database_from(table: dict[str, Any], where: str, path: Path, environ: dict[str, str]) -> DatabaseConfig:
    url = environ.get(DATABASE_URL_ENV) or text(table, "url", DatabaseConfig().url, "[database]", where)
    if "://" not in url:
        raise ConfigError(f"{where}: [database] url must be an SQLAlchemy URL such as sqlite:///var/mailintake.db")
    return DatabaseConfig(url=sqlite_url_relative_to(url, path.parent))


def sqlite_url_relative_to(url: str, base: Path) -> str:
    """A relative SQLite path is taken relative to the config file, not the working directory."""
    prefix, _, rest = url.partition(":///")
    if not prefix.startswith("sqlite") or not rest or rest.startswith("/") or rest.startswith(":memory:"):
        return url
    return f"{prefix}:///{(base / rest).resolve()}"


def logging_from(table: dict[str, Any], where: str) -> LoggingConfig:
    level = text(table, "level", LoggingConfig().level, "[logging]", where).upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"{where}: [logging] level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    return LoggingConfig(level=level)


def calendar_from(table: dict[str, Any], where: str) -> CalendarConfig:
    defaults = CalendarConfig()
    try:
        calendar = CalendarConfig(
            timezone=text(table, "timezone", defaults.timezone, "[calendar]", where),
            country=optional_text(table, "country", "[calendar]", where),
            subdivision=optional_text(table, "subdivision", "[calendar]", where),
            categories=string_list(table, "categories", defaults.categories, "[calendar]", where),
            workdays=string_list(table, "workdays", defaults.workdays, "[calendar]", where),
            hours=string_list(table, "hours", defaults.hours, "[calendar]", where),
            closures=closures_from(table.get("closures", list(defaults.closures)), where),
        )
        calendar.business_calendar()
    except (CalendarError, DurationError) as error:
        raise ConfigError(f"{where}: [calendar] {error}") from None
    return calendar


def closures_from(items: Any, where: str) -> tuple[Closure | RecurringClosure, ...]:
    if not isinstance(items, list):
        raise ConfigError(f'{where}: [calendar] closures must be a list of tables like {{ start = 2026-12-28, end = 2026-12-31, name = "year-end shutdown" }}')
    return tuple(closure_from(item, where) for item in items)


def closure_from(item: Any, where: str) -> Closure | RecurringClosure:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise ConfigError(f"{where}: [calendar] closures: each closure needs a name and either start (and end) dates or a rule, got {item!r}")
    unknown = set(item) - {"start", "end", "name", "rule"}
    if unknown:
        raise ConfigError(f"{where}: [calendar] closures: unknown key '{sorted(unknown)[0]}'")
    if "rule" in item:
        return RecurringClosure(rule=str(item["rule"]), name=item["name"])
    start, end = item.get("start"), item.get("end", item.get("start"))
    if not isinstance(start, date) or isinstance(start, datetime) or not isinstance(end, date) or isinstance(end, datetime):
        raise ConfigError(f"{where}: [calendar] closures: {item['name']!r} needs start (and optional end) as TOML dates like 2026-12-28")
    return Closure(start=start, end=end, name=item["name"])


def sla_from(tables: Any, where: str) -> Policy:
    try:
        return policy_from_mapping(tables)
    except (PolicyError, DurationError) as error:
        raise ConfigError(f"{where}: {error}") from None


def relay_from(table: dict[str, Any], where: str, environ: dict[str, str]) -> RelayConfig:
    defaults = RelayConfig()
    port = table.get("port", defaults.port)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ConfigError(f"{where}: [relay] port must be an integer from 1 to 65535, got {port!r}")
    starttls, tls = flag(table, "starttls", defaults.starttls, "[relay]", where), flag(table, "tls", defaults.tls, "[relay]", where)
    if starttls and tls:
        raise ConfigError(f"{where}: [relay] starttls and tls exclude each other (tls is implicit TLS, e.g. port 465)")
    return RelayConfig(
        host=text(table, "host", defaults.host, "[relay]", where),
        port=port,
        starttls=starttls,
        tls=tls,
        username=string_or_empty(table, "username", defaults.username, "[relay]", where),
        password=environ.get(RELAY_PASSWORD_ENV) or string_or_empty(table, "password", defaults.password, "[relay]", where),
        timeout=positive_number(table, "timeout", defaults.timeout, "[relay]", where, maximum=600),
    )


def staff_from(table: dict[str, Any], where: str, intake: IntakeConfig) -> StaffConfig:
    defaults = StaffConfig()
    lists = {}
    ours = set(intake.addresses) | {intake.reply_address}
    for key in ("notify", "alerts"):
        values = string_list(table, key, getattr(defaults, key), "[staff]", where)
        lists[key] = tuple(mailbox_address(value, f"[staff] {key}", where) for value in values)
        if ours & set(lists[key]):
            raise ConfigError(f"{where}: [staff] {key} must not contain an address of [intake] (a notification sent to it would come back as a new report)")
    staff = StaffConfig(
        notify=lists["notify"],
        alerts=lists["alerts"] or lists["notify"],
        members=tuple(member_entry(value, where) for value in string_list(table, "members", defaults.members, "[staff]", where)),
        authentication=tuple(value.lower() for value in string_list(table, "authentication", defaults.authentication, "[staff]", where)),
        trusted_authserv_id=string_or_empty(table, "trusted_authserv_id", defaults.trusted_authserv_id, "[staff]", where).strip(),
        max_received_above_results=count(table, "max_received_above_results", defaults.max_received_above_results, "[staff]", where, maximum=20),
        dns_server=string_or_empty(table, "dns_server", defaults.dns_server, "[staff]", where).strip(),
        signature_markers=string_list(table, "signature_markers", defaults.signature_markers, "[staff]", where),
        anonymous_alias=flag(table, "anonymous_alias", defaults.anonymous_alias, "[staff]", where),
        max_attachment_bytes=size_in_bytes(table.get("max_attachment_bytes", defaults.max_attachment_bytes), "[staff] max_attachment_bytes", where, 0, "10MB"),
    )
    problem = policy_problem(staff.policy())
    if staff.dns_server:
        try:
            dns_server_address(staff.dns_server)
        except ValueError as error:
            raise ConfigError(f"{where}: [staff] dns_server: {error}") from None
    if problem:
        raise ConfigError(f"{where}: [staff] {problem}")
    if ours & set(staff.members):
        raise ConfigError(f"{where}: [staff] members must not contain an address of [intake]")
    return staff


def member_entry(value: str, where: str) -> str:
    """A staff member: a full address, or a bare domain for everyone at it."""
    if "@" in value:
        return mailbox_address(value, "[staff] members", where)
    domain = value.strip().lower()
    if not DOMAIN.fullmatch(domain):
        raise ConfigError(f"{where}: [staff] members: {value!r} is neither an address nor a domain like example.com")
    return domain


def templates_from(table: dict[str, Any], where: str, path: Path) -> TemplatesConfig:
    defaults = TemplatesConfig()
    directory = optional_text(table, "dir", "[templates]", where)
    override = (path.parent / directory).resolve() if directory else None
    if override is not None and not override.is_dir():
        raise ConfigError(f"{where}: [templates] dir: {override} is not a directory")
    return TemplatesConfig(
        dir=override,
        organisation=text(table, "organisation", defaults.organisation, "[templates]", where),
        policy_url=string_or_empty(table, "policy_url", defaults.policy_url, "[templates]", where),
    )


def outbox_from(table: dict[str, Any], where: str) -> OutboxConfig:
    defaults = OutboxConfig()
    return OutboxConfig(
        max_attempts=int(positive_number(table, "max_attempts", defaults.max_attempts, "[outbox]", where, maximum=100, integer=True)),
        retry_interval=positive_number(table, "retry_interval", defaults.retry_interval, "[outbox]", where, maximum=86_400),
        auto_replies_per_hour=int(positive_number(table, "auto_replies_per_hour", defaults.auto_replies_per_hour, "[outbox]", where, maximum=10_000, integer=True)),
    )


def scheduler_from(table: dict[str, Any], where: str) -> SchedulerConfig:
    defaults = SchedulerConfig()
    digest_time = digest_time_from(table, defaults.digest_time, where)
    return SchedulerConfig(
        sla_interval=positive_number(table, "sla_interval", defaults.sla_interval, "[scheduler]", where, maximum=86_400),
        outbox_interval=positive_number(table, "outbox_interval", defaults.outbox_interval, "[scheduler]", where, maximum=86_400),
        digest_time=digest_time,
    )


def workers_from(table: dict[str, Any], where: str, intake: IntakeConfig) -> WorkersConfig:
    defaults = WorkersConfig()
    processes = table.get("processes", defaults.processes)
    if processes != "auto" and (isinstance(processes, bool) or not isinstance(processes, int) or not 0 <= processes <= 64):
        raise ConfigError(f'{where}: [workers] processes must be "auto" or a whole number from 0 to 64, got {processes!r}')
    claim_lease = positive_number(table, "claim_lease", defaults.claim_lease, "[workers]", where, maximum=86_400)
    if claim_lease <= intake.parse_timeout:
        # A lease that ran out during a parse would let a second worker parse the same mail.
        raise ConfigError(f"{where}: [workers] claim_lease ({claim_lease:g} s) must be longer than [intake] parse_timeout ({intake.parse_timeout:g} s)")
    return WorkersConfig(processes=processes, claim_lease=claim_lease)


def digest_time_from(table: dict[str, Any], default: time | None, where: str) -> time | None:
    if "digest_time" not in table:
        return default
    digest = table["digest_time"]
    if not isinstance(digest, str):
        raise ConfigError(f'{where}: [scheduler] digest_time must be a local time like "08:30", or "" for no digest, got {digest!r}')
    try:
        return time.fromisoformat(digest) if digest else None
    except ValueError:
        raise ConfigError(f'{where}: [scheduler] digest_time: {digest!r} is not a time like "08:30"') from None


def secrets_from(table: dict[str, Any], where: str, environ: dict[str, str]) -> SecretsConfig:
    defaults = SecretsConfig()
    token_key = environ.get(TOKEN_KEY_ENV) or string_or_empty(table, "token_key", defaults.token_key, "[secrets]", where)
    if token_key:
        try:
            key_from_text(token_key)
        except ValueError as error:
            raise ConfigError(f"{where}: [secrets] token_key: {error}") from None
    return SecretsConfig(token_key=token_key, dev_mode=flag(table, "dev_mode", defaults.dev_mode, "[secrets]", where))
