"""The sandbox over HTTPS: HSTS is sent, and the knob that removes it works."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import SandboxProcess


@pytest.fixture(scope="module")
def tls_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    folder: Path = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    proc = SandboxProcess("--seed", "5", "--tls-cert", str(cert), "--tls-key", str(key),
                          scheme="https", verify=ssl.create_default_context(cafile=str(cert)))
    yield proc
    proc.stop()


def test_hsts_is_sent_over_https_until_the_knob_turns_it_off(tls_sandbox: SandboxProcess) -> None:
    headers = {"X-API-Key": "sandbox-api-key"}
    with httpx.Client(base_url=tls_sandbox.url, verify=tls_sandbox.verify, headers=headers) as api:
        assert api.get("/api/v1/me").headers["Strict-Transport-Security"] == "max-age=31536000"
        tls_sandbox.faults(hsts=False)
        assert "Strict-Transport-Security" not in api.get("/api/v1/me").headers
