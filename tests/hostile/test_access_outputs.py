"""Access probes never show personal data: every synthetic value their records held is absent
from everything the exporter logs, exports and reports, even while every protection is broken
and the CRM hands those values to the probes.

The values are learned the way an outsider would, not from the probes: a webhook receiver of
the CRM's own change events collects every record an access check created (with the sandbox's
synthetic tax ids, card numbers, national ids and IBANs, which the exposure knob puts in the
events too). Then the exporter's log, ``/metrics``, the landing page and ``/probe?debug=true`` of
every access module are searched for each value, in the forms an output could carry it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.helpers import ExporterProcess, SandboxProcess, write_config
from tests.integration.test_access_native import SECRETS, access_config, wait_runs

ACCESS_CHECKS = ("tenant_isolation", "restricted_role", "personal_data", "token_revocation",
                 "revoked_token", "login_lockout")
PERSONAL = ("email", "phone", "last_name", "tax_id", "card_number", "national_id", "iban")


class Events(BaseHTTPRequestHandler):
    records: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.records.append(json.loads(body)["data"])
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def events() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Events)
    Events.records = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/events"
    server.shutdown()
    server.server_close()


def forms(value: str) -> set[str]:
    """A value as raw text, JSON-escaped, URL-quoted, HTML-escaped: how an output may carry it."""
    import html

    return {value, json.dumps(value)[1:-1], quote(value, safe=""), quote(value), html.escape(value)}


def test_no_synthetic_personal_value_appears_in_any_output(events: str, tmp_path: Path) -> None:
    crm = SandboxProcess("--seed", "20", "--sync-lag", "100ms")
    exporter: ExporterProcess | None = None
    try:
        hook = httpx.post(crm.url + "/api/v1/webhooks", headers={"Authorization": f"Bearer {crm.token()}"},
                          json={"url": events, "events": ["contact.created"]})
        assert hook.status_code == 201, hook.text
        # every protection broken at once: the probes receive and report the most they ever can
        crm.faults(expose_sensitive=True, widen_role=True, ignore_revocation=True,
                   unfiltered_reads=["get", "list", "search", "export"])
        crm.admin.post("/admin/access/revoke", json={"token": "sandbox-integration-token"})
        path = write_config(tmp_path, access_config(crm.url))
        exporter = ExporterProcess(path, env=SECRETS)
        wait_runs(exporter, set(ACCESS_CHECKS), 3)
        outputs = {"/metrics": httpx.get(exporter.url + "/metrics").text,
                   "/": httpx.get(exporter.url + "/").text}
        for module in ACCESS_CHECKS:
            probe = httpx.get(exporter.url + "/probe", params={"target": "sandbox", "module": module,
                                                               "debug": "true"}, timeout=30)
            outputs[f"/probe {module}"] = probe.text
        exporter_log = exporter.stop()
        exporter = None
        outputs["exporter log"] = exporter_log
    finally:
        if exporter is not None:
            exporter.stop()
        crm.stop()

    deadline = time.monotonic() + 10
    while not any(r.get("card_number") for r in Events.records) and time.monotonic() < deadline:
        time.sleep(0.1)
    ours = [r for r in Events.records if any("crmpulse-sandbox-access-" in t for t in r.get("tags") or [])]
    values = {str(r[field]) for r in ours for field in PERSONAL if r.get(field)}
    # the probes' own records, with what the CRM added to them, were seen and failed the checks
    assert len(ours) >= 9, len(ours)
    assert {f for r in ours for f in PERSONAL if r.get(f)} == set(PERSONAL)
    assert "isolation broken" in outputs["exporter log"] and "personal data exposed" in outputs["/"]
    assert "card_number at $.card_number" in outputs["/probe personal_data"]
    leaks = sorted({f"{where}: {field_of(ours, value)}" for where, text in outputs.items()
                    for value in values for form in forms(value) if form in text})
    assert leaks == []
    for secret in SECRETS.values():  # and, as everywhere, no secret
        assert all(secret not in text for text in outputs.values()), secret


def field_of(records: list[dict[str, Any]], value: str) -> str:
    return next(f for r in records for f in PERSONAL if str(r.get(f)) == value)
