"""TLS and basic auth for the exporter's own endpoints, in exporter-toolkit's format.

Prometheus exporters share one ``web-config.yml`` format, so users reuse what they
know::

    tls_server_config:
      cert_file: /etc/crmpulse/tls.crt
      key_file: /etc/crmpulse/tls.key
    basic_auth_users:
      prometheus: $2y$10$...        # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\\n')

The file is checked whole when it loads, every problem located by line: its shape,
each hash (a bcrypt hash of a sane cost), and the certificate and key (they exist and
load together). Relative paths are relative to the file's folder.

Passwords are checked with bcrypt in a worker thread, never on the event loop, so a
flood of wrong passwords cannot stall scrapes; a successful check is cached (by a
SHA-256 of user, password and hash) so a scrape every few seconds does not pay
bcrypt's cost. An unknown user is checked against a dummy hash of the same cost as
the configured ones, so the time an answer takes does not tell which users exist.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import bcrypt
from pydantic import AfterValidator, BaseModel, ConfigDict

from crmpulse import ConfigError, Problem
from crmpulse._files import cert_pair_problem, resolve
from crmpulse._validate import validate_document
from crmpulse._yamlfile import load_yaml

__all__ = ["WebConfig", "basic_auth_middleware", "load_web_config"]

_BCRYPT = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
#: bcrypt checks waiting for a thread, at most; past it a request is answered 503 at once
MAX_PENDING = 64


def _check_hash(value: str) -> str:
    match = _BCRYPT.fullmatch(value)
    # the hash itself is never echoed: it is what an attacker would crack offline
    if match is None:
        raise ValueError('expected a bcrypt hash like "$2y$10$" followed by 53 characters '
                         "(htpasswd -nBC 10 \"\" | tr -d ':\\n'), got a malformed one")
    if not 4 <= int(match.group(1)) <= 31:
        raise ValueError(f"expected a bcrypt cost from 04 to 31, got {match.group(1)}")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _TLSServerConfig(_Model):
    cert_file: str
    key_file: str


class _WebConfigFile(_Model):
    tls_server_config: _TLSServerConfig | None = None
    basic_auth_users: dict[str, Annotated[str, AfterValidator(_check_hash)]] = {}


@dataclass
class WebConfig:
    cert_file: str | None = None
    key_file: str | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    _verified: set[bytes] = field(default_factory=set)
    _dummy: bytes = b""
    _pool: ThreadPoolExecutor | None = None
    _pending: int = 0

    def __post_init__(self) -> None:
        if self.users:  # the dummy costs what the dearest configured hash costs
            cost = max(int(h[4:6]) for h in self.users.values())
            self._dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=cost))

    @staticmethod
    def _credentials(header: str) -> tuple[str, str] | None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError, binascii.Error):
            return None
        return (user, password) if sep else None

    def _key(self, user: str, password: str, hashed: bytes) -> bytes:
        return hashlib.sha256(b"\0".join([user.encode(), password.encode(), hashed])).digest()

    def _cached(self, user: str, password: str) -> bool:
        hashed = self.users.get(user)
        if hashed is None:
            return False
        key = self._key(user, password, hashed)
        # tuple(): worker threads add to the set; copying it is one step under the GIL
        return any(hmac.compare_digest(key, known) for known in tuple(self._verified))

    def _verify(self, user: str, password: str) -> bool:
        """The bcrypt check itself (slow by design): run it in a worker thread."""
        hashed = self.users.get(user)
        if hashed is None:
            bcrypt.checkpw(password.encode(), self._dummy)  # same cost whether or not user exists
            return False
        try:
            ok = bcrypt.checkpw(password.encode(), hashed)
        except ValueError:
            return False
        if ok:
            self._verified.add(self._key(user, password, hashed))
        return ok

    def check(self, header: str) -> bool:
        """Whether an Authorization header names a configured user and password (blocking)."""
        credentials = self._credentials(header)
        if credentials is None:
            return False
        return self._cached(*credentials) or self._verify(*credentials)

    async def acheck(self, header: str) -> bool | None:
        """:meth:`check` off the event loop; None when too many checks are already waiting."""
        credentials = self._credentials(header)
        if credentials is None:
            return False
        if self._cached(*credentials):
            return True
        if self._pending >= MAX_PENDING:
            return None
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="crmpulse-bcrypt")
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, self._verify,
                                                                    *credentials)
        finally:
            self._pending -= 1


def load_web_config(path: str) -> WebConfig:
    """Parse and check a web-config.yml; raise ConfigError listing every problem by line."""
    file = Path(path)
    doc, problems = load_yaml(file, path)
    if doc is None:
        raise ConfigError(problems)
    if doc.data in ({}, None):
        return WebConfig()
    if not isinstance(doc.data, dict):
        raise ConfigError([Problem(path, 1, "", "expected a mapping with tls_server_config "
                                   "and/or basic_auth_users")])
    parsed, more = validate_document(_WebConfigFile, doc)
    problems += more
    if parsed is None:
        raise ConfigError(problems)
    config = WebConfig(users={user: hashed.replace("$2y$", "$2b$", 1).encode()
                              for user, hashed in parsed.basic_auth_users.items()})
    tls = parsed.tls_server_config
    if tls is not None:
        cert, key = resolve(tls.cert_file, file.parent), resolve(tls.key_file, file.parent)
        message = cert_pair_problem(cert, key, tls.cert_file, tls.key_file)
        if message:
            problems.append(doc.lines.problem(("tls_server_config", "cert_file"), message))
        config.cert_file, config.key_file = str(cert), str(key)
    if problems:
        raise ConfigError(problems)
    return config


def basic_auth_middleware(app: Any, config: WebConfig) -> Any:
    """Wrap an ASGI app so every HTTP request needs one of the configured users."""
    if not config.users:
        return app

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        allowed = await config.acheck(headers.get(b"authorization", b"").decode("latin-1"))
        if allowed:
            await app(scope, receive, send)
            return
        status, body = (401, b"Unauthorized\n") if allowed is False else (
            503, b"Too many authentication attempts in progress\n")
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"www-authenticate", b'Basic realm="crmpulse"'),
                                (b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body})

    return wrapped
