"""Staff recognition: allowlist plus DKIM or a trusted Authentication-Results header,
never From alone (every byte from outside is hostile: ARCHITECTURE.md). Signatures are made here with dkimpy and the
TEST-ONLY keys in tests/fixtures/dkim/."""

from __future__ import annotations

import base64
import hashlib
import logging
import socket

import dkim
import pytest
from dkim.canonicalization import CanonicalizationPolicy
from dkim.crypto import parse_pem_private_key

from mailintake.parse.headers import normalized_line_endings
from mailintake.route.authentication import (
    MAX_DKIM_SIGNATURES,
    NOT_A_MEMBER_REASON,
    DnsUnavailable,
    StaffPolicy,
    StaffVerdict,
    dns_server_address,
    dns_txt_lookup,
    is_member,
    policy_problem,
    staff_verdict,
)
from tests.dkim_keys import PRIVATE_KEY, WEAK_PRIVATE_KEY, dkim_txt_record
from tests.dns_server import TxtDnsServer

TXT = dkim_txt_record("test-only-rsa2048.pub")
WEAK_TXT = dkim_txt_record("test-only-rsa768-too-weak.pub")

MESSAGE = b"From: Alice <alice@example.com>\r\nTo: security@example.com\r\nSubject: #status triaged\r\nMessage-ID: <staff-1@example.com>\r\n\r\n#status triaged\r\n"
DKIM_POLICY = StaffPolicy(members=("example.com",))
AR_POLICY = StaffPolicy(members=("example.com",), authentication=("authentication-results",), trusted_authserv_id="mx.example.com")
EITHER_POLICY = StaffPolicy(members=("example.com",), authentication=("dkim", "authentication-results"), trusted_authserv_id="mx.example.com")


class DictDns:
    """dkimpy-compatible dnsfunc backed by a dict; remembers every name asked for."""

    def __init__(self, records: dict[bytes, bytes] | None = None) -> None:
        self.records = {b"sel._domainkey.example.com.": TXT, b"sel._domainkey.evil.test.": TXT} if records is None else records
        self.asked: list[bytes] = []

    def __call__(self, name: bytes, timeout: float = 5) -> bytes | None:
        self.asked.append(name)
        return self.records.get(name)


def signed(message: bytes, domain: bytes = b"example.com", key: bytes = PRIVATE_KEY, **options: object) -> bytes:
    return dkim.sign(message, b"sel", domain, key, **options) + message


def with_from(message: bytes, address: bytes) -> bytes:
    return message.replace(b"From: Alice <alice@example.com>", b"From: " + address)


def verdict(raw: bytes, from_address: str = "alice@example.com", policy: StaffPolicy = DKIM_POLICY, dns: DictDns | None = None) -> StaffVerdict:
    result = staff_verdict(raw, from_address, policy, dns if dns is not None else DictDns())
    assert "@" not in result.reason and "\n" not in result.reason
    return result


def dkimpy_alone_accepts(raw: bytes, dns: DictDns | None = None) -> bool:
    """What dkimpy says on its own: proves a rejection below comes from our rule."""
    return dkim.verify(raw, dnsfunc=dns if dns is not None else DictDns())


# --- membership -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "members", "expected"),
    [
        ("alice@example.com", ("alice@example.com",), True),
        ("Alice@Example.COM", ("alice@example.com",), True),
        ("bob@example.com", ("alice@example.com",), False),
        ("bob@example.com", ("example.com",), True),
        ("bob@EXAMPLE.com", ("example.com",), True),
        ("bob@mail.example.com", ("example.com",), False),
        ("bob@notexample.com", ("example.com",), False),
        ("bob@example.com.evil.test", ("example.com",), False),
        ("example.com", ("example.com",), False),
        ("@example.com", ("example.com",), False),
        ("bob@", ("example.com",), False),
        ("", ("example.com",), False),
        ("alice@example.com", (), False),
        ("alice@evil.test", ("alice@example.com", "example.org"), False),
        ("x@example.org", ("alice@example.com", "example.org"), True),
        ('"a@example.com"@evil.test', ("example.com",), False),
    ],
)
def test_is_member(address: str, members: tuple[str, ...], expected: bool) -> None:
    assert is_member(address, members) is expected


