"""Who counts as staff and how their mail is authenticated: the [staff] settings that
route/authentication.py applies, and their validation."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

Method = Literal["dkim", "authentication-results", "allowlist"]

KNOWN_METHODS: tuple[Method, ...] = ("dkim", "authentication-results", "allowlist")

_SINGLE_TOKEN = re.compile(r"[^\s;()]+")


@dataclass(frozen=True)
class StaffPolicy:
    members: tuple[str, ...]
    authentication: tuple[Method, ...] = ("dkim",)
    trusted_authserv_id: str | None = None
    # Received headers our own servers add above the trusted Authentication-Results header.
    max_received_above_results: int = 1


def policy_problem(policy: StaffPolicy) -> str | None:
    """Phrased with the config keys ([staff] authentication, trusted_authserv_id) that
    hold these fields."""
    known = ", ".join(KNOWN_METHODS)
    if not policy.authentication:
        return f"authentication is empty; name at least one of {known}"
    for method in policy.authentication:
        if method not in KNOWN_METHODS:
            return f"authentication: unknown method {method!r} (known: {known})"
    if "allowlist" in policy.authentication and set(policy.authentication) != {"allowlist"}:
        return "authentication: allowlist cannot be combined with other methods"
    if "authentication-results" in policy.authentication:
        authserv_id = policy.trusted_authserv_id
        if not authserv_id:
            return "trusted_authserv_id is required when authentication includes authentication-results"
        if not _SINGLE_TOKEN.fullmatch(authserv_id):
            return "trusted_authserv_id must be a single token like mx.example.com"
    return None


def dns_server_address(server: str) -> tuple[str, int]:
    """("10.0.0.1", 53) from "10.0.0.1", "10.0.0.1:5353", "[::1]:53", "[::1]" or "::1"."""
    text = server.strip()
    port_text = "53"
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{server!r} is not an IP address with an optional port, like 127.0.0.1:5353 or [::1]:53")
        port_text = rest[1:] if rest else port_text
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host = text
    try:
        address = ipaddress.ip_address(host)
        port = int(port_text)
    except ValueError as error:
        raise ValueError(f"{server!r} is not an IP address with an optional port, like 127.0.0.1:5353 or [::1]:53") from error
    if not 0 < port < 65536:
        raise ValueError(f"{server!r} has a port outside 1-65535")
    return str(address), port
