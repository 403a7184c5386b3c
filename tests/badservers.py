"""Misbehaving endpoints on loopback: a CRM that hangs, resets, floods, lies or has bad TLS.

Real sockets, real servers: the probes must fail each one with the right reason and
keep serving. Used by the probe tests and by bench/probe_resilience.py.
"""

from __future__ import annotations

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

__all__ = ["BadServers", "make_certificate"]


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
