"""Redact every secret crmpulse knows of, in every output it writes.

One registry per process holds each secret value: what ``${env:..}`` and ``${file:..}``
references resolved to (URL user-info such as ``http://user:${env:X}@host`` included),
the header values credentials become (``Basic dXNlcjpwYXNz``, ``Bearer ...``), and
tokens obtained at run time. Each value is also registered in the forms an output
might carry it in (JSON-escaped, HTML-escaped, URL-quoted), so a report or a page
cannot show it by escaping it first.

The outputs then pass through one of these:

- :func:`redact` / :func:`redact_bytes` for text a component writes itself (load-test
  reports, the exporter's debug output);
- :func:`guard_outputs` wraps ``sys.stdout``/``sys.stderr`` and makes every log record's
  message (and traceback) redacted, at every level, whatever handler writes it (the CLI
  runs every verb inside it);
- :func:`redacting_app` wraps an ASGI app so every response body is redacted (the
  exporter's landing page, ``/metrics``, ``/probe?debug=true``).

    register("s3cr3t-value")
    redact("token=s3cr3t-value")        # 'token=****'

Values shorter than :data:`MIN_LENGTH` characters are not registered: masking every
``"80"`` or ``"abc"`` in an output would garble it and protect nothing a guess would not
find. Config validation has already refused secrets written in the file itself.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import logging
import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, TextIO
from urllib.parse import quote, quote_plus

__all__ = [
    "MASK",
    "MIN_LENGTH",
    "RedactingStream",
    "guard_outputs",
    "redact",
    "redact_bytes",
    "redacting_app",
    "register",
    "registered",
]

MASK = "****"
MIN_LENGTH = 4
#: Tokens obtained at run time are kept for this many refreshes: older ones have expired.
RUNTIME_KEEP = 256


class _Registry:
    """The process's secret values and a pattern matching any of them (rebuilt on change)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._permanent: dict[str, None] = {}
        self._runtime: OrderedDict[str, None] = OrderedDict()
        self._text: tuple[tuple[str, ...], re.Pattern[str] | None] = ((), None)
        self._bytes: tuple[tuple[bytes, ...], re.Pattern[bytes] | None] = ((), None)

    def add(self, value: str, runtime: bool = False) -> None:
        if not isinstance(value, str) or len(value) < MIN_LENGTH:
            return
        value = str(value)  # a SecretValue subclass must not keep its reference alive here
        with self._lock:
            if value in self._runtime:
                self._runtime.move_to_end(value)
            if value in self._permanent or value in self._runtime:
                return
            if runtime:
                self._runtime[value] = None
                while len(self._runtime) > RUNTIME_KEEP:
                    self._runtime.popitem(last=False)
            else:
                self._permanent[value] = None
            self._rebuild()

    def _rebuild(self) -> None:
        forms: set[str] = set()
        for value in (*self._permanent, *self._runtime):
            forms.update(_forms(value))
        ordered = tuple(sorted((f for f in forms if len(f) >= MIN_LENGTH), key=len, reverse=True))
        if not ordered:
            self._text, self._bytes = ((), None), ((), None)
            return
        self._text = (ordered, re.compile("|".join(re.escape(f) for f in ordered)))
        encoded = tuple(f.encode() for f in ordered)
        self._bytes = (encoded, re.compile(b"|".join(re.escape(f) for f in encoded)))

    def values(self) -> tuple[str, ...]:
        return (*self._permanent, *self._runtime)

    def text(self) -> tuple[tuple[str, ...], re.Pattern[str] | None]:
        return self._text

    def binary(self) -> tuple[tuple[bytes, ...], re.Pattern[bytes] | None]:
        return self._bytes


def _forms(value: str) -> set[str]:
    """The value as outputs may carry it: raw, JSON- and HTML-escaped, URL-quoted."""
    return {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1],
            html.escape(value), html.escape(value, quote=False), quote(value, safe=""),
            quote(value), quote_plus(value)}


_REGISTRY = _Registry()


def register(value: str | None, runtime: bool = False) -> None:
    """Remember a secret value; ``runtime`` for tokens fetched while running (kept bounded)."""
    if value:
        _REGISTRY.add(value, runtime=runtime)


def registered() -> tuple[str, ...]:
    """Every secret value registered so far (for tests and for scrubbing files)."""
    return _REGISTRY.values()