def test_not_a_member_is_refused_without_any_dns_lookup() -> None:
    dns = DictDns()
    result = verdict(signed(with_from(MESSAGE, b"r@example.org"), b"example.org"), "r@example.org", dns=dns)
    assert result == StaffVerdict(member=False, authenticated=False, method=None, reason=NOT_A_MEMBER_REASON)
    assert dns.asked == []


def test_an_ambiguous_from_passed_as_empty_is_not_a_member() -> None:
    dns = DictDns()
    assert verdict(signed(MESSAGE), "", dns=dns).member is False
    assert dns.asked == []


# --- DKIM -----------------------------------------------------------------------------


def test_valid_aligned_signature_authenticates() -> None:
    dns = DictDns()
    result = verdict(signed(MESSAGE), dns=dns)
    assert result == StaffVerdict(member=True, authenticated=True, method="dkim", reason="valid DKIM signature aligned with the From domain", signs_message_id=True)
    assert dns.asked == [b"sel._domainkey.example.com."]


def test_a_signature_that_does_not_cover_message_id_authenticates_but_says_so() -> None:
    """Such a mail can be replayed under a new Message-ID; the conversation refuses its commands."""
    unsigned_id = signed(MESSAGE, include_headers=[b"from", b"to", b"subject", b"date"])
    result = verdict(unsigned_id)
    assert result.authenticated and not result.signs_message_id
    passed = b"Authentication-Results: mx.example.com; dkim=pass header.d=example.com\r\n"
    assert verdict(passed + signed(MESSAGE), policy=AR_POLICY).signs_message_id
    assert not verdict(passed + unsigned_id, policy=AR_POLICY).signs_message_id
    spf_aligned = b"Authentication-Results: mx.example.com; dmarc=pass header.from=example.com\r\n"
    assert verdict(spf_aligned + MESSAGE, policy=AR_POLICY).signs_message_id, "no DKIM to replay: the pass rests on SPF"


def test_signature_of_another_domain_does_not_authenticate_and_is_not_even_looked_up() -> None:
    raw = signed(MESSAGE, b"evil.test")
    dns = DictDns()
    assert dkimpy_alone_accepts(raw)
    result = verdict(raw, dns=dns)
    assert (result.member, result.authenticated, result.method) == (True, False, None)
    assert result.reason == "no valid DKIM signature aligned with the From domain (not aligned)"
    assert dns.asked == []


def test_from_at_evil_test_with_an_example_com_signature_fails() -> None:
    """The caller hands over x@evil.test for `"staff@example.com" <x@evil.test>`; even if
    that address were a member, an example.com signature does not vouch for it."""
    raw = signed(with_from(MESSAGE, b'"staff@example.com" <x@evil.test>'))
    assert dkimpy_alone_accepts(raw)
    assert verdict(raw, "x@evil.test").member is False
    contractor = StaffPolicy(members=("example.com", "x@evil.test"))
    result = verdict(raw, "x@evil.test", contractor)
    assert (result.member, result.authenticated) == (True, False)
    assert "not aligned" in result.reason


def test_subdomain_from_aligns_with_parent_signing_domain() -> None:
    raw = signed(with_from(MESSAGE, b"alice@mail.example.com"))
    assert verdict(raw, "alice@mail.example.com", StaffPolicy(members=("mail.example.com",))).authenticated


def test_parent_from_does_not_align_with_a_subdomain_signature() -> None:
    raw = signed(MESSAGE, b"mail.example.com")
    dns = DictDns({b"sel._domainkey.mail.example.com.": TXT})
    assert dkimpy_alone_accepts(raw, dns)
    assert "not aligned" in verdict(raw, dns=dns).reason


def test_one_label_signing_domain_never_aligns() -> None:
    raw = signed(MESSAGE, b"com")
    dns = DictDns({b"sel._domainkey.com.": TXT})
    assert dkimpy_alone_accepts(raw, dns)
    result = verdict(raw, dns=dns)
    assert not result.authenticated and "not aligned" in result.reason


def test_body_altered_after_signing_fails() -> None:
    raw = signed(MESSAGE).replace(b"\r\n\r\n#status triaged", b"\r\n\r\n#status closed")
    assert b"#status closed" in raw
    result = verdict(raw)
    assert not result.authenticated and "did not verify" in result.reason


