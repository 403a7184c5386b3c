"""Serve an ASGI app with uvicorn on a socket bound up front (the exporter, live metrics).

The sandbox has its own copy of ``bind``: it imports nothing from the toolkit, by design.
"""

from __future__ import annotations

import socket
from typing import Any

import uvicorn

__all__ = ["bind", "parse_listen", "server_for"]


def parse_listen(listen: str) -> tuple[str, int]:
    """``"127.0.0.1:9687"``, ``"[::1]:9687"`` or ``":9687"`` -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise ValueError(f'expected host:port like "127.0.0.1:9687", got "{listen}"')
    return host.strip("[]") or "127.0.0.1", int(port)


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def server_for(app: Any, **options: Any) -> uvicorn.Server:
    config: dict[str, Any] = {"log_level": "warning", "access_log": False, "lifespan": "on"}
    config.update({k: v for k, v in options.items() if v is not None})
    return uvicorn.Server(uvicorn.Config(app, **config))
