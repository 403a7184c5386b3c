"""Hostile HTTP servers on loopback for the exporter's tests and benches.

Each behaviour listens on its own port, answers every connection from a thread with
raw bytes (no HTTP library to soften what is sent), and counts the requests it saw.

    servers = HostileServers()
    servers.url("bomb")           # a 2 MiB gzip body that expands to 2 GiB
    servers.hits("redirect")      # requests the redirect loop has answered
    servers.close()
"""

from __future__ import annotations

import socket
import threading
import time
import zlib
from collections.abc import Callable
from functools import cache

__all__ = ["HostileServers", "gzip_bomb"]


@cache
def gzip_bomb(expanded: int = 2 * 1024**3, piece: int = 1024**2) -> bytes:
    """A gzip stream of ``expanded`` zero bytes, built by repeating one flushed deflate piece.

    A full flush ends each piece on a byte boundary with no reference to what came before,
    so one compressed MiB of zeros can be repeated as often as needed (2 GiB -> ~2 MiB)
    without compressing 2 GiB.
    """
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = packer.compress(bytes(piece)) + packer.flush(zlib.Z_FULL_FLUSH)
    count = expanded // piece
    crc = 0
    zeros = bytes(piece)
    for _ in range(count):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    trailer = crc.to_bytes(4, "little") + (expanded & 0xFFFFFFFF).to_bytes(4, "little")
    return header + segment * count + b"\x03\x00" + trailer


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    conn.settimeout(10)
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


class HostileServers:
    """Every behaviour on its own port (``url(name)``); ``hits(name)`` counts requests."""

    def __init__(self) -> None:
        self._urls: dict[str, str] = {}
        self._hits: dict[str, int] = {}
        self._listeners: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._add("ok", self._ok)
        self._add("bomb", self._bomb)
        self._add("hang", self._hang)
        self._add("huge_head", self._huge_head)
        self._add("many_headers", self._many_headers)
        self._add("redirect", self._redirect)
        self._add("drip", self._drip)

    def url(self, name: str) -> str:
        return self._urls[name]

    def hits(self, name: str) -> int:
        with self._lock:
            return self._hits[name]

    def close(self) -> None:
        self._stopped.set()
        for listener in self._listeners:
            listener.close()

    # -- plumbing -------------------------------------------------------------------------

    def _add(self, name: str, behave: Callable[[socket.socket], None]) -> None:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(256)
        self._listeners.append(listener)
        self._urls[name] = f"http://127.0.0.1:{listener.getsockname()[1]}"
        self._hits[name] = 0

        def serve() -> None:
            while not self._stopped.is_set():
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                threading.Thread(target=self._handle, args=(name, behave, conn),
                                 daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()

    def _handle(self, name: str, behave: Callable[[socket.socket], None], conn: socket.socket) -> None:
        try:
            if _read_request(conn):
                with self._lock:
                    self._hits[name] += 1
                behave(conn)
        except OSError:
            pass  # the prober hung up: that is its right
        finally:
            conn.close()

    # -- behaviours -----------------------------------------------------------------------

    @staticmethod
    def _ok(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 11\r\nConnection: close\r\n\r\n{\"ok\":true}")

    @staticmethod
    def _bomb(conn: socket.socket) -> None:
        body = gzip_bomb()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Encoding: gzip\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                     % len(body))
        conn.sendall(body)

    def _hang(self, conn: socket.socket) -> None:
        self._stopped.wait(60)

    @staticmethod
    def _huge_head(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Filler: " + b"a" * (1024 * 1024))
        conn.sendall(b"\r\nContent-Length: 2\r\n\r\n{}")

    @staticmethod
    def _many_headers(conn: socket.socket) -> None:
        fields = b"".join(b"X-%d: y\r\n" % i for i in range(5000))
        conn.sendall(b"HTTP/1.1 200 OK\r\n" + fields + b"Content-Length: 2\r\n\r\n{}")

    @staticmethod
    def _redirect(conn: socket.socket) -> None:
        port = conn.getsockname()[1]
        conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:%d/again\r\n"
                     b"Content-Length: 0\r\n\r\n" % port)

    def _drip(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        while not self._stopped.is_set():
            conn.sendall(b"X")
            time.sleep(0.5)


def main() -> None:
    """Serve every behaviour until stdin closes; the first line of output maps names to URLs.

    Benches run the servers in a process of their own, so what the servers cost (threads
    sending megabytes under the GIL) does not slow the bench's own measurements.
    """
    import json
    import sys

    servers = HostileServers()
    gzip_bomb()  # built before the first request, not during it
    print(json.dumps(servers._urls), flush=True)
    sys.stdin.read()
    servers.close()


if __name__ == "__main__":
    main()
