"""The probes' HTTP transport against raw loopback servers: framing, limits, TLS and true durations.

"True durations" means: what a probe reports is the time the server took, not the time
the exporter's event loop was busy elsewhere. These tests block the loop on purpose
while the answer is on its way and check that the block is not reported.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from crmpulse import load_config
from crmpulse.probes.checks import Outcome, TargetRunner
from tests.badservers import make_certificate
from tests.helpers import write_config

Behaviour = Callable[[socket.socket], None]


class RawServer:
    """Answers each connection with ``behave(conn)`` after reading the request head."""

    def __init__(self, behave: Behaviour, context: ssl.SSLContext | None = None) -> None:
        self.requests: list[bytes] = []
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        scheme = "https" if context else "http"
        self.url = f"{scheme}://127.0.0.1:{self.listener.getsockname()[1]}"

        def serve() -> None:
            while True:
                try:
                    conn, _ = self.listener.accept()
                except OSError:
                    return
                threading.Thread(target=handle, args=(conn,), daemon=True).start()

        def handle(conn: socket.socket) -> None:
            try:
                if context is not None:
                    conn = context.wrap_socket(conn, server_side=True)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                self.requests.append(data)
                behave(conn)
            except OSError:
                pass
            finally:
                conn.close()

        threading.Thread(target=serve, daemon=True).start()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def servers() -> Iterator[list[RawServer]]:
    started: list[RawServer] = []
    yield started
    for server in started:
        server.close()


def run_check(tmp_path: Path, url: str, request: str = "{path: /, auth: false}", expect: str = "{}",
              extra: str = "", during: Callable[[], None] | None = None) -> tuple[Outcome, float]:
    """Run one http check against ``url``; ``during`` is called on the loop 30 ms in."""
    path = write_config(tmp_path, f"""
        target: {{name: t, base_url: "{url}"{extra}}}
        probes:
          checks:
            - {{name: c, kind: http, request: {request}, expect: {expect}, interval: 10s, timeout: 5s}}
        """)
    loaded = load_config(path)

    async def go() -> tuple[Outcome, float]:
        runner = TargetRunner(loaded)
        try:
            if during is not None:
                asyncio.get_running_loop().call_later(0.03, during)
            start = time.perf_counter()
            outcome = await runner.run(loaded.config.probes.checks[0])
            return outcome, time.perf_counter() - start
        finally:
            await runner.aclose()
    return asyncio.run(go())


def answer(body: bytes, delay: float = 0.0, extra: bytes = b"") -> Behaviour:
    def behave(conn: socket.socket) -> None:
        time.sleep(delay)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body))
    return behave


def test_an_answer_that_waits_for_a_busy_loop_is_not_counted_as_the_crms_time(
        tmp_path: Path, servers: list[RawServer]) -> None:
    servers.append(RawServer(answer(b'{"ok": true}', delay=0.1)))
    # the loop is blocked from 30 ms to 530 ms; the answer arrives at about 100 ms
    outcome, wall = run_check(tmp_path, servers[0].url, during=lambda: time.sleep(0.5))
    assert outcome.success, outcome.message
    assert wall >= 0.53
    assert 0.1 <= outcome.duration < 0.3, outcome.duration  # the server's 100 ms, not 530
    assert 0.09 <= outcome.phases["processing"] < 0.3


def test_over_tls_the_handshake_and_the_answer_are_timed_without_the_loops_block(
        tmp_path: Path, servers: list[RawServer]) -> None:
    cert, key = make_certificate(tmp_path, "server", days_valid=5)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    servers.append(RawServer(answer(b"{}", delay=0.1), context))
    outcome, wall = run_check(tmp_path, servers[0].url, extra=f", tls: {{ca_file: '{cert}'}}",
                              during=lambda: time.sleep(0.5))
    assert outcome.success, outcome.message
    assert wall >= 0.53
    # the server's 100 ms start at its accept(), which a loaded machine may run a few ms
    # before the probe's clock starts (as for the tls phase below); never the loop's 0.5 s
    assert 0.09 <= outcome.duration < 0.3, outcome.duration
    assert outcome.phases["tls"] > 0 and outcome.phases["connect"] > 0


@pytest.mark.parametrize(("name", "behave", "request_", "expect"), [
    ("chunked", lambda c: c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                    b"4\r\n{\"a\"\r\n5\r\n: 42}\r\n0\r\n\r\n"),
     "{path: /, auth: false}", "{json: [{path: $.a, equals: 42}]}"),
    ("until the connection closes", lambda c: c.sendall(b"HTTP/1.1 200 OK\r\n\r\n{\"a\": 42}"),
     "{path: /, auth: false}", "{json: [{path: $.a, equals: 42}]}"),
    ("100 Continue first", lambda c: c.sendall(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"
                                               b"Content-Length: 9\r\n\r\n{\"a\": 42}"),
     "{path: /, auth: false}", "{json: [{path: $.a, equals: 42}]}"),
    ("gzip", answer(gzip.compress(b'{"a": 42}'), extra=b"Content-Encoding: gzip\r\n"),
     "{path: /, auth: false}", "{json: [{path: $.a, equals: 42}]}"),
    ("HEAD with a length and no body", lambda c: c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"),
     "{method: HEAD, path: /, auth: false}", "{}"),
    ("204", lambda c: c.sendall(b"HTTP/1.1 204 No Content\r\n\r\n"), "{path: /, auth: false}",
     "{status: [204]}"),
])
def test_every_way_an_answer_can_be_framed_is_read_whole(
        tmp_path: Path, servers: list[RawServer], name: str, behave: Behaviour, request_: str,
        expect: str) -> None:
    servers.append(RawServer(behave))
    outcome, _ = run_check(tmp_path, servers[0].url, request=request_, expect=expect)
    assert outcome.success, f"{name}: {outcome.reason} {outcome.message}"


@pytest.mark.parametrize("behave", [
    lambda c: c.sendall(b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000 + b"\r\n\r\n"),
    lambda c: c.sendall(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 300 + b"Content-Length: 0\r\n\r\n"),
    lambda c: c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"cut\""),
    lambda c: c.sendall(b"HTTP/1.1 2x0 Weird\r\n\r\n"),
], ids=["head over 64 KiB", "300 header fields", "body cut short", "malformed status line"])
def test_a_malformed_or_oversized_answer_fails_as_a_broken_connection(
        tmp_path: Path, servers: list[RawServer], behave: Behaviour) -> None:
    servers.append(RawServer(behave))
    outcome, _ = run_check(tmp_path, servers[0].url)
    assert (outcome.success, outcome.reason) == (False, "connect"), outcome.message


def test_a_line_break_in_a_header_value_is_refused_before_anything_is_sent(
        tmp_path: Path, servers: list[RawServer]) -> None:
    servers.append(RawServer(answer(b"{}")))
    outcome, _ = run_check(tmp_path, servers[0].url,
                           request='{path: /, auth: false, headers: {X-Id: "1\\r\\nX-Admin: yes"}}')
    assert not outcome.success
    assert servers[0].requests == []


def test_the_request_closes_the_connection_and_carries_the_host(
        tmp_path: Path, servers: list[RawServer]) -> None:
    servers.append(RawServer(answer(b"{}")))
    outcome, _ = run_check(tmp_path, servers[0].url, request="{path: '/x?q=1', auth: false}")
    assert outcome.success
    head = servers[0].requests[0].decode()
    assert head.startswith("GET /x?q=1 HTTP/1.1\r\n")
    assert f"host: {servers[0].url.removeprefix('http://')}" in head.lower()
    assert "connection: close" in head.lower()


def test_a_tls_checks_handshake_is_timed_without_the_loops_block(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path, "server", days_valid=5)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def serve() -> None:
        conn, _ = listener.accept()
        time.sleep(0.1)  # the server takes 100 ms before its side of the handshake
        with context.wrap_socket(conn, server_side=True):
            time.sleep(0.5)

    threading.Thread(target=serve, daemon=True).start()
    path = write_config(tmp_path, f"""
        target: {{name: t, base_url: "https://127.0.0.1:{listener.getsockname()[1]}", tls: {{ca_file: '{cert}'}}}}
        probes:
          checks:
            - {{name: cert, kind: tls, interval: 10s, timeout: 5s}}
        """)
    loaded = load_config(path)

    async def go() -> tuple[Outcome, float]:
        runner = TargetRunner(loaded)
        try:
            asyncio.get_running_loop().call_later(0.03, time.sleep, 0.5)
            start = time.perf_counter()
            outcome = await runner.run(loaded.config.probes.checks[0])
            return outcome, time.perf_counter() - start
        finally:
            await runner.aclose()

    outcome, wall = asyncio.run(go())
    listener.close()
    assert outcome.success and outcome.tls_chain_valid, outcome.message
    assert wall >= 0.53
    # the server's 100 ms start at its accept(), which a loaded machine may run a few ms
    # before the probe's clock starts (as for the tls phase below); never the loop's 0.5 s
    assert 0.09 <= outcome.duration < 0.3, outcome.duration
    assert 0.09 <= outcome.phases["tls"] < 0.3 and outcome.phases["connect"] < 0.05
