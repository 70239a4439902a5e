"""Whether a message really comes from a staff member: allowlist plus authentication
(anyone can write a From header), never the From header alone.

DNS is the only I/O and it is injected (``dnsfunc``), so verdicts are testable without a
network. Reasons, log lines and exceptions name no addresses: the From address stays with
the caller.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from email import policy as email_policy
from email.parser import BytesHeaderParser

import authres
import authres.core
import dkim
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver
from dkim.util import parse_tag_value

from mailintake.config.staff_policy import Method, StaffPolicy, dns_server_address, policy_problem

DnsFunc = Callable[..., bytes | None]

MIN_KEY_BITS = 1024
ACCEPTED_DKIM_ALGORITHMS = frozenset({b"rsa-sha256", b"ed25519-sha256"})
MAX_DKIM_SIGNATURES = 8
MAX_AUTHENTICATION_RESULTS_LENGTH = 8192
EDNS_PAYLOAD = 1232
NOT_A_MEMBER_REASON = "sender is not in [staff] members"
DKIM_FAILURE_REASON = "no valid DKIM signature aligned with the From domain"

logger = logging.getLogger(__name__)

_AUTHSERV_ID = re.compile(r"\s*(?:\((?:[^()\\]|\\.)*\)\s*)*([^\s;()]+)")


@dataclass(frozen=True)
class StaffVerdict:
    member: bool
    authenticated: bool
    method: str | None
    reason: str
    temporary: bool = False  # not authenticated only because DNS did not answer: try again later
    # The authenticating DKIM signature covers Message-ID: a replay under a new Message-ID
    # fails verification, so deduplicating on Message-ID stops every replay.
    signs_message_id: bool = False


@dataclass(frozen=True)
class MethodOutcome:
    passed: bool
    reason: str
    temporary: bool = False
    signs_message_id: bool = False


class DnsUnavailable(Exception):
    """The DNS server did not answer (timeout, SERVFAIL, network): not the same as "no key"."""


def is_member(address: str, members: Sequence[str]) -> bool:
    """Full addresses match exactly; a bare domain matches addresses at exactly that
    domain, so "example.com" does not admit "x@mail.example.com"."""
    address = address.lower()
    local, at, domain = address.rpartition("@")
    if not (at and local and domain):
        return False
    wanted = {member.lower() for member in members}
    bare_domains = {member for member in wanted if "@" not in member}
    return address in wanted or domain in bare_domains


def staff_verdict(raw: bytes, from_address: str, policy: StaffPolicy, dnsfunc: DnsFunc) -> StaffVerdict:
    """Never raises: whatever goes wrong inside a check makes that check fail."""
    if not is_member(from_address, policy.members):
        return StaffVerdict(member=False, authenticated=False, method=None, reason=NOT_A_MEMBER_REASON)
    problem = policy_problem(policy)
    if problem is not None:
        return StaffVerdict(member=True, authenticated=False, method=None, reason=f"[staff] policy is invalid: {problem}")
    from_domain = from_address.lower().rpartition("@")[2]
    failures: list[str] = []
    temporary = False
    for method in policy.authentication:
        outcome = method_outcome(method, raw, from_domain, policy, dnsfunc)
        if outcome.passed:
            return StaffVerdict(member=True, authenticated=True, method=method, reason=outcome.reason, signs_message_id=outcome.signs_message_id)
        failures.append(outcome.reason)
        temporary = temporary or outcome.temporary
    return StaffVerdict(member=True, authenticated=False, method=None, reason="; ".join(failures), temporary=temporary)


def method_outcome(method: Method, raw: bytes, from_domain: str, policy: StaffPolicy, dnsfunc: DnsFunc) -> MethodOutcome:
    try:
        if method == "dkim":
            return dkim_outcome(raw, from_domain, dnsfunc)
        if method == "authentication-results":
            return authentication_results_outcome(raw, from_domain, policy.trusted_authserv_id or "", policy.max_received_above_results)
        if method == "allowlist":
            return MethodOutcome(True, "sender is in [staff] members; the allowlist-only policy verifies nothing", signs_message_id=True)
        return MethodOutcome(False, "unknown method")
    except Exception as error:
        # The type name only: dkimpy and authres put header contents in their messages.
        logger.warning("staff check %s failed unexpectedly: %s", method, type(error).__name__)
        return MethodOutcome(False, f"{method} check failed unexpectedly")


def is_aligned(from_domain: str, signing_domain: str) -> bool:
    """Relaxed alignment: equal, or the From domain is a subdomain of the signing
    domain. A one-label signing domain ("com") would align with everything under it."""
    labels = signing_domain.split(".")
    if len(labels) < 2 or not all(labels):
        return False
    return from_domain == signing_domain or from_domain.endswith("." + signing_domain)


def dkim_outcome(raw: bytes, from_domain: str, dnsfunc: DnsFunc) -> MethodOutcome:
    try:
        verifier = dkim.DKIM(raw, logger=_SILENT_LOGGER, minkey=MIN_KEY_BITS)
    except Exception:
        return MethodOutcome(False, f"{DKIM_FAILURE_REASON} (message headers unreadable for DKIM)")
    signatures = [value for name, value in verifier.headers if name.lower() == b"dkim-signature"]
    if not signatures:
        return MethodOutcome(False, f"{DKIM_FAILURE_REASON} (no DKIM signature)")
    problems: list[str] = []
    temporary = False
    for index, signature in enumerate(signatures[:MAX_DKIM_SIGNATURES]):
        problem = dkim_signature_problem(signature, from_domain)
        try:
            if problem is None and not signature_verifies(verifier, index, dnsfunc):
                problem = "did not verify"
        except DnsUnavailable:
            problem, temporary = "DNS did not answer", True
        if problem is None:
            return MethodOutcome(True, "valid DKIM signature aligned with the From domain", signs_message_id=b"message-id" in signed_header_names(parse_tag_value(signature).get(b"h", b"")))
        problems.append(problem)
    if len(signatures) > MAX_DKIM_SIGNATURES:
        problems.append(f"only the first {MAX_DKIM_SIGNATURES} checked")
    return MethodOutcome(False, f"{DKIM_FAILURE_REASON} ({', '.join(problems)})", temporary)


def dkim_signature_problem(signature: bytes, from_domain: str) -> str | None:
    """Why this DKIM-Signature cannot vouch for the From domain, judged before any DNS
    lookup, so lookups only ever go to domains aligned with a member's domain."""
    try:
        tags = parse_tag_value(signature)
        signing_domain = tags.get(b"d", b"").decode("ascii").lower()
    except Exception:
        return "unreadable"
    if not is_aligned(from_domain, signing_domain):
        return "not aligned"
    if b"l" in tags:
        return "body length tag l="
    if b"from" not in signed_header_names(tags.get(b"h", b"")):
        return "From not signed"
    if tags.get(b"a", b"").lower() not in ACCEPTED_DKIM_ALGORITHMS:
        return "algorithm not accepted"
    return None