def test_from_altered_after_signing_fails() -> None:
    raw = with_from(signed(MESSAGE), b"Bob <bob@example.com>")
    result = verdict(raw, "bob@example.com")
    assert (result.member, result.authenticated) == (True, False)
    assert "did not verify" in result.reason


def test_signature_with_body_length_tag_fails_even_though_it_verifies() -> None:
    raw = signed(MESSAGE, length=True) + b"#status closed\r\n"
    assert b" l=" in raw
    assert dkimpy_alone_accepts(raw)
    result = verdict(raw)
    assert not result.authenticated and "body length tag l=" in result.reason


def signature_without_from(message: bytes) -> bytes:
    """dkimpy refuses to sign without From, so build the header the way it would."""
    signer = dkim.DKIM(message)
    signer.hasher = hashlib.sha256
    canon = CanonicalizationPolicy.from_c_value(b"relaxed/simple")
    body_hash = base64.b64encode(hashlib.sha256(canon.canonicalize_body(signer.body)).digest())
    fields = [
        (b"v", b"1"),
        (b"a", b"rsa-sha256"),
        (b"c", b"relaxed/simple"),
        (b"d", b"example.com"),
        (b"s", b"sel"),
        (b"h", b"to : subject : message-id"),
        (b"bh", body_hash),
        (b"b", b"0" * 60),
    ]
    key = parse_pem_private_key(PRIVATE_KEY)
    return b"DKIM-Signature: " + signer.gen_header(fields, (b"to", b"subject", b"message-id"), canon, b"DKIM-Signature", key)


def test_signature_that_does_not_cover_from_fails() -> None:
    raw = with_from(signature_without_from(MESSAGE) + MESSAGE, b"Bob <bob@example.com>")
    assert dkimpy_alone_accepts(raw)
    result = verdict(raw, "bob@example.com")
    assert not result.authenticated and "From not signed" in result.reason


def test_rsa_sha1_signature_fails_rfc_8301() -> None:
    raw = signed(MESSAGE, signature_algorithm=b"rsa-sha1")
    assert dkimpy_alone_accepts(raw)
    assert "algorithm not accepted" in verdict(raw).reason


def test_key_shorter_than_1024_bits_fails() -> None:
    raw = signed(MESSAGE, key=WEAK_PRIVATE_KEY)
    dns = DictDns({b"sel._domainkey.example.com.": WEAK_TXT})
    assert dkim.verify(raw, dnsfunc=dns, minkey=512)
    assert "did not verify" in verdict(raw, dns=dns).reason


def test_missing_key_in_dns_fails() -> None:
    dns = DictDns({})
    result = verdict(signed(MESSAGE), dns=dns)
    assert not result.authenticated and "did not verify" in result.reason
    assert dns.asked == [b"sel._domainkey.example.com."]


def test_unsigned_message_fails() -> None:
    dns = DictDns()
    result = verdict(MESSAGE, dns=dns)
    assert result == StaffVerdict(member=True, authenticated=False, method=None, reason="no valid DKIM signature aligned with the From domain (no DKIM signature)")
    assert dns.asked == []


def test_every_signature_is_tried_by_index() -> None:
    raw = signed(signed(MESSAGE), b"evil.test")
    assert raw.index(b"d=evil.test") < raw.index(b"d=example.com")
    assert verdict(raw).authenticated


def test_dns_lookups_are_bounded_by_the_signature_count() -> None:
    one = signed(MESSAGE).split(b"From:", 1)[0]
    dns = DictDns({})
    result = verdict(one * (MAX_DKIM_SIGNATURES + 5) + MESSAGE, dns=dns)
    assert not result.authenticated and f"only the first {MAX_DKIM_SIGNATURES} checked" in result.reason
    assert len(dns.asked) == MAX_DKIM_SIGNATURES


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff garbage without headers",
        b"DKIM-Signature: v=1; d=example.com; d=example.com\r\n" + MESSAGE,
        b"DKIM-Signature: \xff\xfe=\r\n" + MESSAGE,
        b"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=sel; h=from; bh=!!!; b=???\r\n" + MESSAGE,
    ],
)
def test_malformed_input_never_raises(raw: bytes) -> None:
    assert verdict(raw).authenticated is False