def redact(text: str) -> str:
    """``text`` with every registered secret (in any of its forms) replaced by ``****``."""
    forms, pattern = _REGISTRY.text()
    # Scanning with `in` is far faster than a regex over text that holds no secret,
    # which is nearly always the case (a /metrics page, a log line).
    if pattern is None or not any(form in text for form in forms):
        return text
    return pattern.sub(MASK, text)


def redact_bytes(data: bytes) -> bytes:
    """:func:`redact` for UTF-8 bytes (response bodies)."""
    forms, pattern = _REGISTRY.binary()
    if pattern is None or not any(form in data for form in forms):
        return data
    return pattern.sub(MASK.encode(), data)


# -- standard streams and logging ------------------------------------------------------


class RedactingStream(io.TextIOBase):
    """A text stream that redacts what it writes, a line at a time.

    Lines are held until complete so a secret written in two pieces is still caught;
    ``flush`` writes what is pending.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._pending = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            if "\n" in self._pending:
                complete, _, self._pending = self._pending.rpartition("\n")
                self.stream.write(redact(complete + "\n"))
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                self.stream.write(redact(self._pending))
                self._pending = ""
        self.stream.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", "utf-8")

    @property
    def buffer(self) -> Any:
        raise io.UnsupportedOperation("crmpulse redacts its output: write text, not bytes")


def _redacting_record_factory(factory: Any) -> Any:
    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        original = record.getMessage
        record.getMessage = lambda: redact(original())
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return record

    make.crmpulse_redacting = True  # type: ignore[attr-defined]
    return make


def redact_logging() -> None:
    """Make every log record's message and traceback redacted, whichever handler writes it."""
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "crmpulse_redacting", False):
        logging.setLogRecordFactory(_redacting_record_factory(factory))


@contextlib.contextmanager
def guard_outputs() -> Iterator[None]:
    """Redact everything written to stdout and stderr, and every log record, inside the block."""
    redact_logging()
    out, err = sys.stdout, sys.stderr
    wrapped_out = out if isinstance(out, RedactingStream) else RedactingStream(out)
    wrapped_err = err if isinstance(err, RedactingStream) else RedactingStream(err)
    sys.stdout, sys.stderr = wrapped_out, wrapped_err
    try:
        yield
    finally:
        for stream in (wrapped_out, wrapped_err):
            with contextlib.suppress(Exception):
                stream.flush()
        sys.stdout, sys.stderr = out, err


# -- HTTP responses -----------------------------------------------------------------------


def redacting_app(app: Any) -> Any:
    """Wrap an ASGI app so every response body is redacted (lengths fixed up).

    A single-chunk body (what the exporter sends) is redacted whole and its
    Content-Length corrected. A streamed body is redacted chunk by chunk, holding
    back the last few bytes of each chunk in case a secret straddles two.
    """

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        start: dict[str, Any] | None = None
        carry = b""

        async def send_redacted(message: dict[str, Any]) -> None:
            nonlocal start, carry
            if message["type"] == "http.response.start":
                start = message  # held until the body says how long it really is
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            body = carry + message.get("body", b"")
            more = message.get("more_body", False)
            if start is not None:
                headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                if not more:
                    body = redact_bytes(body)
                    headers.append((b"content-length", str(len(body)).encode()))
                await send({**start, "headers": headers})
                start = None
                if not more:
                    await send({"type": "http.response.body", "body": body})
                    return
            if more:
                emit, carry = _split_for_stream(body)
                await send({"type": "http.response.body", "body": redact_bytes(emit),
                            "more_body": True})
            else:
                carry = b""
                await send({"type": "http.response.body", "body": redact_bytes(body)})

        await app(scope, receive, send_redacted)

    return wrapped


def _split_for_stream(data: bytes) -> tuple[bytes, bytes]:
    """Cut ``data`` where no registered secret straddles the cut; keep the tail for later."""
    forms, pattern = _REGISTRY.binary()
    if pattern is None:
        return data, b""
    longest = max(len(f) for f in forms)
    cut = max(0, len(data) - (longest - 1))
    for match in pattern.finditer(data, max(0, cut - longest)):
        if match.start() < cut < match.end():
            cut = match.start()
    return data[:cut], data[cut:]