def signed_header_names(h_tag: bytes) -> list[bytes]:
    return [name.lower() for name in re.split(rb"\s*:\s*", h_tag.strip())]


def signature_verifies(verifier: dkim.DKIM, index: int, dnsfunc: DnsFunc) -> bool:
    """False for a signature that does not verify; DnsUnavailable when DNS did not answer."""
    try:
        return verifier.verify(idx=index, dnsfunc=dnsfunc) is True
    except DnsUnavailable:
        raise
    except Exception:
        return False


def authentication_results_outcome(raw: bytes, from_domain: str, trusted_authserv_id: str, max_received_above: int = 1) -> MethodOutcome:
    """RFC 8601: only the topmost header with our authserv-id counts; anyone can add
    lower ones before the mail reaches our MTA. It must also sit above the Received
    headers of the hops before our MX: one below them was written before our MX saw the mail.
    `raw` has its header lines split as the MTA split them (parse/headers.py normalized_line_endings)."""
    trusted = trusted_authserv_id.lower()
    for received_above, value in authentication_results_values(raw):
        claimed = claimed_authserv_id(value)
        if claimed is None:
            return MethodOutcome(False, "an Authentication-Results header above any trusted one has no readable authserv-id")
        if claimed != trusted:
            continue
        if received_above > max_received_above:
            return MethodOutcome(False, f"the trusted Authentication-Results header sits below {received_above} Received headers (more than [staff] max_received_above_results)")
        header = parsed_authentication_results(value)
        if header is None or header.authserv_id != trusted:
            return MethodOutcome(False, "the trusted Authentication-Results header could not be parsed")
        return replace(trusted_header_outcome(header, from_domain), signs_message_id=aligned_signatures_sign_message_id(raw, from_domain))
    return MethodOutcome(False, "no Authentication-Results header from the trusted server")


