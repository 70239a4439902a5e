"""Outlook's winmail.dat (TNEF): its body and files replace it; undecodable, it stays as it is."""

from __future__ import annotations

import base64
import io
import struct
import zipfile
from pathlib import Path

import pytest

from mailintake.parse.message import ParsedMessage, parse_message

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "mail"
TNEF_SIGNATURE = 0x223E9F78
MESSAGE, ATTACHMENT = 1, 2
PT_LONG, PT_STRING8, PT_BINARY = 0x0003, 0x001E, 0x0102
# A header that mail-parser rejects, so that the standard library's walk reads the body.
MAIL_PARSER_REJECTS = b"From: =?utf-8?b?A?= Name <staff@example.com>\r\n"


def tnef_attribute(level: int, name: int, kind: int, data: bytes) -> bytes:
    return struct.pack("<BHHI", level, name, kind, len(data)) + data + struct.pack("<H", sum(data) & 0xFFFF)


def mapi_properties(properties: list[tuple[int, int, bytes]]) -> bytes:
    packed = struct.pack("<I", len(properties))
    for kind, name, value in properties:
        packed += struct.pack("<HH", kind, name)
        packed += value if kind == PT_LONG else struct.pack("<II", 1, len(value)) + value + b"\0" * (-len(value) % 4)
    return packed


def winmail(body: bytes | None = None, html: bytes | None = None, files: tuple[tuple[str, str | None, bytes], ...] = ()) -> bytes:
    """A minimal TNEF stream as Outlook writes it: version, code page, message class, body
    (attBody, or PR_BODY_HTML with PR_INTERNET_CPID in the MAPI properties), attachments."""
    parts = [tnef_attribute(MESSAGE, 0x9006, 0x0008, struct.pack("<I", 0x00010000)), tnef_attribute(MESSAGE, 0x9007, 0x0006, struct.pack("<II", 1252, 0)), tnef_attribute(MESSAGE, 0x8008, 0x0007, b"IPM.Note\0")]
    if body is not None:
        parts.append(tnef_attribute(MESSAGE, 0x800C, 0x0002, body))
    if html is not None:
        parts.append(tnef_attribute(MESSAGE, 0x9003, 0x0006, mapi_properties([(PT_LONG, 0x3FDE, struct.pack("<I", 65001)), (PT_BINARY, 0x1013, html)])))
    for filename, mime_type, content in files:
        properties = [(PT_STRING8, 0x3707, filename.encode("cp1252") + b"\0")] + ([(PT_STRING8, 0x370E, mime_type.encode() + b"\0")] if mime_type else [])
        parts += [
            tnef_attribute(ATTACHMENT, 0x9002, 0x0006, struct.pack("<HIHHI", 1, 0xFFFFFFFF, 0, 0, 0)),
            tnef_attribute(ATTACHMENT, 0x8010, 0x0001, filename[:8].encode("cp1252") + b"\0"),
            tnef_attribute(ATTACHMENT, 0x800F, 0x0006, content),
            tnef_attribute(ATTACHMENT, 0x9005, 0x0006, mapi_properties(properties)),
        ]
    return struct.pack("<IH", TNEF_SIGNATURE, 1) + b"".join(parts)


def outlook_message(tnef: bytes, *, text: str | None = None, filename: str = "winmail.dat", content_type: str = "application/ms-tnef", head: bytes = b"From: Dmitri Volkov <dmitri.volkov@example.com>\r\n") -> bytes:
    text_part = b"" if text is None else b"--b\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" + text.encode() + b"\r\n"
    return (
        head + b"To: security@example.com\r\nSubject: RE: report\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + text_part + b"--b\r\nContent-Type: " + content_type.encode() + b'; name="' + filename.encode() + b'"\r\n'
        b'Content-Disposition: attachment; filename="' + filename.encode() + b'"\r\nContent-Transfer-Encoding: base64\r\n\r\n' + base64.encodebytes(tnef).replace(b"\n", b"\r\n") + b"--b--\r\n"
    )


def files_of(parsed: ParsedMessage) -> list[tuple[str, str, bytes]]:
    return [(item.filename, item.content_type, item.content) for item in parsed.attachments]


@pytest.mark.parametrize("head", [b"From: Dmitri Volkov <dmitri.volkov@example.com>\r\n", MAIL_PARSER_REJECTS], ids=["mail-parser", "stdlib"])
def test_the_tnef_plain_body_is_the_body_of_a_message_without_text(head: bytes) -> None:
    parsed = parse_message(outlook_message(winmail(body=b"We reproduced it on staging.\r\n"), head=head))
    assert parsed.body_text.strip() == "We reproduced it on staging."
    assert not parsed.body_from_html
    assert "TnefNotDecoded" not in parsed.defects


