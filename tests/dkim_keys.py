"""The committed TEST-ONLY DKIM keys (tests/fixtures/dkim) and their DNS TXT values."""

from __future__ import annotations

from pathlib import Path

KEYS = Path(__file__).resolve().parent / "fixtures" / "dkim"
PRIVATE_KEY = (KEYS / "test-only-rsa2048.key").read_bytes()
WEAK_PRIVATE_KEY = (KEYS / "test-only-rsa768-too-weak.key").read_bytes()


def dkim_txt_record(public_key_file: str = "test-only-rsa2048.pub") -> bytes:
    """The DNS TXT value for a PEM SubjectPublicKeyInfo: its base64 DER in p=."""
    lines = (KEYS / public_key_file).read_bytes().splitlines()
    return b"v=DKIM1; k=rsa; p=" + b"".join(line.strip() for line in lines if not line.startswith(b"-----"))