def test_a_failing_dnsfunc_fails_the_signature_and_does_not_raise() -> None:
    def broken(name: bytes, timeout: float = 5) -> bytes | None:
        raise OSError("network down")

    result = staff_verdict(signed(MESSAGE), "alice@example.com", DKIM_POLICY, broken)
    assert not result.authenticated and "did not verify" in result.reason


def test_dns_that_does_not_answer_is_a_temporary_failure_not_a_verdict() -> None:
    def unavailable(name: bytes, timeout: float = 5) -> bytes | None:
        raise DnsUnavailable("Timeout")

    result = staff_verdict(signed(MESSAGE), "alice@example.com", DKIM_POLICY, unavailable)
    assert not result.authenticated and result.temporary and "DNS did not answer" in result.reason
    assert not staff_verdict(signed(MESSAGE), "alice@example.com", DKIM_POLICY, DictDns({})).temporary


def test_a_dns_server_that_is_not_there_raises_dns_unavailable() -> None:
    with TxtDnsServer({}) as (host, port):
        pass
    lookup = dns_txt_lookup(f"{host}:{port}", timeout=0.5)
    with pytest.raises(DnsUnavailable):
        lookup(b"sel._domainkey.example.com.")


def test_no_address_reaches_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    raw = signed(MESSAGE, identity=b"alice@example.com")
    with caplog.at_level(logging.DEBUG):
        verdict(raw, dns=DictDns({}))
        verdict(raw.replace(b"\r\n\r\n#status triaged", b"\r\n\r\n#status closed"))
    assert "@" not in caplog.text


# --- Authentication-Results -----------------------------------------------------------


def with_results(*values: str, message: bytes = MESSAGE) -> bytes:
    return b"".join(f"Authentication-Results: {value}\r\n".encode() for value in values) + message


PASS = "mx.example.com; dkim=pass header.d=example.com header.i=@example.com; spf=pass smtp.mailfrom=example.com"
FAIL = "mx.example.com; dkim=fail header.d=example.com; dmarc=fail header.from=example.com"


def test_topmost_trusted_header_with_aligned_dkim_pass_authenticates() -> None:
    dns = DictDns()
    result = verdict(with_results(PASS), policy=AR_POLICY, dns=dns)
    assert (result.authenticated, result.method) == (True, "authentication-results")
    assert dns.asked == []


def test_forged_lower_trusted_header_does_not_count() -> None:
    assert not verdict(with_results(FAIL, PASS), policy=AR_POLICY).authenticated


def test_trusted_header_below_the_received_lines_of_earlier_hops_does_not_count() -> None:
    ours = b"Received: from mx.example.com by inbound.example.com\r\n"
    theirs = b"Received: from relay.evil.test by mx.evil.test\r\n"
    assert verdict(ours + with_results(PASS), policy=AR_POLICY).authenticated
    written_before_our_mx = verdict(ours + theirs + with_results(PASS), policy=AR_POLICY)
    assert not written_before_our_mx.authenticated
    assert "sits below 2 Received headers" in written_before_our_mx.reason
    one_more_hop = StaffPolicy(members=("example.com",), authentication=("authentication-results",), trusted_authserv_id="mx.example.com", max_received_above_results=2)
    assert verdict(ours + theirs + with_results(PASS), policy=one_more_hop).authenticated


def test_trusted_header_hidden_behind_a_bare_cr_is_not_a_header() -> None:
    """Postfix splits header lines at CRLF only: behind a bare CR the text is part of the
    header before it, which the MX did not strip. Read as the MX read it, there is no
    trusted header at all."""
    hidden = f"X-Note: hi\rAuthentication-Results: {PASS}\r\n".encode() + MESSAGE
    assert not verdict(normalized_line_endings(hidden), policy=AR_POLICY).authenticated
    hidden_by_lf = f"X-Note: hi\nAuthentication-Results: {PASS}\r\n".encode() + MESSAGE
    assert not verdict(normalized_line_endings(hidden_by_lf), policy=AR_POLICY).authenticated
    assert verdict(normalized_line_endings(with_results(PASS)), policy=AR_POLICY).authenticated