def envelope_sender_forgery(raw: bytes, envelope_domain: str, trusted_authserv_id: str, max_received_above: int = 1) -> str | None:
    """What our MX's trusted Authentication-Results says against the envelope sender's
    domain: "spf=fail" or "dmarc=fail", else None. An acknowledgement to a forged envelope
    sender is backscatter. `raw` as for authentication_results_outcome."""
    trusted = trusted_authserv_id.lower()
    if not trusted or not envelope_domain:
        return None
    for received_above, value in authentication_results_values(raw):
        if claimed_authserv_id(value) != trusted:
            continue
        header = parsed_authentication_results(value) if received_above <= max_received_above else None
        if header is None:
            return None
        for result in header.results:
            method, outcome = getattr(result, "method", ""), getattr(result, "result", "")
            if outcome != "fail":
                continue
            if method == "spf" and single_property_value_of(result, "smtp", "mailfrom") in (envelope_domain, None):
                return "spf=fail"
            if method == "dmarc" and single_property_value(result, "from") == envelope_domain:
                return "dmarc=fail"
        return None
    return None


def single_property_value_of(result: object, kind: str, name: str) -> str | None:
    """The lowercased domain of the one <kind>.<name> property (an address gives its domain)."""
    values = [prop.value for prop in getattr(result, "properties", []) if prop.type == kind and prop.name == name and prop.value]
    return str(values[0]).lower().rpartition("@")[2] if len(values) == 1 else None


def aligned_signatures_sign_message_id(raw: bytes, from_domain: str) -> bool:
    """Whether every DKIM-Signature aligned with the From domain covers Message-ID: which
    one our MX verified, its Authentication-Results does not say. With none at all the
    pass rests on SPF (dmarc=pass), which a copy sent from elsewhere fails."""
    headers = BytesHeaderParser(policy=email_policy.compat32).parsebytes(raw)
    covered = []
    for value in headers.get_all("DKIM-Signature", [])[:MAX_DKIM_SIGNATURES]:
        try:
            tags = parse_tag_value(re.sub(r"\s+", "", str(value)).encode("ascii"))
            aligned = is_aligned(from_domain, tags.get(b"d", b"").decode("ascii").lower())
        except Exception:
            continue
        if aligned:
            covered.append(b"message-id" in signed_header_names(tags.get(b"h", b"")))
    return all(covered)


def authentication_results_values(raw: bytes) -> list[tuple[int, str]]:
    """Values of the Authentication-Results fields, top to bottom, unfolded, each with the
    number of Received fields above it."""
    headers = BytesHeaderParser(policy=email_policy.compat32).parsebytes(raw)
    values: list[tuple[int, str]] = []
    received = 0
    for name, value in headers.raw_items():
        if name.lower() == "received":
            received += 1
        elif name.lower() == "authentication-results":
            values.append((received, re.sub(r"[\r\n]", "", str(value))))
    return values


def claimed_authserv_id(value: str) -> str | None:
    match = _AUTHSERV_ID.match(value)
    return match.group(1).lower() if match else None


