"""Pure helpers of the mailer: attachments passed on as files, envelope addresses."""

from __future__ import annotations

import pytest

from mailintake.outbound.mailer import ascii_address
from mailintake.reports.attachments import mailable_attachment


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        (("poc.py", "text/x-python", b"x"), ("poc.py", "text/x-python", b"x")),
        (("fwd.eml", "message/rfc822", b"x"), ("fwd.eml", "application/octet-stream", b"x")),
        (("Original", "message/rfc822", b"x"), ("Original.eml", "application/octet-stream", b"x")),
        (("parts", "multipart/mixed", b"x"), ("parts", "application/octet-stream", b"x")),
        (("odd", "text/plain; x=\r\nBcc: y", b"x"), ("odd", "application/octet-stream", b"x")),
        (("pct", "application/x%41", b"x"), ("pct", "application/octet-stream", b"x")),
    ],
)
def test_attachments_go_to_staff_as_files(given: tuple[str, str, bytes], sent: tuple[str, str, bytes]) -> None:
    assert mailable_attachment(*given) == sent


@pytest.mark.parametrize(("address", "envelope"), [("R@Example.ORG", "r@example.org"), ("r@bücher.example", "r@xn--bcher-kva.example")])
def test_envelope_addresses_are_lower_case_with_punycode_domains(address: str, envelope: str) -> None:
    assert ascii_address(address) == envelope