def test_other_authserv_ids_are_ignored() -> None:
    forged_elsewhere = PASS.replace("mx.example.com", "mx.evil.test")
    result = verdict(with_results(forged_elsewhere), policy=AR_POLICY)
    assert not result.authenticated and result.reason == "no Authentication-Results header from the trusted server"
    assert not verdict(with_results(forged_elsewhere, FAIL), policy=AR_POLICY).authenticated
    assert verdict(with_results(FAIL.replace("mx.example.com", "relay.example.net"), PASS), policy=AR_POLICY).authenticated


def test_authserv_id_matches_case_insensitively_and_folded_headers_parse() -> None:
    folded = "MX.Example.COM (Postfix) 1;\r\n\tdkim=pass (2048-bit key)\r\n header.d=example.com"
    assert verdict(with_results(folded), policy=AR_POLICY).authenticated


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ("dmarc=pass (p=reject) header.from=example.com", True),
        ("dmarc=pass header.from=EXAMPLE.com", True),
        ("dmarc=pass header.from=evil.test", False),
        ("dmarc=pass header.from=mail.example.com", False),
        ("dmarc=pass header.from=com", False),
        ("dmarc=fail header.from=example.com", False),
        ("dkim=pass header.d=evil.test", False),
        ("dkim=pass header.d=mail.example.com", False),
        ("dkim=pass header.d=com", False),
        ("dkim=pass header.i=@example.com", False),
        ("dkim=pass header.d=evil.test header.d=example.com", False),
        ("dkim=neutral header.d=example.com", False),
        ("spf=pass smtp.mailfrom=example.com", False),
        ("dkim=pass header.d=evil.test; dkim=pass header.d=example.com", True),
    ],
)
def test_what_the_trusted_header_must_show(result: str, expected: bool) -> None:
    assert verdict(with_results(f"mx.example.com; {result}"), policy=AR_POLICY).authenticated is expected


def test_trusted_header_dkim_pass_aligns_relaxed_but_dmarc_needs_the_exact_from_domain() -> None:
    policy = StaffPolicy(members=("mail.example.com",), authentication=("authentication-results",), trusted_authserv_id="mx.example.com")
    raw = with_results(PASS, message=with_from(MESSAGE, b"alice@mail.example.com"))
    assert verdict(raw, "alice@mail.example.com", policy).authenticated
    dmarc_for_parent = with_results("mx.example.com; dmarc=pass header.from=example.com", message=with_from(MESSAGE, b"alice@mail.example.com"))
    assert not verdict(dmarc_for_parent, "alice@mail.example.com", policy).authenticated


@pytest.mark.parametrize(
    "unparseable",
    [
        "mx.example.com; dkim=pass header.d=example.com (unclosed comment",
        "mx.example.com 2; dkim=pass header.d=example.com",
        "mx.example.com; ;;; dkim=pass header.d=example.com",
        "mx.example.com; dkim=pass header.d=example.com trailing junk",
        'mx.example.com; dkim=pass header.d=example.com policy.x="unterminated',
        "mx.example.com; dkim=pass header.d=example.com (" + "c" * 9000 + ")",
    ],
)
def test_unparseable_topmost_trusted_header_stops_the_search(unparseable: str) -> None:
    result = verdict(with_results(unparseable, PASS), policy=AR_POLICY)
    assert not result.authenticated and result.reason == "the trusted Authentication-Results header could not be parsed"


def test_header_without_a_readable_authserv_id_above_stops_the_search() -> None:
    result = verdict(with_results("((nested) comment) mx.example.com; none", PASS), policy=AR_POLICY)
    assert not result.authenticated


def test_either_method_may_pass() -> None:
    dns = DictDns()
    only_results = verdict(with_results(PASS), policy=EITHER_POLICY, dns=dns)
    assert (only_results.authenticated, only_results.method) == (True, "authentication-results")
    only_dkim = verdict(signed(with_results(FAIL)), policy=EITHER_POLICY)
    assert (only_dkim.authenticated, only_dkim.method) == (True, "dkim")
    neither = verdict(with_results(FAIL), policy=EITHER_POLICY)
    assert not neither.authenticated
    assert neither.reason == ("no valid DKIM signature aligned with the From domain (no DKIM signature); the trusted Authentication-Results header shows no dkim or dmarc pass for the From domain")


