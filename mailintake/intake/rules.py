"""What every session of one listener shares: connection limits, timeouts, size limit, TLS."""

from __future__ import annotations

import ssl
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from mailintake.config.schema import ConfigError, ListenerConfig
from mailintake.intake.replies import TOO_MANY_CONNECTIONS, TOO_MANY_FROM_ADDRESS


class ConnectionLimits:
    """Open connections of one listener, in all and per peer address."""

    def __init__(self, total: int, per_address: int) -> None:
        self.total = total
        self.per_address = per_address
        self._open: Counter[str] = Counter()

    def admit(self, address: str) -> str | None:
        """Count a new connection from `address`, or return the reply refusing it."""
        if self._open.total() >= self.total:
            return TOO_MANY_CONNECTIONS
        if self._open[address] >= self.per_address:
            return TOO_MANY_FROM_ADDRESS
        self._open[address] += 1
        return None

    def release(self, address: str) -> None:
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]


@dataclass(frozen=True)
class SessionRules:
    """What every session of one listener shares."""

    hostname: str
    max_message_size: int
    idle_timeout: float
    data_timeout: float
    connections: ConnectionLimits
    tls_context: ssl.SSLContext | None = None


def session_rules(listener: ListenerConfig, max_message_size: int) -> SessionRules:
    tls_context = server_tls_context(listener.tls_cert, listener.tls_key) if listener.tls_cert and listener.tls_key else None
    return SessionRules(
        hostname=listener.hostname,
        max_message_size=max_message_size,
        idle_timeout=listener.idle_timeout,
        data_timeout=listener.data_timeout,
        connections=ConnectionLimits(listener.max_connections, listener.max_connections_per_ip),
        tls_context=tls_context,
    )


class PassphraseRequired(Exception):
    pass


def refuse_passphrase() -> bytes:
    raise PassphraseRequired


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The STARTTLS context; a file that cannot serve is a ConfigError naming its key."""
    for name, path in (("tls_cert", cert), ("tls_key", key)):
        try:
            path.read_bytes()
        except OSError as error:
            raise ConfigError(f"[listener] {name}: cannot read {path} ({error.strerror})") from None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(cafile=str(cert))
    except ssl.SSLError:
        raise ConfigError(f"[listener] tls_cert: {cert} holds no PEM certificate") from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key, password=refuse_passphrase)
    except PassphraseRequired:
        raise ConfigError(f"[listener] tls_key: {key} is encrypted; use an unencrypted key readable only by the daemon's user") from None
    except ssl.SSLError as error:
        raise ConfigError(f"[listener] tls_key: {key} is not a PEM private key matching tls_cert ({error.reason or error.strerror})") from None
    return context
