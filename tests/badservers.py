"""Misbehaving endpoints on loopback: a CRM that hangs, resets, floods, lies or has bad TLS.

Real sockets, real servers: the probes must fail each one with the right reason and
keep serving. Used by the probe tests and by bench/probe_resilience.py.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import struct
import tempfile
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["BadServers", "HostileCRM", "Recorder", "bomb", "make_certificate"]


def make_certificate(folder: Path, name: str, days_valid: int, days_offset: int = 0) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 valid from now+offset for ``days_valid`` days."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    start = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days_offset)

    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start - datetime.timedelta(days=1))
            .not_valid_after(start + datetime.timedelta(days=days_valid))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    body: Callable[[], tuple[int, str, bytes]]

    def do_GET(self) -> None:
        status, ctype, body = self.body()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up on a 10 MB body is the point, not an error


class BadServers:
    """Starts every misbehaviour on its own loopback port; ``urls`` maps name -> base URL."""

    def __init__(self) -> None:
        self.urls: dict[str, str] = {}
        self.certs: dict[str, str] = {}
        self._closers: list[Callable[[], None]] = []
        self._folder = Path(tempfile.mkdtemp(prefix="crmpulse-bad-"))
        self._http("ok", lambda: (200, "application/json", b'{"data": []}'))
        self._http("huge", lambda: (200, "application/json", b"[" + b"1," * 5_000_000 + b"1]"))
        self._http("invalid_json", lambda: (200, "application/json", b'{"data": [1, 2'))
        self._http("error", lambda: (500, "text/plain", b"boom"))
        cert, key = make_certificate(self._folder, "selfsigned", days_valid=30)
        self.certs["self_signed"] = cert
        self._http("self_signed", lambda: (200, "application/json", b"{}"), tls=(cert, key))
        cert, key = make_certificate(self._folder, "expired", days_valid=1, days_offset=-30)
        self.certs["expired"] = cert
        self._http("expired", lambda: (200, "application/json", b"{}"), tls=(cert, key))
        self._raw("hang", self._hang)
        self._raw("reset", self._reset)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.urls["down"] = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens

    def _http(self, name: str, body: Callable[[], tuple[int, str, bytes]],
              tls: tuple[str, str] | None = None) -> None:
        handler = type(f"{name}Handler", (_Handler,), {"body": staticmethod(body)})
        server = _QuietServer(("127.0.0.1", 0), handler)
        scheme = "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            server.socket = context.wrap_socket(server.socket, server_side=True)
            scheme = "https"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.urls[name] = f"{scheme}://127.0.0.1:{server.server_address[1]}"
        self._closers.append(server.shutdown)

    def _raw(self, name: str, behave: Callable[[socket.socket], None]) -> None:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(512)
        held: list[socket.socket] = []

        def serve() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                held.append(conn)
                behave(conn)

        threading.Thread(target=serve, daemon=True).start()
        self.urls[name] = f"http://127.0.0.1:{listener.getsockname()[1]}"

        def close() -> None:
            listener.close()
            for conn in held:
                conn.close()

        self._closers.append(close)

    @staticmethod
    def _hang(conn: socket.socket) -> None:
        pass  # accept, hold the connection open, never answer

    @staticmethod
    def _reset(conn: socket.socket) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()  # RST instead of FIN

    def close(self) -> None:
        for closer in self._closers:
            closer()


# -- a recording server: what reached it, with which headers ------------------------------


class Recorder:
    """An HTTP server on loopback that records every request it gets and answers ``reply``.

    ``seen`` holds (method, path, headers, body) per request; ``connections`` counts
    accepted connections, so a test can show that nothing at all was sent to it.
    """

    def __init__(self, status: int = 200, body: bytes = b'{"data": []}',
                 headers: dict[str, str] | None = None) -> None:
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        self.connections = 0
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                recorder.connections += 1
                super().setup()

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                payload = self.rfile.read(length) if length else b""
                recorder.seen.append((self.command, self.path, dict(self.headers.items()), payload))
                self.send_response(status)
                for name, value in (headers or {"Content-Type": "application/json"}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def text(self) -> str:
        """Everything received, as one string to grep."""
        return "\n".join(f"{m} {p}\n" + "\n".join(f"{k}: {v}" for k, v in h.items()) + "\n"
                         + b.decode("latin-1") for m, p, h, b in self.seen)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# -- a CRM that misbehaves at the HTTP level ------------------------------------------------

#: How much a decompression bomb expands to: far past any body cap.
BOMB_SIZE = 1024 * 1024 * 1024


def _bomb(wbits: int) -> bytes:
    """BOMB_SIZE zero bytes, compressed (gzip for wbits 31, zlib deflate for 15): about 1 MB."""
    import zlib

    compressor = zlib.compressobj(6, zlib.DEFLATED, wbits)
    block = bytes(1024 * 1024)
    parts = [compressor.compress(block) for _ in range(BOMB_SIZE // len(block))]
    return b"".join(parts) + compressor.flush()


_BOMBS: dict[str, bytes] = {}


def bomb(encoding: str) -> bytes:
    if encoding not in _BOMBS:
        _BOMBS[encoding] = _bomb(31 if encoding == "gzip" else 15)
    return _BOMBS[encoding]


def _read_request(conn: socket.socket) -> bool:
    data = b""
    conn.settimeout(10)
    while b"\r\n\r\n" not in data:
        try:
            chunk = conn.recv(65536)
        except OSError:
            return False
        if not chunk:
            return False
        data += chunk
    return True


def _head(status: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode()


def _reply(status: str, headers: dict[str, str], body: bytes) -> bytes:
    return _head(status, {**headers, "Content-Length": str(len(body))}) + body


class HostileCRM:
    """One loopback server per hostile HTTP behaviour; ``urls`` maps name -> base URL.

    Each answers every request the same way, whatever its path:

    - ``gzip_bomb`` / ``deflate_bomb``: a 1 MB body that decompresses to 1 GiB
    - ``slow_drip``: headers at once, then one body byte every 0.3 s, forever
    - ``slow_headers``: one header byte every 0.3 s, forever
    - ``redirect_loop``: 302 to itself
    - ``huge_headers``: a 1 MiB header line
    - ``html``: 200 with an HTML page where JSON is expected
    - ``truncated``: Content-Length 1000, 10 bytes, then the connection closes
    - ``invalid_json``: 200 application/json that is not JSON
    - ``nan_json``: 200 application/json with NaN in it (not JSON, though Python reads it)
    - ``endless``: a chunked body that never ends
    - ``endless_trailer``: a chunked body whose trailer field never ends, at full speed
    - ``endless_extension``: a chunk-size line whose extension never ends, at full speed
    - ``unknown_encoding``: Content-Encoding: zstd
    """

    def __init__(self) -> None:
        self.urls: dict[str, str] = {}
        self._listeners: list[socket.socket] = []
        for encoding in ("gzip", "deflate"):  # a few seconds each: before any client waits on one
            bomb(encoding)
        self._stop = threading.Event()
        json_headers = {"Content-Type": "application/json"}
        for name, behave in {
            "gzip_bomb": self._compressed("gzip"),
            "deflate_bomb": self._compressed("deflate"),
            "slow_drip": self._slow_drip,
            "slow_headers": self._slow_headers,
            "redirect_loop": self._send(_reply("302 Found", {"Location": "/again"}, b"")),
            "huge_headers": self._send(_reply("200 OK", {"X-Padding": "a" * (1024 * 1024)}, b"{}")),
            "html": self._send(_reply("200 OK", {"Content-Type": "text/html"},
                                      b"<html><body>hi</body></html>")),
            "truncated": self._send(_head("200 OK", {**json_headers, "Content-Length": "1000"})
                                    + b'{"data": [', close=True),
            "invalid_json": self._send(_reply("200 OK", json_headers, b'{"data": [1, 2')),
            "nan_json": self._send(_reply("200 OK", json_headers, b'{"data": [NaN], "next": null}')),
            "endless": self._endless,
            "endless_trailer": self._endless_after(b'2\r\n{}\r\n0\r\nX-Trailer: '),
            "endless_extension": self._endless_after(b"2;ext="),
            "unknown_encoding": self._send(_reply("200 OK", {**json_headers, "Content-Encoding": "zstd"},
                                                  b"\x28\xb5\x2f\xfd" * 3)),
        }.items():
            self._serve(name, behave)

    def _serve(self, name: str, behave: Callable[[socket.socket], None]) -> None:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        self._listeners.append(listener)

        def handle(conn: socket.socket) -> None:
            with conn:
                if _read_request(conn):
                    with contextlib.suppress(OSError):
                        behave(conn)

        def serve() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                threading.Thread(target=handle, args=(conn,), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()
        self.urls[name] = f"http://127.0.0.1:{listener.getsockname()[1]}"

    def _send(self, data: bytes, close: bool = False) -> Callable[[socket.socket], None]:
        def behave(conn: socket.socket) -> None:
            conn.sendall(data)
            if not close:  # keep it open until the client hangs up
                conn.settimeout(30)
                with contextlib.suppress(OSError):
                    while conn.recv(65536):
                        pass
        return behave

    def _compressed(self, encoding: str) -> Callable[[socket.socket], None]:
        def behave(conn: socket.socket) -> None:
            body = bomb(encoding)
            conn.sendall(_head("200 OK", {"Content-Type": "application/json", "Content-Encoding": encoding,
                                          "Content-Length": str(len(body))}) + body)
        return behave

    def _slow_drip(self, conn: socket.socket) -> None:
        conn.sendall(_head("200 OK", {"Content-Type": "application/json", "Content-Length": "100000"}))
        while not self._stop.wait(0.3):
            conn.sendall(b" ")

    def _slow_headers(self, conn: socket.socket) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100000:
            if self._stop.wait(0.3):
                return
            conn.sendall(bytes([byte]))

    def _endless(self, conn: socket.socket) -> None:
        conn.sendall(_head("200 OK", {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}))
        chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
        while not self._stop.is_set():
            conn.sendall(chunk)

    def _endless_after(self, start: bytes) -> Callable[[socket.socket], None]:
        def behave(conn: socket.socket) -> None:
            conn.sendall(_head("200 OK", {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
                         + start)
            piece = b"a" * 65536
            while not self._stop.is_set():
                conn.sendall(piece)
        return behave

    def close(self) -> None:
        self._stop.set()
        for listener in self._listeners:
            listener.close()
