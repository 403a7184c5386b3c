"""Quota figures a hostile CRM sends: refused, never exported, never a crash.

A CRM on loopback answers with whatever quota headers (and limits body) the test sets;
the probes' own async client reads them into a QuotaBook, and the exporter's collector
renders them. Negative, NaN, infinite, huge, non-ASCII or garbage figures and zero
limits leave no series (or keep the last good reading); an implausible reset time is
dropped and the rest of the reading kept.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from crmpulse import AsyncClient, load_config
from crmpulse.probes.quota import QuotaCollector
from tests.helpers import parse_metrics, write_config


class QuotaCRM:
    """Answers every request with 200, the headers and body the test set last."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.body: Any = {}
        crm = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                body = json.dumps(crm.body).encode() if not isinstance(crm.body, bytes) else crm.body
                self.send_response(200)
                for name, value in crm.headers.items():  # UTF-8 on the wire, as a CRM might send
                    self.send_header(name, value.encode().decode("latin-1"))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


PROFILE = """
name: quota-hostile
quota:
  - name: calls
    window: 24h
    used: header:X-Used
    limit: header:X-Limit
    resets_at: header:X-Reset
  - name: limits_doc
    window: 1h
    operation: limits
    used: $.used
    limit: $.max
operations:
  list_accounts: {path: /accounts, expect: [200]}
  limits: {path: /limits, expect: [200]}
""" + "".join(f"  {name}: {{path: /{name}}}\n" for name in (
    "create_contact", "create_deal", "delete_contact", "get_contact", "list_contacts", "log_activity",
    "search_contacts", "update_contact"))


@pytest.fixture(scope="module")
def crm() -> Iterator[QuotaCRM]:
    server = QuotaCRM()
    yield server
    server.close()


@pytest.fixture
def config(tmp_path: Path, crm: QuotaCRM) -> Path:
    (tmp_path / "hostile.yaml").write_text(PROFILE)
    return write_config(tmp_path, f"""
        target: {{name: hostile, base_url: "{crm.url}", timeout: 2s}}
        profile: hostile.yaml
        """)


def scrape(config: Path, calls: list[tuple[str, dict[str, str], Any]],
           crm: QuotaCRM) -> tuple[dict[tuple[str, frozenset[tuple[str, str]]], float], int]:
    """Run ``calls`` (operation, headers, body) through the probes' client; what /metrics shows."""
    loaded = load_config(config)

    async def run() -> Any:
        async with AsyncClient(loaded) as client:
            for operation, headers, body in calls:
                crm.headers, crm.body = headers, body
                assert (await client.call(operation)).ok
            return client.session.quota

    book = asyncio.run(run())
    registry = CollectorRegistry()
    registry.register(QuotaCollector(lambda: ("hostile", book)))
    metrics = {k: v for k, v in parse_metrics(generate_latest(registry).decode()).items()
               if k[0].startswith("crmpulse_api_quota_") and "observed" not in k[0]}
    return metrics, book.refused


def series(name: str, quota: str, window: str, value: float) -> tuple[tuple[str, frozenset[tuple[str, str]]],
                                                                      float]:
    return (name, frozenset({"target": "hostile", "quota": quota, "window": window}.items())), value


GOOD = {"X-Used": "12", "X-Limit": "100"}
GOOD_SERIES = dict([series("crmpulse_api_quota_used", "calls", "1d", 12.0),
                    series("crmpulse_api_quota_limit", "calls", "1d", 100.0),
                    series("crmpulse_api_quota_window_seconds", "calls", "1d", 86400.0)])

# headers -> (series exported, readings refused); refused counts figures that parse as
# numbers but cannot be a quota, or a reset time that cannot be one
HEADERS: dict[str, tuple[dict[str, str], dict[Any, float], int]] = {
    "a plain reading": (GOOD, GOOD_SERIES, 0),
    "negative used": ({"X-Used": "-5", "X-Limit": "100"}, {}, 1),
    "negative limit": ({"X-Used": "5", "X-Limit": "-100"}, {}, 1),
    "zero limit": ({"X-Used": "0", "X-Limit": "0"}, {}, 1),
    "NaN": ({"X-Used": "NaN", "X-Limit": "100"}, {}, 0),
    "infinity": ({"X-Used": "5", "X-Limit": "inf"}, {}, 0),
    "huge": ({"X-Used": "1e300", "X-Limit": "1e301"}, {}, 1),
    "just above the cap": ({"X-Used": "5", "X-Limit": "1000000000001"}, {}, 1),
    "garbage": ({"X-Used": "lots", "X-Limit": "100"}, {}, 0),
    "digits and garbage": ({"X-Used": "12abc", "X-Limit": "100"}, {}, 0),
    "fullwidth digits": ({"X-Used": "\uff11\uff12", "X-Limit": "100"}, {}, 0),
    "underscored": ({"X-Used": "1_2", "X-Limit": "100"}, {}, 0),
    "a very long figure": ({"X-Used": "1" * 200, "X-Limit": "100"}, {}, 0),
    "a reset that is garbage": ({**GOOD, "X-Reset": "soon"}, GOOD_SERIES, 1),
    "a reset in 3000": ({**GOOD, "X-Reset": "3000-01-01T00:00:00Z"}, GOOD_SERIES, 1),
    "a reset without a zone": ({**GOOD, "X-Reset": "2030-01-01T00:00:00"}, GOOD_SERIES, 1),
    "a reset as NaN": ({**GOOD, "X-Reset": "nan"}, GOOD_SERIES, 1),
}


