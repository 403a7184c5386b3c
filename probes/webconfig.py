"""TLS and basic auth for the exporter's own endpoints, in exporter-toolkit's format.

Prometheus exporters share one ``web-config.yml`` format, so users reuse what they
know::

    tls_server_config:
      cert_file: /etc/crmpulse/tls.crt
      key_file: /etc/crmpulse/tls.key
    basic_auth_users:
      prometheus: $2y$10$...        # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\\n')

Passwords are checked with bcrypt; a successful check is cached (by a SHA-256 of
user, password and hash) so a scrape every few seconds does not pay bcrypt's cost.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml

from crmpulse import ConfigError, Problem

__all__ = ["WebConfig", "basic_auth_middleware", "load_web_config"]


@dataclass
class WebConfig:
    cert_file: str | None = None
    key_file: str | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    _verified: set[bytes] = field(default_factory=set)

    def check(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        hashed = self.users.get(user)
        if hashed is None:
            bcrypt.checkpw(b"timing", b"$2b$10$" + b"." * 53)  # same cost whether or not user exists
            return False
        key = hashlib.sha256(b"\0".join([user.encode(), password.encode(), hashed])).digest()
        if any(hmac.compare_digest(key, known) for known in self._verified):
            return True
        try:
            ok = bcrypt.checkpw(password.encode(), hashed)
        except ValueError:
            return False
        if ok:
            self._verified.add(key)
        return ok


def load_web_config(path: str) -> WebConfig:
    """Parse a web-config.yml; raise ConfigError naming the key."""
    file = Path(path)
    try:
        data: Any = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        message = f"cannot read web config: {exc.__class__.__name__}"
        raise ConfigError([Problem(path, 0, "", message)]) from None
    problems = []
    if not isinstance(data, dict):
        raise ConfigError([Problem(path, 1, "", "expected a mapping")])
    for key in set(data) - {"tls_server_config", "basic_auth_users", "http_server_config"}:
        problems.append(Problem(path, 0, key, "unknown key"))
    config = WebConfig()
    tls = data.get("tls_server_config") or {}
    if tls:
        config.cert_file, config.key_file = tls.get("cert_file"), tls.get("key_file")
        for key in ("cert_file", "key_file"):
            value = tls.get(key)
            if not value or not (file.parent / value).exists():
                problems.append(Problem(path, 0, f"tls_server_config.{key}", "expected an existing file"))
        if config.cert_file:
            config.cert_file = str(file.parent / config.cert_file)
        if config.key_file:
            config.key_file = str(file.parent / config.key_file)
    for user, hashed in (data.get("basic_auth_users") or {}).items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            problems.append(Problem(path, 0, f"basic_auth_users.{user}", "expected a bcrypt hash"))
            continue
        config.users[str(user)] = hashed.replace("$2y$", "$2b$", 1).encode()
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
        if config.check(headers.get(b"authorization", b"").decode("latin-1")):
            await app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"www-authenticate", b'Basic realm="crmpulse"'),
                                (b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"Unauthorized\n"})

    return wrapped
