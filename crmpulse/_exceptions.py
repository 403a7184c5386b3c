"""The exceptions crmpulse raises, as one small tree.

    CrmpulseError
    ├── ConfigError          the config or a profile is invalid; carries every Problem found
    ├── OperationError       a profile operation could not be rendered (missing variable, ...)
    └── TransportError       a request could not be completed (connect, timeout, TLS, ...)
        ├── AuthError        credentials were rejected or a token could not be fetched
        └── OriginError      refused before sending: credentials or load would go where the
                             config does not allow

Lower-level errors (httpx, yaml, pydantic) are translated once, at the boundary
where they happen, into one of these, and the CLI turns any of them into a one-line
message and an exit code (2 for bad config or usage, 1 for a failed run).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AuthError",
    "ConfigError",
    "CrmpulseError",
    "OperationError",
    "OriginError",
    "Problem",
    "TransportError",
]


class CrmpulseError(Exception):
    """Base of every error crmpulse raises on purpose."""


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a config file, located by file, line and key path."""

    file: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where} {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(CrmpulseError):
    """The config (or a profile it names) is invalid; ``problems`` lists every issue found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(set(problems), key=lambda p: (p.file, p.line, p.key, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))


class OperationError(CrmpulseError):
    """A profile operation could not be turned into a request."""


class TransportError(CrmpulseError):
    """A request to the CRM did not complete.

    ``reason`` is one of a bounded set (timeout, connect, dns, tls, protocol) so it can
    be used as a metric label.
    """

    def __init__(self, message: str, reason: str = "connect") -> None:
        super().__init__(message)
        self.reason = reason


class AuthError(TransportError):
    """The CRM refused our credentials, or a token could not be obtained."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="auth")


class OriginError(TransportError):
    """A request was refused before it was sent.

    Either it would carry a target's credentials to an origin the config does not name
    for them, or (in a load test) go to a host outside ``target.safety.allowed_hosts``.
    Its reason is ``assertion``: the URL came from a response or a variable that broke
    what the config allows, and nothing was sent.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="assertion")