def test_allowlist_alone_authenticates_members_without_dns() -> None:
    dns = DictDns()
    policy = StaffPolicy(members=("alice@example.com",), authentication=("allowlist",))
    result = verdict(MESSAGE, policy=policy, dns=dns)
    assert (result.member, result.authenticated, result.method) == (True, True, "allowlist")
    assert dns.asked == []
    assert not verdict(MESSAGE, "bob@example.com", policy).authenticated


def test_an_invalid_policy_authenticates_nobody() -> None:
    policy = StaffPolicy(members=("example.com",), authentication=("allowlist", "dkim"))
    result = verdict(signed(MESSAGE), policy=policy)
    assert (result.member, result.authenticated) == (True, False)
    assert result.reason.startswith("[staff] policy is invalid: ")


@pytest.mark.parametrize(
    ("policy", "problem"),
    [
        (StaffPolicy(members=("example.com",)), None),
        (AR_POLICY, None),
        (EITHER_POLICY, None),
        (StaffPolicy(members=("example.com",), authentication=("allowlist",)), None),
        (StaffPolicy(members=("example.com",), authentication=()), "authentication is empty"),
        (StaffPolicy(members=("example.com",), authentication=("spf",)), "unknown method 'spf'"),  # type: ignore[arg-type]
        (StaffPolicy(members=("example.com",), authentication=("dkim", "allowlist")), "allowlist cannot be combined"),
        (StaffPolicy(members=("example.com",), authentication=("authentication-results",)), "trusted_authserv_id is required"),
        (StaffPolicy(members=("example.com",), authentication=("authentication-results",), trusted_authserv_id=""), "trusted_authserv_id is required"),
        (StaffPolicy(members=("example.com",), authentication=("authentication-results",), trusted_authserv_id="mx example"), "single token"),
    ],
)
def test_policy_problem(policy: StaffPolicy, problem: str | None) -> None:
    found = policy_problem(policy)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found and "\n" not in found


# --- real DNS over loopback -----------------------------------------------------------


def test_dns_txt_lookup_against_a_real_server_joins_character_strings() -> None:
    server = TxtDnsServer({"sel._domainkey.example.com": TXT})
    with server as (host, port):
        server.add_txt_strings("split.example.com", b"v=DKIM1; ", b"k=rsa; ", b"p=abc")
        lookup = dns_txt_lookup(f"{host}:{port}", timeout=2)
        assert len(TXT) > 255
        assert lookup(b"sel._domainkey.example.com.") == TXT
        assert lookup(b"split.example.com.", timeout=5) == b"v=DKIM1; k=rsa; p=abc"
        assert lookup(b"unknown._domainkey.example.com.") is None
        server.add_txt("twice._domainkey.example.com", TXT)
        server.add_txt("twice._domainkey.example.com", b"v=DKIM1; k=rsa; p=", replace=False)
        assert lookup(b"twice._domainkey.example.com.") is None
        big = b"v=DKIM1; k=rsa; p=" + base64.b64encode(bytes(600))
        server.add_txt("big._domainkey.example.com", big)
        assert lookup(b"big._domainkey.example.com.") == big
        result = staff_verdict(signed(MESSAGE), "alice@example.com", DKIM_POLICY, lookup)
        assert (result.authenticated, result.method) == (True, "dkim")
        assert server.queries.count("sel._domainkey.example.com.") == 2


def test_dns_txt_lookup_that_times_out_raises_dns_unavailable() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        lookup = dns_txt_lookup(f"127.0.0.1:{silent.getsockname()[1]}", timeout=0.2)
        with pytest.raises(DnsUnavailable):
            lookup(b"sel._domainkey.example.com.")


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ("10.0.0.1", ("10.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("[::1]:53", ("::1", 53)),
        ("[::1]", ("::1", 53)),
        ("::1", ("::1", 53)),
    ],
)
def test_dns_server_address(server: str, expected: tuple[str, int]) -> None:
    assert dns_server_address(server) == expected


@pytest.mark.parametrize("server", ["", "dns.example.com", "10.0.0.1:", "10.0.0.1:0", "10.0.0.1:70000", "[::1", "[::1]x", "300.1.1.1"])
def test_malformed_dns_server_is_a_value_error(server: str) -> None:
    with pytest.raises(ValueError):
        dns_txt_lookup(server)
