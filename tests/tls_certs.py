"""A throw-away self-signed certificate for the test listener, made with openssl at test time
(no private key is kept in the repository)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def self_signed_certificate(directory: Path, common_name: str = "mailintake.localhost") -> tuple[Path, Path]:
    """(certificate, key) in PEM, valid for 127.0.0.1 and `common_name`."""
    if shutil.which("openssl") is None:
        # A newcomer's `make test` passes without it; CI must have it (.ci/run installs it).
        reason = "openssl is needed to make the test certificate (Debian package openssl)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    cert, key = directory / "listener-cert.pem", directory / "listener-key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            f"/CN={common_name}",
            "-addext",
            f"subjectAltName=IP:127.0.0.1,DNS:{common_name}",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key