@pytest.mark.parametrize("case", list(HEADERS))
def test_each_hostile_quota_header_has_its_exact_outcome(case: str, config: Path, crm: QuotaCRM) -> None:
    headers, expected, refused = HEADERS[case]
    assert scrape(config, [("list_accounts", headers, {})], crm) == (expected, refused)


def test_a_hostile_reading_keeps_the_last_good_one(config: Path, crm: QuotaCRM) -> None:
    calls = [("list_accounts", GOOD, {}), ("list_accounts", {"X-Used": "-1", "X-Limit": "100"}, {}),
             ("list_accounts", {"X-Used": "NaN", "X-Limit": "100"}, {})]
    assert scrape(config, calls, crm) == (GOOD_SERIES, 1)


def test_a_plausible_reset_time_is_exported_in_unix_seconds(config: Path, crm: QuotaCRM) -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    metrics, refused = scrape(config, [("list_accounts", {**GOOD, "X-Reset": tomorrow.isoformat()}, {})], crm)
    assert refused == 0
    assert metrics == {**GOOD_SERIES, **dict([series("crmpulse_api_quota_reset_timestamp_seconds", "calls",
                                                       "1d", tomorrow.timestamp())])}
    millis = int(tomorrow.timestamp() * 1000)
    metrics, _ = scrape(config, [("list_accounts", {**GOOD, "X-Reset": str(millis)}, {})], crm)
    assert metrics[series("crmpulse_api_quota_reset_timestamp_seconds", "calls", "1d", 0)[0]] == \
        tomorrow.timestamp()


# limits bodies -> (series exported, refused)
BODIES: dict[str, tuple[Any, dict[Any, float], int]] = {
    "a plain document": ({"used": 3, "max": 50}, dict([
        series("crmpulse_api_quota_used", "limits_doc", "1h", 3.0),
        series("crmpulse_api_quota_limit", "limits_doc", "1h", 50.0),
        series("crmpulse_api_quota_window_seconds", "limits_doc", "1h", 3600.0)]), 0),
    "negative": ({"used": -3, "max": 50}, {}, 1),
    "a mapping for a number": ({"used": {"a": 1}, "max": 50}, {}, 0),
    "a list for a number": ({"used": [1, 2], "max": 50}, {}, 0),
    "true for a number": ({"used": True, "max": 50}, {}, 0),
    "huge": ({"used": 10**400, "max": 50}, {}, 0),
    "missing": ({"other": 1}, {}, 0),
    "not JSON": (b"<html>limits</html>", {}, 0),
    "NaN in JSON": (b'{"used": NaN, "max": 50}', {}, 0),
    "deeply nested": (b"[" * 100_000 + b"]" * 100_000, {}, 0),
}


@pytest.mark.parametrize("case", list(BODIES))
def test_each_hostile_limits_document_has_its_exact_outcome(case: str, config: Path, crm: QuotaCRM) -> None:
    body, expected, refused = BODIES[case]
    started = time.monotonic()
    assert scrape(config, [("limits", {}, body)], crm) == (expected, refused)
    assert time.monotonic() - started < 30  # bounded: a hostile body never hangs the reader


# what a config file can say wrong about quotas -> the exact problem reported
BAD_CONFIG = {
    "an unknown reader": ("loadtest:\n  quota: {read_with: limitz}\n",
                          'crmpulse.yaml:4 loadtest.quota.read_with: expected an operation of profile '
                          'quota-hostile, got "limitz" (did you mean "limits"?)'),
    "a share above 100": ("loadtest:\n  quota: {max_share: 150}\n",
                          "crmpulse.yaml:4 loadtest.quota.max_share: expected a percentage above 0 and below "
                          "100, got 150"),
    "a floor in requests": ("loadtest:\n  quota: {floor: 10 requests}\n",
                            'crmpulse.yaml:4 loadtest.quota.floor: expected a percentage like 99.9, '
                            'got "10 requests"'),
    "an unknown key": ("loadtest:\n  quota: {share: 20}\n",
                       'crmpulse.yaml:4 loadtest.quota.share: unknown key (did you mean "max_share"?)'),
}


@pytest.mark.parametrize("case", list(BAD_CONFIG))
def test_each_bad_quota_setting_is_reported_with_its_line_and_key(case: str, config: Path) -> None:
    from crmpulse import ConfigError

    extra, message = BAD_CONFIG[case]
    config.write_text(config.read_text() + extra)
    with pytest.raises(ConfigError) as raised:
        load_config(config)
    assert [str(p).replace(str(config), "crmpulse.yaml") for p in raised.value.problems] == [message]


def test_a_limits_read_more_often_than_every_ten_seconds_is_refused(config: Path) -> None:
    from crmpulse import ConfigError

    profile = config.parent / "hostile.yaml"
    profile.write_text(profile.read_text().replace("    operation: limits\n",
                                                   "    operation: limits\n    every: 1s\n"))
    with pytest.raises(ConfigError) as raised:
        load_config(config)
    assert [p.message for p in raised.value.problems] == [
        'every: expected at least "10s" (each read spends quota too), got "1s"']