class StrictAuthenticationResultsHeader(authres.core.AuthenticationResultsHeader):
    """authres by default drops a result's properties silently when one of them does not
    parse (`dkim=pass header.d=example.com (unclosed` reads as a bare dkim=pass) and
    ignores trailing junk; in strict mode both are syntax errors."""

    def __init__(self, feature_context: authres.FeatureContext, *args: object, **kwargs: object) -> None:
        kwargs["strict"] = True
        super().__init__(feature_context, *args, **kwargs)


def parsed_authentication_results(value: str) -> authres.core.AuthenticationResultsHeader | None:
    """None for anything authres cannot read; oversized and non-ASCII values are refused
    up front (authres re-scans the remaining text per token, quadratic in the length)."""
    if len(value) > MAX_AUTHENTICATION_RESULTS_LENGTH or not value.isascii():
        return None
    try:
        return StrictAuthenticationResultsHeader.parse_value(authres.core_features(), value)
    except Exception:
        return None


def trusted_header_outcome(header: authres.core.AuthenticationResultsHeader, from_domain: str) -> MethodOutcome:
    for result in header.results:
        method = getattr(result, "method", "")
        if getattr(result, "result", "") != "pass":
            continue
        if method == "dkim":
            signing_domain = single_property_value(result, "d")
            if signing_domain is not None and is_aligned(from_domain, signing_domain):
                return MethodOutcome(True, "trusted Authentication-Results header shows dkim=pass aligned with the From domain")
        if method == "dmarc" and single_property_value(result, "from") == from_domain:
            return MethodOutcome(True, "trusted Authentication-Results header shows dmarc=pass for the From domain")
    return MethodOutcome(False, "the trusted Authentication-Results header shows no dkim or dmarc pass for the From domain")


def single_property_value(result: object, name: str) -> str | None:
    """The lowercased value of the one header.<name> property, or None when it is
    missing or repeated (two header.d values leave it open which one passed)."""
    values = [prop.value for prop in getattr(result, "properties", []) if prop.type == "header" and prop.name == name and prop.value]
    return str(values[0]).lower() if len(values) == 1 else None


def dns_txt_lookup(server: str | None = None, timeout: float = 5.0) -> DnsFunc:
    """A dkimpy-compatible TXT lookup through dnspython. Raises ValueError at once for a
    malformed server or a missing system resolver configuration."""
    resolver = configured_resolver(server)
    configured_timeout = timeout

    def txt(name: bytes, timeout: float = configured_timeout) -> bytes | None:
        # dkimpy always passes its own timeout (5 s); the configured one stays the bound.
        try:
            answer = resolver.resolve(name.decode("ascii"), dns.rdatatype.TXT, search=False, lifetime=min(timeout, configured_timeout))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, UnicodeDecodeError):
            return None
        except (dns.exception.DNSException, OSError) as error:
            raise DnsUnavailable(type(error).__name__) from None
        records = list(answer.rrset or [])
        # RFC 6376 3.6.2.2 lets a verifier ignore a key published as several records.
        if len(records) != 1:
            return None
        return b"".join(records[0].strings)

    return txt


def configured_resolver(server: str | None) -> dns.resolver.Resolver:
    if server is None:
        try:
            resolver = dns.resolver.Resolver(configure=True)
        except dns.resolver.NoResolverConfiguration as error:
            raise ValueError("no system DNS resolver is configured; name a DNS server instead") from error
    else:
        host, port = dns_server_address(server)
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port)]
    resolver.use_edns(0, 0, EDNS_PAYLOAD)
    return resolver


def _silent_logger() -> logging.Logger:
    """dkimpy logs tag values (an i= tag may be a full address) and key errors; it gets
    a logger outside the hierarchy that drops everything."""
    silent = logging.Logger("mailintake.route.authentication.dkimpy", level=logging.CRITICAL + 1)
    silent.addHandler(logging.NullHandler())
    silent.propagate = False
    silent.disabled = True
    return silent


_SILENT_LOGGER = _silent_logger()
