"""What a CRM (or a value it sent) can do to the load test's HTTP path, loadtests/wire.py.

The behaviours every client shares (bombs, drips, truncation, redirects) are in
test_hostile_crm.py; these are the load test's own: header values that would split a
request, cookies scoped by the standard library's rules, paths that need quoting, a head
that never ends, a connection cut off by the deadline, and the target's TLS settings,
which a plain FastHttpUser ignores (it verifies no certificate).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import gevent
import pytest

from crmpulse import TransportError
from crmpulse.config import TLS, Target
from crmpulse.loadtests.wire import MAX_COOKIES, MAX_HEAD, Wire
from crmpulse.profile import RenderedRequest
from tests.badservers import BadServers, Recorder, _QuietServer, make_certificate


def target(url: str, timeout: str = "5s", tls: TLS | None = None) -> Target:
    return Target.model_validate({"name": "t", "base_url": url, "timeout": timeout,
                                  **({"tls": tls.model_dump()} if tls else {})})


def get(url: str, headers: dict[str, str] | None = None, **fields: Any) -> RenderedRequest:
    return RenderedRequest(operation="op", method=fields.pop("method", "GET"), url=url,
                           headers=headers or {}, **fields)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.close()


def test_a_header_value_that_would_split_the_request_is_refused_unsent_and_unechoed(
        recorder: Recorder) -> None:
    wire = Wire(target(recorder.url))
    secret = "tok-4f9a"
    for value in (f"Bearer {secret}\r\nX-Injected: 1", f"Bearer {secret}\nHost: evil.example"):
        with pytest.raises(TransportError) as caught:
            wire.send(get(f"{recorder.url}/api/v1/me", {"Authorization": value}))
        assert caught.value.reason == "protocol"
        assert str(caught.value) == ("request refused before sending: a header or the URL is not "
                                     f"valid HTTP ({recorder.url})")
        assert secret not in str(caught.value)
    assert recorder.connections == 0 and recorder.seen == []


def test_a_path_that_needs_quoting_is_sent_quoted_and_a_plain_one_as_it_is(recorder: Recorder) -> None:
    wire = Wire(target(recorder.url))
    for path in ("/api/v1/contacts/a b\u00e9", "/api/v1/contacts/c-1_x.y~z", "/api/v1/search?q=o'neil"):
        status, _, _ = wire.send(get(f"{recorder.url}{path}"))
        assert status == 200
    assert [seen[1] for seen in recorder.seen] == [
        "/api/v1/contacts/a%20b%C3%A9", "/api/v1/contacts/c-1_x.y~z", "/api/v1/search?q=o'neil"]
    status, _, _ = wire.send(get(f"{recorder.url}/api/v1/search", params={"q": "Smith & Sons", "n": "1"}))
    assert recorder.seen[-1][1] == "/api/v1/search?q=Smith+%26+Sons&n=1"


class _Scripted:
    """A server answering each request with the next of ``answers`` (raw header lines)."""

    def __init__(self, answers: list[list[tuple[str, str]]], status: int = 200) -> None:
        self.requests: list[dict[str, str]] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                scripted.requests.append({k.lower(): v for k, v in self.headers.items()})
                lines = answers[min(len(scripted.requests), len(answers)) - 1]
                self.send_response(status)
                for name, value in lines:
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_cookies_go_back_by_the_cookie_rules_and_repeated_fields_read_as_one() -> None:
    server = _Scripted([
        [("Set-Cookie", "affinity=node-2; Path=/"), ("Set-Cookie", "scoped=1; Path=/api/v2"),
         ("Set-Cookie", "elsewhere=1; Domain=evil.example; Path=/"),
         ("Set-Cookie", "secure_only=1; Secure; Path=/"), ("Set-Cookie", "gone=1; Max-Age=0; Path=/"),
         ("Retry-After", "1"), ("Retry-After", "2")],
        [],
    ])
    try:
        wire = Wire(target(server.url))
        _, headers, _ = wire.send(get(f"{server.url}/api/v1/contacts"))
        assert headers.get("retry-after") == "1, 2" and headers["Retry-After"] == "1, 2"
        assert "cookie" not in server.requests[0]
        wire.send(get(f"{server.url}/api/v1/contacts"))
        # the CRM's own cookie for this path comes back; one for another path, another
        # domain, HTTPS only or already expired does not
        assert server.requests[1]["cookie"] == "affinity=node-2"
    finally:
        server.close()


def _serve_raw(behave: Callable[[socket.socket, threading.Event], None]) -> tuple[str, Callable[[], None]]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=behave, args=(conn, stop), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()

    def close() -> None:
        stop.set()
        listener.close()
    return f"http://127.0.0.1:{listener.getsockname()[1]}", close


def test_a_head_that_never_ends_is_refused_at_the_cap_not_at_the_deadline() -> None:
    sent = [0]

    def flood(conn: socket.socket, stop: threading.Event) -> None:
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Flood: ")
            piece = b"a" * 16384
            try:
                while not stop.is_set():
                    conn.sendall(piece)
                    sent[0] += len(piece)
            except OSError:
                return
    url, close = _serve_raw(flood)
    try:
        with pytest.raises(TransportError) as caught:
            Wire(target(url, timeout="60s")).send(get(f"{url}/api/v1/me"))
        assert (caught.value.reason, str(caught.value)) == ("connect", f"connection broken ({url})")
        # the refusal is the cap's: the client stopped reading a few blocks past MAX_HEAD
        # (what the kernel's socket buffers hold besides)
        assert sent[0] < MAX_HEAD + 8 * 1024 * 1024
    finally:
        close()


def test_a_request_the_deadline_cut_off_leaves_the_origin_usable() -> None:
    answered = []

    def first_hangs(conn: socket.socket, stop: threading.Event) -> None:
        with conn:
            while data := conn.recv(65536):
                if not answered:
                    answered.append("held")
                    stop.wait(30)  # hold the first request past the client's deadline
                    return
                answered.append(data.split(b" ")[1].decode())  # before the answer: the test reads it then
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    url, close = _serve_raw(first_hangs)
    try:
        wire = Wire(target(url, timeout="1s"))
        with pytest.raises(TransportError) as caught:
            wire.send(get(f"{url}/slow"))
        assert (caught.value.reason, str(caught.value)) == ("timeout", f"timed out ({url})")
        for _ in range(3):  # the same origin, the same user: nothing is stuck
            status, _, body = wire.send(get(f"{url}/next"))
            assert (status, body) == (200, b"{}")
        assert answered == ["held", "/next", "/next", "/next"]
    finally:
        close()


@pytest.fixture(scope="module")
def bad() -> Iterator[BadServers]:
    servers = BadServers()
    yield servers
    servers.close()


def test_the_targets_tls_settings_apply_where_a_plain_fasthttpuser_verifies_nothing(
        bad: BadServers, tmp_path: Path) -> None:
    url = bad.urls["self_signed"]
    with pytest.raises(TransportError) as caught:
        Wire(target(url)).send(get(f"{url}/api/v1/me"))
    assert (caught.value.reason, str(caught.value)) == ("tls", f"TLS handshake failed ({url})")
    expired = bad.urls["expired"]
    with pytest.raises(TransportError) as caught:
        Wire(target(expired, tls=TLS(ca_file=bad.certs["expired"]))).send(get(f"{expired}/x"))
    assert caught.value.reason == "tls"
    trusted = Wire(target(url, tls=TLS(ca_file=bad.certs["self_signed"])))
    assert trusted.send(get(f"{url}/api/v1/me")).status_code == 200
    assert Wire(target(url, tls=TLS(verify=False))).send(get(f"{url}/api/v1/me")).status_code == 200
    # a CA file that did not sign the server's certificate does not make it trusted
    other, _ = make_certificate(tmp_path, "other", days_valid=5)
    with pytest.raises(TransportError) as caught:
        Wire(target(url, tls=TLS(ca_file=other))).send(get(f"{url}/api/v1/me"))
    assert caught.value.reason == "tls"


def test_a_refused_connection_names_the_origin_and_never_the_path(bad: BadServers) -> None:
    url = bad.urls["down"]
    with pytest.raises(TransportError) as caught:
        Wire(target(url)).send(get(f"{url}/api/v1/contacts/rec-77"))
    assert (caught.value.reason, str(caught.value)) == ("connect", f"connection failed ({url})")


def test_a_cookie_header_of_the_target_stays_and_the_crms_cookies_stay_bounded() -> None:
    flood = [("Set-Cookie", f"c{i}=v; Path=/") for i in range(120)]
    server = _Scripted([
        [("Set-Cookie", "lb=node-2; Path=/")],
        [*flood, ("Set-Cookie", f"big={'x' * 5000}; Path=/")],
        [*[("Set-Cookie", f"d{i}=v; Path=/") for i in range(120)], ("Set-Cookie", "lb=node-3; Path=/")],
        [],
    ])
    try:
        wire = Wire(target(server.url))
        session = {"Cookie": "sid=S3CRET"}
        wire.send(get(f"{server.url}/a", session))
        wire.send(get(f"{server.url}/b", session))
        # a request that carries its own Cookie (a session cookie in target.headers) keeps it
        assert server.requests[1]["cookie"] == "sid=S3CRET"
        wire.send(get(f"{server.url}/c"))
        wire.send(get(f"{server.url}/d"))
        # the jar holds at most MAX_COOKIES, takes no cookie past 4096 bytes, and still
        # updates one it holds (lb: node-2 -> node-3)
        assert len(wire.cookies) == MAX_COOKIES
        sent = dict(pair.split("=", 1) for pair in server.requests[3]["cookie"].split("; "))
        assert len(sent) == MAX_COOKIES and sent["lb"] == "node-3" and "big" not in sent
    finally:
        server.close()


def test_repeated_fields_read_as_one_through_items_as_the_operations_engine_reads_them() -> None:
    server = _Scripted([[("Link", '<http://x/2>; rel="next"'), ("Link", '<http://x/9>; rel="last"')]])
    try:
        answer = Wire(target(server.url)).send(get(f"{server.url}/a"))
        lowered = {k.lower(): v for k, v in answer.headers.items()}  # Operation.interpret
        assert lowered["link"] == '<http://x/2>; rel="next", <http://x/9>; rel="last"'
    finally:
        server.close()


def test_what_the_request_event_gets_is_read_as_locust_reads_a_response(recorder: Recorder) -> None:
    wire = Wire(target(recorder.url))
    answer = wire.send(get(f"{recorder.url}/a", method="POST", json={"k": 1}))
    # locust.contrib.csv_request_logger reads status_code; run_single_user, _request.payload
    assert (answer.status_code, answer._request.payload, answer.ok) == (200, b'{"k":1}', True)
    # a token request's body (a password, a client secret) is not handed to listeners
    token = wire.send(get(f"{recorder.url}/oauth/token", method="POST", auth=False,
                          form={"grant_type": "password", "password": "pw-77"}))
    assert token.status_code == 200 and token._request.payload is None
    # nor the query string, which holds whatever a template put in it
    found = wire.send(get(f"{recorder.url}/search", params={"q": "s3cret"}))
    assert recorder.seen[-1][1] == "/search?q=s3cret" and found.url == f"{recorder.url}/search"


def test_a_profiles_content_type_is_kept_whatever_its_case(recorder: Recorder) -> None:
    wire = Wire(target(recorder.url))
    wire.send(get(f"{recorder.url}/a", {"Content-type": "application/vnd.api+json"}, method="POST", json={"k": 1}))
    _, _, headers, body = recorder.seen[-1]
    assert body == b'{"k":1}' and headers["Content-Length"] == "7"
    assert [(k, v) for k, v in headers.items() if k.lower() == "content-type"] == [
        ("Content-type", "application/vnd.api+json")]
    # (framing headers never get here: check-config refuses them, tests/hostile/test_bad_configs.py)


def test_a_url_with_control_characters_is_refused_unsent(recorder: Recorder) -> None:
    wire = Wire(target(recorder.url))
    for url in (f"{recorder.url}/api/v1/contacts/12\r\n34", f"{recorder.url}/api/v1/contacts/12\t34"):
        with pytest.raises(TransportError) as caught:
            wire.send(get(url, method="DELETE"))
        assert caught.value.reason == "connect" and str(caught.value).startswith("invalid URL")
    assert recorder.connections == 0


def test_two_greenlets_of_one_user_may_send_at_once(recorder: Recorder) -> None:
    wire = Wire(target(recorder.url))
    jobs = [gevent.spawn(wire.send, get(f"{recorder.url}/g{i}")) for i in range(3)]
    gevent.joinall(jobs, raise_error=True)
    assert sorted(job.value.status_code for job in jobs) == [200, 200, 200]


def test_a_server_that_drops_every_request_gets_each_once_on_a_fresh_connection() -> None:
    got = []

    def drop(conn: socket.socket, stop: threading.Event) -> None:
        with conn:
            got.append(conn.recv(65536).split(b" ")[0])
    url, close = _serve_raw(drop)
    try:
        for method in ("GET", "PUT", "DELETE", "POST"):
            with pytest.raises(TransportError) as caught:
                Wire(target(url)).send(get(f"{url}/x", method=method))
            assert str(caught.value) == f"connection broken ({url})"
        assert got == [b"GET", b"PUT", b"DELETE", b"POST"]
    finally:
        close()


def test_a_tls_connection_that_ends_after_the_handshake_is_broken_not_a_tls_failure(
        tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path, "server", days_valid=5)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def refuse_the_upload(conn: socket.socket, stop: threading.Event) -> None:
        # an early 413 to an upload, then a close with the body unread (a reset, over TLS)
        with contextlib.suppress(OSError), context.wrap_socket(conn, server_side=True) as tls:
            head = b""
            while b"\r\n\r\n" not in head:
                head += tls.recv(65536)
            tls.sendall(b"HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}")
    url, close = _serve_raw(refuse_the_upload)
    url = url.replace("http://", "https://")
    try:
        outcomes = set()
        for _ in range(3):
            try:
                outcome: Any = Wire(target(url, tls=TLS(ca_file=cert))).send(
                    get(f"{url}/x", method="POST", content=b"x" * 8 * 1024 * 1024)).status_code
            except TransportError as exc:
                outcome = (exc.reason, str(exc))
            outcomes.add(outcome)
        # the early answer when it could still be read, else what the probes' httpx reports:
        # the connection broke; never a TLS failure (the handshake had succeeded)
        assert outcomes <= {413, ("connect", f"connection broken ({url})")}, outcomes
    finally:
        close()


def _answer_with(make: Callable[[], bytes]) -> tuple[str, Callable[[], None]]:
    """A server answering each request on a connection with ``make()``'s bytes."""
    def serve(conn: socket.socket, stop: threading.Event) -> None:
        with conn, contextlib.suppress(OSError):
            while conn.recv(65536):
                conn.sendall(make())
    return _serve_raw(serve)