def test_the_tnef_html_body_becomes_text_with_inscriptis() -> None:
    parsed = parse_message(outlook_message(winmail(html="<html><body><p>Gr\u00fc\u00dfe: <b>fixed</b> in 4.2.2</p><style>p {color: red}</style></body></html>".encode())))
    assert parsed.body_text.strip() == "Gr\u00fc\u00dfe: fixed in 4.2.2"
    assert parsed.body_from_html


def test_the_message_text_wins_over_the_tnef_body() -> None:
    parsed = parse_message(outlook_message(winmail(body=b"from the TNEF"), text="from the text part"))
    assert parsed.body_text.strip() == "from the text part"
    assert "TNEF" not in parsed.body_text


@pytest.mark.parametrize("head", [b"From: Dmitri Volkov <dmitri.volkov@example.com>\r\n", MAIL_PARSER_REJECTS], ids=["mail-parser", "stdlib"])
def test_the_files_inside_replace_winmail_dat(head: bytes) -> None:
    files = (("repro-steps.txt", "text/plain", b"1. log in\r\n"), ("screenshot.png", None, b"\x89PNG\r\n\x1a\n"))
    parsed = parse_message(outlook_message(winmail(body=b"see attached", files=files), head=head))
    assert files_of(parsed) == [("repro-steps.txt", "text/plain", b"1. log in\r\n"), ("screenshot.png", "application/octet-stream", b"\x89PNG\r\n\x1a\n")]


def test_file_names_inside_go_through_safe_filename() -> None:
    parsed = parse_message(outlook_message(winmail(files=(("..\\..\\Windows\\evil\x07.bat", None, b"x"),))))
    assert [item.filename for item in parsed.attachments] == ["evil .bat"]


def test_an_archive_inside_is_a_file_never_unpacked() -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("inner.txt", "inner")
    parsed = parse_message(outlook_message(winmail(files=(("poc.zip", "application/zip", archive.getvalue()),))))
    assert files_of(parsed) == [("poc.zip", "application/zip", archive.getvalue())]


@pytest.mark.parametrize(("filename", "content_type"), [("WINMAIL.DAT", "application/octet-stream"), ("attachment.bin", "application/ms-tnef"), ("x", "application/vnd.ms-tnef")])
def test_tnef_is_recognised_by_content_type_or_by_name(filename: str, content_type: str) -> None:
    parsed = parse_message(outlook_message(winmail(body=b"body", files=(("notes.txt", "text/plain", b"n"),)), filename=filename, content_type=content_type))
    assert files_of(parsed) == [("notes.txt", "text/plain", b"n")]


@pytest.mark.parametrize("head", [b"From: Dmitri Volkov <dmitri.volkov@example.com>\r\n", MAIL_PARSER_REJECTS], ids=["mail-parser", "stdlib"])
@pytest.mark.parametrize("tnef", [b"not a TNEF stream at all", winmail() + tnef_attribute(MESSAGE, 0x8005, 0x0003, b"\0" * 4), b""], ids=["garbage", "short-date", "empty"])
def test_an_undecodable_winmail_dat_stays_an_attachment_with_a_defect(head: bytes, tnef: bytes) -> None:
    parsed = parse_message(outlook_message(tnef, text="the text part", head=head))
    assert files_of(parsed) == [("winmail.dat", "application/ms-tnef", tnef)]
    assert "TnefNotDecoded" in parsed.defects
    assert parsed.body_text.strip() == "the text part"


def test_a_winmail_dat_of_many_tiny_objects_is_not_decoded_in_quadratic_time() -> None:
    tnef = winmail() + tnef_attribute(MESSAGE, 0x8004, 0x0001, b"x\0") * 400_000
    parsed = parse_message(outlook_message(tnef))
    assert [item.filename for item in parsed.attachments] == ["winmail.dat"]
    assert "TnefNotDecoded" in parsed.defects


def test_the_corrupt_winmail_dat_of_the_reporter_corpus_is_kept() -> None:
    parsed = parse_message((FIXTURES / "winmail.eml").read_bytes())
    assert [item.filename for item in parsed.attachments] == ["winmail.dat"]
    assert "TnefNotDecoded" in parsed.defects
    assert "path traversal vulnerability" in parsed.body_text


def test_the_outlook_reply_fixture_carries_its_body_and_file_in_winmail_dat() -> None:
    parsed = parse_message((FIXTURES / "replies" / "outlook_winmail_dat.eml").read_bytes())
    assert parsed.body_from_html
    assert "we reproduced the issue on staging" in parsed.body_text
    assert [(item.filename, item.content_type) for item in parsed.attachments] == [("repro-steps.txt", "text/plain")]
    assert parsed.defects == ()
