"""Hypothesis strategies for hostile mail as raw bytes.

The messages are assembled by hand rather than with the email package, which would
normalise away exactly what makes them hostile: bare CR/LF and NUL in headers, raw 8-bit
header bytes, broken folding, encoded words hiding control characters, boundaries that
are prefixes of each other, missing closing delimiters, broken base64 and
quoted-printable, charsets that do not exist or do not match the bytes.

Messages carry CANARY in their From display names, subjects, texts and attachment names
(most in several), so a test can check none of it reaches the daemon's log.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from hypothesis import strategies as st

CRLF = b"\r\n"
CANARY = b"QZXCANARY"
ENVELOPE_SENDER = "researcher@example.org"
INJECTED_RECIPIENT = "victim@evil.test"

# Longest run of bytes between CRLFs that a leaf body may have; the listener accepts
# lines up to 64 KiB, and an over-long line is not what these strategies are about.
MAX_LINE = 4000
# Bytes a container part costs besides its children (headers and delimiter lines).
PART_OVERHEAD = 200
BARE_LF_DOT = re.compile(rb"(?<!\r)\n\.")


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_depth: int
    max_children: int
    max_leaf_bytes: int
    max_flat_parts: int


@dataclass(frozen=True)
class HostileMail:
    raw: bytes
    parts: int


@dataclass(frozen=True)
class Entity:
    """A MIME entity: its header fields (already folded, without the final CRLF) and body."""

    headers: tuple[bytes, ...]
    body: bytes
    parts: int


CONTROL_PIECES = (b"\r\n", b"\r", b"\n", b"\x00", b"\x1b[2J", b"\x1b]0;x\x07", b"\x7f", b"\x0c", b"\x08", b"\t")
INJECTIONS = (
    f"\r\nBcc: {INJECTED_RECIPIENT}".encode(),
    f"\r\nTo: {INJECTED_RECIPIENT}\r\n\r\nbody".encode(),
    b"\r\nAuthentication-Results: mx.example.com; dkim=pass header.d=example.com",
    b"\rX-Loop: security@example.com",
    b"\nAuto-Submitted: no",
)
WORDS = (b"report", b"XSS", b"RCE", b"login", b"{{7*7}}", b"<script>alert(1)</script>", b"#status resolved", b"[SEC-2026-0001]", b"Suggested severity: high", b"credit me as Eve")
UNICODE_ALPHABET = st.characters(codec="utf-8", exclude_categories=("Cs",))
CHARSETS = ("utf-8", "UTF-8", "iso-8859-1", "latin-1", "us-ascii", "utf-7", "utf-16", "windows-1252", "koi8-r", "x-bogus-charset", "", "utf-8*en", '"utf-8"', "unicode-1-1-utf-7")
REAL_CODECS = ("utf-8", "latin-1", "utf-7", "utf-16", "cp1252", "koi8-r")
ADDRESSES = (
    ENVELOPE_SENDER,
    "Researcher@Example.ORG",
    "other@example.net",
    "security@example.com",
    "mailer-daemon@example.net",
    "x@evil.test",
    "a@example.com@evil.test",
    '"staff@example.com"@evil.test',
    "security+r1-0000000000000000@example.com",
    "security+s1-0000000000000000@example.com",
    "",
    "no-at-sign",
    "<>",
)


def hostile_mail(limits: Limits) -> st.SearchStrategy[HostileMail]:
    return st.one_of(message_tree(limits), flat_multipart(limits)).filter(lambda mail: len(mail.raw) <= limits.max_bytes)


@st.composite
def message_tree(draw: st.DrawFn, limits: Limits) -> HostileMail:
    entity = draw(entity_of(limits, depth=0, budget=limits.max_bytes // 2, enclosing=()))
    return HostileMail(draw(top_level_message(entity)), entity.parts)


@st.composite
def flat_multipart(draw: st.DrawFn, limits: Limits) -> HostileMail:
    """One multipart with as many tiny parts as fit: the quadratic case of the parser."""
    boundary = draw(st.sampled_from((b"b", b"=_", b"--", b"x" * 70)))
    headers = draw(st.sampled_from((b"", b"Content-Type: text/plain\r\n", b"Content-Type: application/octet-stream\r\n", b'Content-Disposition: attachment; filename="a.bin"\r\n')))
    part = b"--" + boundary + CRLF + headers + CRLF + b"x" + CRLF
    count = draw(st.integers(1, min(limits.max_flat_parts, limits.max_bytes // 2 // len(part))))
    closing = draw(st.sampled_from((b"--" + boundary + b"--" + CRLF, b"")))
    entity = Entity((b'Content-Type: multipart/mixed; boundary="' + boundary + b'"',), part * count + closing, count + 1)
    return HostileMail(draw(top_level_message(entity)), entity.parts)


@st.composite
def top_level_message(draw: st.DrawFn, entity: Entity) -> bytes:
    fields = draw(top_level_fields()) + list(entity.headers)
    fields = draw(st.permutations(fields)) if draw(st.booleans()) else fields
    head = CRLF.join(fields)
    if draw(st.integers(0, 9)) == 9:  # rare; 9 rather than 0, so that shrinking drops it
        head = draw(st.sampled_from((b" leading continuation line", b"not a header line", b"\x00"))) + CRLF + head
    separator = draw(st.sampled_from((CRLF + CRLF, CRLF + CRLF, CRLF + b" " + CRLF + CRLF, CRLF + b"\n")))
    return transportable(head + separator + entity.body)


def transportable(raw: bytes) -> bytes:
    """The bytes as the listener will store them, so a test can compare: smtplib adds a final
    CRLF when the data lacks one, and dot-stuffs a line start after a bare LF, which the
    listener (splitting lines only at CRLF, as it must) rightly does not unstuff."""
    raw = BARE_LF_DOT.sub(b"\n,", raw)
    return raw if raw.endswith(CRLF) else raw + CRLF


@st.composite
def top_level_fields(draw: st.DrawFn) -> list[bytes]:
    fields: list[bytes] = []
    for _ in range(draw(st.sampled_from((1, 1, 1, 0, 2)))):
        fields.append(draw(field_of(b"From", mailbox_list(with_canary=True))))
    for name in (b"To", b"Cc"):
        if draw(st.booleans()):
            fields.append(draw(field_of(name, mailbox_list(with_canary=False))))
    for _ in range(draw(st.sampled_from((1, 1, 0, 2)))):
        fields.append(draw(field_of(b"Subject", subject())))
    fields += draw(message_id_fields())
    if draw(st.booleans()):
        fields.append(draw(field_of(b"Date", date_value())))
    if draw(st.integers(0, 3)):
        fields.append(b"MIME-Version: " + draw(st.sampled_from((b"1.0", b"1.0 (produced by x)", b"2.0", b"", b"1.0\x00"))))
    fields += draw(st.lists(extra_field(), max_size=4))
    return fields


def message_id_fields() -> st.SearchStrategy[list[bytes]]:
    one = st.one_of(
        st.uuids().map(lambda value: b"<" + value.hex.encode() + b"@example.org>"),
        st.sampled_from((b"<same@example.org>", b"<>", b"no-brackets@example.org", b"< spaced @ example.org >", b"<\x00@example.org>", b"<a@b> <c@d>", b"<=?utf-8?q?x=0D=0Ay?=@example.org>", b"<\xc3\xa9t\xc3\xa9@example.org>")),
        st.integers(1, 1200).map(lambda length: b"<" + b"m" * length + b"@example.org>"),
    )
    return st.lists(one.map(lambda value: b"Message-ID: " + value), max_size=2)


def date_value() -> st.SearchStrategy[bytes]:
    return st.sampled_from((b"Mon, 23 Nov 2026 10:00:00 +0100", b"Mon, 23 Nov 2026 10:00:00", b"31 Feb 2026 25:61:61 +9999", b"yesterday", b"", b"Thu, 01 Jan 1970 00:00:00 -0000", b"Fri, 31 Dec 9999 23:59:59 -1200"))


@st.composite
def extra_field(draw: st.DrawFn) -> bytes:
    name = draw(
        st.one_of(
            st.sampled_from((b"X-Mailer", b"Received", b"References", b"In-Reply-To", b"Content-Language", b"Auto-Submitted", b"List-Id", b"Reply-To", b"Authentication-Results", b"Subject ", b"X-\xff\xfe")),
            st.binary(min_size=1, max_size=20).map(lambda value: bytes(byte for byte in value if 33 <= byte <= 126 and byte != ord(":")) or b"X"),
        )
    )
    return draw(field_of(name, st.one_of(hostile_text(120), references_value(), mailbox_list(with_canary=False))))


def references_value() -> st.SearchStrategy[bytes]:
    ids = st.one_of(st.integers(1, 6).map(lambda number: b"<r%d@example.org>" % number), st.sampled_from((b"[SEC-2026-0001]", b"<broken")))
    return st.lists(ids, max_size=300).map(b" ".join)


@st.composite
def field_of(draw: st.DrawFn, name: bytes, values: st.SearchStrategy[bytes]) -> bytes:
    return draw(folded(name + b": " + draw(values)))


@st.composite
def folded(draw: st.DrawFn, line: bytes) -> bytes:
    """A header field folded the ways senders (and attackers) fold them."""
    style = draw(st.sampled_from(("none", "spaces", "tabs", "hard", "empty-continuation", "long")))
    if style == "spaces":
        return line.replace(b" ", CRLF + b" ")
    if style == "tabs":
        return line.replace(b" ", CRLF + b"\t")
    if style == "hard":
        width = draw(st.integers(1, 78))
        return (CRLF + b"\t").join(line[index : index + width] for index in range(0, len(line), width))
    if style == "empty-continuation":
        return line + CRLF + b" " + CRLF + draw(st.sampled_from((b" tail", b"\t", b" ")))
    if style == "long":
        return line + b" " + b"z" * draw(st.integers(900, 3000))
    return line


@st.composite
def subject(draw: st.DrawFn) -> bytes:
    pieces = draw(st.lists(st.one_of(hostile_text(80), encoded_word(), st.sampled_from((b"Re: [SEC-2026-0001]", b"[SEC-2026-0002] more", b"Fwd:", b";" * 300))), max_size=6))
    position = draw(st.integers(0, len(pieces)))
    return b" ".join(pieces[:position] + [CANARY] + pieces[position:])


@st.composite
def mailbox_list(draw: st.DrawFn, with_canary: bool) -> bytes:
    count = draw(st.sampled_from((1, 1, 1, 2, 0, 50)))
    boxes = [draw(mailbox(with_canary and index == 0)) for index in range(count)]
    return draw(st.sampled_from((b", ", b",", b";", b",,"))).join(boxes) or draw(st.sampled_from((b"", b"undisclosed-recipients:;")))


@st.composite
def mailbox(draw: st.DrawFn, with_canary: bool) -> bytes:
    address = draw(st.sampled_from(ADDRESSES)).encode()
    name = draw(display_name())
    if with_canary:
        name = name + b" " + CANARY
    shape = draw(st.sampled_from(("angle", "angle", "bare", "quoted-staff", "comment")))
    if shape == "bare" and not with_canary:
        return address
    if shape == "quoted-staff":
        return b'"staff@example.com ' + name.replace(b'"', b"") + b'" <' + address + b">"
    if shape == "comment":
        return address + b" (" + name.replace(b"(", b"").replace(b")", b"") + b")"
    return name + b" <" + address + b">"


def display_name() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.sampled_from((b"A Researcher", b'"Quoted \\"Name\\""', b"", b"\xc3\xa9mile \xff\xfe", b"Null\x00Byte", b"staff@example.com")),
        encoded_word(),
        st.lists(encoded_word(), min_size=2, max_size=4).map(b" ".join),
        hostile_text(40),
    )


@st.composite
def encoded_word(draw: st.DrawFn) -> bytes:
    """An RFC 2047 encoded word, often hiding CR, LF, NUL or ESC, sometimes malformed."""
    payload = b"".join(draw(st.lists(st.one_of(st.sampled_from(CONTROL_PIECES + INJECTIONS + WORDS), st.text(UNICODE_ALPHABET, max_size=12).map(str.encode)), min_size=1, max_size=5)))
    charset = draw(st.sampled_from(("utf-8", "UTF-8", "iso-8859-1", "us-ascii", "utf-7", "x-bogus", "", "utf-8*en"))).encode()
    kind = draw(st.sampled_from(("q", "Q", "b", "B", "x", "broken-b", "unterminated")))
    if kind in ("q", "Q"):
        return b"=?" + charset + b"?" + kind.encode() + b"?" + q_encoded(payload) + b"?="
    if kind in ("b", "B"):
        return b"=?" + charset + b"?" + kind.encode() + b"?" + base64.b64encode(payload) + b"?="
    if kind == "broken-b":
        return b"=?" + charset + b"?b?" + base64.b64encode(payload)[:-1] + b"!*?="
    if kind == "unterminated":
        return b"=?" + charset + b"?q?" + q_encoded(payload)
    return b"=?" + charset + b"?x?" + q_encoded(payload) + b"?="


def q_encoded(payload: bytes) -> bytes:
    safe = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!*+-/"
    return b"".join(bytes([byte]) if byte in safe else b"_" if byte == 0x20 else b"=%02X" % byte for byte in payload)


def hostile_text(max_pieces: int) -> st.SearchStrategy[bytes]:
    """Header text: words, raw 8-bit bytes, NUL, bare CR/LF, escape sequences."""
    piece = st.one_of(
        st.sampled_from(WORDS),
        st.sampled_from(CONTROL_PIECES[1:]),
        st.text(UNICODE_ALPHABET, max_size=20).map(lambda text: text.encode("utf-8")),
        st.binary(max_size=8).map(lambda data: data.replace(b"\r\n", b"")),
    )
    return st.lists(piece, max_size=max_pieces).map(b" ".join)


@st.composite
def entity_of(draw: st.DrawFn, limits: Limits, depth: int, budget: int, enclosing: tuple[bytes, ...]) -> Entity:
    choices = ["leaf"]
    if depth < limits.max_depth and budget > 4 * PART_OVERHEAD:
        choices += ["multipart", "multipart", "rfc822"]
    kind = draw(st.sampled_from(choices))
    if kind == "multipart":
        return draw(multipart(limits, depth, budget, enclosing))
    if kind == "rfc822":
        return draw(rfc822(limits, depth, budget, enclosing))
    return draw(leaf(min(budget, limits.max_leaf_bytes)))


@st.composite
def rfc822(draw: st.DrawFn, limits: Limits, depth: int, budget: int, enclosing: tuple[bytes, ...]) -> Entity:
    inner = draw(entity_of(limits, depth + 1, budget - PART_OVERHEAD, enclosing))
    fields = draw(st.lists(st.one_of(field_of(b"From", mailbox_list(with_canary=False)), field_of(b"Subject", subject()), message_id_fields().map(lambda values: values[0] if values else b"X-No-Id: 1")), max_size=3))
    message = CRLF.join(fields + list(inner.headers)) + CRLF + CRLF + inner.body
    content_type = draw(st.sampled_from((b"message/rfc822", b"message/rfc822", b"message/global", b"message/partial; id=x; number=1")))
    return Entity((b"Content-Type: " + content_type,), message, inner.parts + 1)


@st.composite
def multipart(draw: st.DrawFn, limits: Limits, depth: int, budget: int, enclosing: tuple[bytes, ...]) -> Entity:
    subtype = draw(st.sampled_from((b"mixed", b"alternative", b"related", b"digest", b"signed", b"report", b"x-unknown", b"MIXED")))
    boundary = draw(boundary_near(enclosing))
    count = draw(st.integers(0, limits.max_children))
    share = max((budget - PART_OVERHEAD) // max(count, 1), 0)
    children = [draw(entity_of(limits, depth + 1, share, enclosing + (boundary,))) for _ in range(count)]
    body = draw(preamble())
    for child in children:
        body += b"--" + boundary + draw(boundary_padding()) + CRLF
        headers = list(child.headers)
        if subtype == b"digest" and headers and headers[0] == b"Content-Type: message/rfc822" and draw(st.booleans()):
            headers = headers[1:]  # a digest's parts are message/rfc822 by default
        body += CRLF.join(headers) + CRLF + CRLF + child.body + CRLF
    body += draw(closing_delimiter(boundary))
    parameter = draw(boundary_parameter(boundary))
    return Entity((b"Content-Type: multipart/" + subtype + parameter,), body, 1 + sum(child.parts for child in children))


def boundary_near(enclosing: tuple[bytes, ...]) -> st.SearchStrategy[bytes]:
    """A boundary, often a prefix or an extension of an enclosing one."""
    own = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'()+_,-./:=? ", min_size=1, max_size=70).map(lambda text: text.rstrip().encode() or b"b")
    if not enclosing:
        return own
    related = st.sampled_from(enclosing).flatmap(lambda parent: st.one_of(st.just(parent + b"-inner"), st.just(parent[: max(len(parent) // 2, 1)]), st.just(parent + b"--"), st.just(parent)))
    return st.one_of(own, related, related)


def boundary_padding() -> st.SearchStrategy[bytes]:
    return st.sampled_from((b"", b"", b" ", b"\t", b" \t ", b"  junk after boundary"))


def closing_delimiter(boundary: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.just(b"--" + boundary + b"--" + CRLF),
        boundary_padding().map(lambda padding: b"--" + boundary + b"--" + padding + CRLF + b"epilogue" + CRLF),
        st.just(b""),
        st.just(b"--" + boundary + b"-" + CRLF),
    )


def boundary_parameter(boundary: bytes) -> st.SearchStrategy[bytes]:
    quoted = b'; boundary="' + boundary + b'"'
    return st.sampled_from((quoted, quoted, b"; boundary=" + boundary, b';;;;;;;; boundary="' + boundary + b'"', b'; BOUNDARY="' + boundary + b'"; boundary="other"', b"", b'; boundary=""', quoted + b"; charset=x-bogus"))


def preamble() -> st.SearchStrategy[bytes]:
    return st.sampled_from((b"", b"This is a multi-part message in MIME format." + CRLF, b"--" + CRLF, b"\x00\xff" + CRLF))


@st.composite
def leaf(draw: st.DrawFn, budget: int) -> Entity:
    content_type = draw(st.sampled_from((b"text/plain", b"text/plain", b"text/html", b"application/octet-stream", b"image/png", b"application/x-unknown", b"text", b"/", b"application/ms-tnef", b"multipart/mixed", b"TEXT/PLAIN")))
    charset = draw(st.sampled_from(CHARSETS)).encode()
    encoding = draw(st.sampled_from(("7bit", "8bit", "binary", "base64", "base64", "broken-base64", "quoted-printable", "bad-quoted-printable", "x-uuencode", "gzip", "missing")))
    content = draw(leaf_content(max(budget // 2, 16)))
    headers = [b"Content-Type: " + content_type + draw(st.sampled_from((b"; charset=" + charset, b'; charset="' + charset + b'"', b"", b";;;;;;;;;;")))]
    if encoding != "missing":
        headers.append(b"Content-Transfer-Encoding: " + transfer_encoding_name(encoding))
    headers += draw(disposition())
    return Entity(tuple(headers), encoded_body(content, encoding, draw(st.integers(0, 3))), 1)


@st.composite
def leaf_content(draw: st.DrawFn, budget: int) -> bytes:
    text = draw(st.text(UNICODE_ALPHABET, max_size=200))
    codec = draw(st.sampled_from(REAL_CODECS))
    pieces = [
        text.encode(codec, "replace"),
        CANARY,
        b" ".join(draw(st.lists(st.sampled_from(WORDS + CONTROL_PIECES), max_size=20))),
        draw(st.binary(max_size=200)),
    ]
    content = b"\r\n".join(draw(st.permutations(pieces)))
    filler = draw(st.integers(0, max(budget - len(content), 0)))
    content += (b"\r\n" + b"A line of report text. " * 3) * (filler // 72)
    return wrapped(content[: max(budget, len(CANARY) + 2)] if len(content) > budget else content)


def wrapped(content: bytes) -> bytes:
    """No run between CRLFs longer than MAX_LINE."""
    lines = []
    for line in content.split(CRLF):
        lines += [line[index : index + MAX_LINE] for index in range(0, len(line), MAX_LINE)] or [b""]
    return CRLF.join(lines)


def transfer_encoding_name(encoding: str) -> bytes:
    return {"broken-base64": b"base64", "bad-quoted-printable": b"quoted-printable", "base64": b"BASE64"}.get(encoding, encoding.encode())


def encoded_body(content: bytes, encoding: str, variant: int) -> bytes:
    if encoding == "base64":
        return wrapped_base64(base64.b64encode(content))
    if encoding == "broken-base64":
        broken = (base64.b64encode(content)[:-3], b"!!not base64!!" + base64.b64encode(content), base64.b64encode(content) + b"====", base64.b64encode(content).replace(b"A", b"\x00"))[variant]
        return wrapped_base64(broken)
    if encoding == "quoted-printable":
        return binascii.b2a_qp(content, istext=False).replace(b"\n", CRLF)
    if encoding == "bad-quoted-printable":
        suffix = (b"=ZZ=4", b"=\r\n=\r\n=", b"=0D=0ABcc: " + INJECTED_RECIPIENT.encode() + b"=", b"=\xff=G1")[variant]
        return binascii.b2a_qp(content, istext=False).replace(b"\n", CRLF) + suffix
    return content


def wrapped_base64(data: bytes) -> bytes:
    return CRLF.join(data[index : index + 76] for index in range(0, len(data), 76))


def disposition() -> st.SearchStrategy[list[bytes]]:
    names = st.sampled_from(
        (
            b'"report ' + CANARY + b'.txt"',
            b'"../../etc/passwd ' + CANARY + b'"',
            b'"=?utf-8?q?evil=0D=0Aname_' + CANARY + b'.exe?="',
            b'"\x00nul ' + CANARY + b'.bin"',
            b"*=utf-8''%E2%80%AE" + CANARY + b"%0D%0Agpj.exe",
            b'"\xc3\xa9t\xc3\xa9 ' + CANARY + b'.pdf"',
            b'"winmail.dat"',
        )
    )
    value = st.tuples(st.sampled_from((b"attachment", b"inline", b"ATTACHMENT", b"form-data")), names).map(lambda pair: b"Content-Disposition: " + pair[0] + b"; filename" + (pair[1] if pair[1].startswith(b"*") else b"=" + pair[1]))
    return st.lists(value, max_size=1)