def test_small_chunks_interim_answers_and_trailers_within_bounds_are_read_whole() -> None:
    def chunked(body: bytes, size: int, trailer: bytes = b"") -> bytes:
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size])
                          for i in range(0, len(body), size))
        return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n" + trailer + b"\r\n")
    body = b'{"data": [' + b",".join(b'{"id": %d}' % i for i in range(12000)) + b"]}"  # ~150 KB
    cases = {
        # a framework streaming JSON token by token: one to a few bytes a chunk
        "one-byte chunks": chunked(body, 1), "three-byte chunks": chunked(body, 3),
        "a normal trailer": chunked(body, 4096, b"X-Checksum: abc\r\nServer-Timing: db;dur=53\r\n"),
        # an interim answer first (Early Hints from a CDN): the final body is read whole
        "103 then 200": b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
                        + b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body,
    }
    for name, reply in cases.items():
        url, close = _answer_with(lambda reply=reply: reply)
        try:
            wire = Wire(target(url))
            for _ in range(2):  # and again on the same connection
                answer = wire.send(get(f"{url}/api/v1/contacts"))
                assert (answer.status_code, answer.content) == (200, body), name
        finally:
            close()


def test_a_large_body_does_not_buy_an_endless_trailer() -> None:
    sent = [0]

    def body_then_fields(conn: socket.socket, stop: threading.Event) -> None:
        with conn, contextlib.suppress(OSError):
            conn.recv(65536)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32768)
            chunk = b"100000\r\n" + b" " * 0x100000 + b"\r\n"  # 12 MiB of body, in 1 MiB chunks
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 12 + b"0\r\n")
            while not stop.is_set():
                conn.sendall(b"a:b\r\n" * 4096)
                sent[0] += 5 * 4096
    url, close = _serve_raw(body_then_fields)
    try:
        with pytest.raises(TransportError) as caught:
            Wire(target(url, timeout="60s")).send(get(f"{url}/api/v1/contacts"))
        assert (caught.value.reason, str(caught.value)) == ("connect", f"connection broken ({url})")
        # refused at the trailer's own cap (what socket buffers held besides), not after a
        # trailer as large as the body
        assert sent[0] < 8 * 1024 * 1024
    finally:
        close()


