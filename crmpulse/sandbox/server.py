"""Run the sandbox with uvicorn, in the foreground (the CLI) or in a background thread."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any

import uvicorn

from .app import create_app
from .engine import SandboxSettings

__all__ = ["SandboxServer", "bind"]


def bind(host: str, port: int) -> socket.socket:
    """Bind a listening socket first, so the port (even port 0) is known before serving."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class SandboxServer:
    """A sandbox on ``host:port`` (port 0 picks a free one); use as a context manager.

        with SandboxServer(SandboxSettings(seed=50)) as sandbox:
            httpx.get(sandbox.url + "/healthz")
    """

    def __init__(self, settings: SandboxSettings | None = None, host: str = "127.0.0.1",
                 port: int = 0, **uvicorn_options: Any) -> None:
        self.settings = settings or SandboxSettings()
        self.app = create_app(self.settings)
        self.sock = bind(host, port)
        self.host = host
        self.port = self.sock.getsockname()[1]
        options: dict[str, Any] = {"log_level": "warning", "access_log": False, "lifespan": "on"}
        options.update(uvicorn_options)
        self.server = uvicorn.Server(uvicorn.Config(self.app, **options))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.server.config.ssl_certfile else "http"
        return f"{scheme}://{host}:{self.port}"

    def serve_forever(self) -> None:
        """Serve in this thread until SIGINT/SIGTERM."""
        self.server.run(sockets=[self.sock])

    def start(self, timeout: float = 15.0) -> SandboxServer:
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                        name="crmpulse-sandbox", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sandbox did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread:
            self._thread.join(timeout=10)
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