def test_a_client_certificate_refused_after_a_tls13_handshake_is_a_tls_failure(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path, "server", days_valid=5)
    client_ca, _ = make_certificate(tmp_path, "client-ca", days_valid=5)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3  # the server checks the client after its handshake
    context.load_cert_chain(cert, key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(client_ca)

    def mutual(conn: socket.socket, stop: threading.Event) -> None:
        with contextlib.suppress(OSError), context.wrap_socket(conn, server_side=True) as tls:
            tls.recv(65536)
    url, close = _serve_raw(mutual)
    url = url.replace("http://", "https://")
    try:
        with pytest.raises(TransportError) as caught:
            Wire(target(url, tls=TLS(ca_file=cert))).send(get(f"{url}/api/v1/me"))
        assert (caught.value.reason, str(caught.value)) == ("tls", f"TLS handshake failed ({url})")
    finally:
        close()


def test_one_greenlets_deadline_or_lost_connection_does_not_fail_the_other() -> None:
    seen: list[str] = []

    def serve(conn: socket.socket, stop: threading.Event) -> None:
        # answers the first request of each connection, then reads the next and hangs up
        # (a server closing an idle kept-alive connection), except that /hang hangs
        with conn, contextlib.suppress(OSError):
            path = conn.recv(65536).split(b" ")[1].decode()
            seen.append(path)
            if path == "/hang":
                stop.wait(30)
                return
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            conn.recv(65536)
    url, close = _serve_raw(serve)
    try:
        wire = Wire(target(url, timeout="1s"))
        hang = gevent.spawn(wire.send, get(f"{url}/hang"))
        gevent.sleep(0.05)  # /hang holds the user's one connection to the origin
        quick = gevent.spawn(wire.send, get(f"{url}/quick"))
        gevent.joinall([hang, quick])
        assert isinstance(hang.exception, TransportError) and str(hang.exception) == f"timed out ({url})"
        assert quick.value.status_code == 200  # sent once /hang gave the connection up
        for _ in range(5):  # two at a time on a connection the server drops after each answer
            pair = [gevent.spawn(wire.send, get(f"{url}/again")) for _ in range(2)]
            gevent.joinall(pair, raise_error=True)
            assert [job.value.status_code for job in pair] == [200, 200]
    finally:
        close()
