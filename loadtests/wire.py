"""The load test's HTTP path: geventhttpclient's pooled client, without Locust's wrappers.

Locust's ``FastHttpUser.client.request`` puts four layers around geventhttpclient's
``HTTPClient.request``: Locust's session (URL building, header copies, a context
dict, its request event), geventhttpclient's ``UserAgent`` (a request object, a
cookie jar pass, retry and redirect loops), Locust's response wrapper and, with
``catch_response``, a second wrapper to judge the request. crmpulse needs none of them:
its ``Session`` flow builds the URL and headers, follows nothing, judges every reply
itself and reports to Locust's statistics through ``events.request``, as Locust's own
session does. Measured (bench/loadtest_overhead.py, docs/benchmarks.md), those layers
cost about as much CPU per request as everything crmpulse does on top, so a user sends
requests here directly, on the same connection pool a FastHttpUser would use.

What the layers did and a load test still needs is kept, and checked by tests:
connections are pooled and kept alive per origin; ``Accept-Encoding`` asks for what
crmpulse can decode within its cap (the probes' :class:`~crmpulse._decoding.BoundedDecoder`,
16 MiB, raw and decoded), so a decompression bomb cannot fill a worker's memory;
cookies a CRM sets (a load balancer's affinity cookie, Salesforce's ``BrowserId``) go
back on later requests through the standard library's cookie jar, which is only
consulted once a response has set one. What changes against a plain FastHttpUser:
the target's ``tls`` (``verify``, ``ca_file``, client certificate) and ``timeout``
apply to load tests as they do to probes (a FastHttpUser verifies no certificate and
waits 60 s), and a transport failure is reported with the same bounded wording as a
probe's (``connection failed (https://crm.example.com)``), never with the URL's path,
which may hold record ids, nor with a header's value, which may hold a token.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
from http.cookiejar import CookieJar
from typing import Any

import gevent.ssl
from geventhttpclient.client import HTTPClient
from geventhttpclient.header import Headers
from geventhttpclient.response import HTTPConnectionClosed, HTTPParseError
from geventhttpclient.url import URL
from geventhttpclient.useragent import CompatRequest, CompatResponse

from crmpulse import TransportError
from crmpulse._decoding import ACCEPT_ENCODING, BadEncoding, BodyTooLarge, BoundedDecoder
from crmpulse.config import TLS, Target
from crmpulse.origins import format_origin, origin_of

__all__ = ["MAX_BODY", "Wire"]

#: the largest body a load test reads, raw or decoded (the probes' cap)
MAX_BODY = 16 * 1024 * 1024
_BLOCK = 64 * 1024
# A request target that needs no quoting: what URL(...).quoted_uri would leave as it is.
_PLAIN_URI = re.compile(r"/[A-Za-z0-9\-._~/?&=%:@!$'()*+,;]*")
_JSON_HEADERS = (("Content-Type", "content-type", "application/json"),
                 ("Accept", "accept", "application/json"))


class Wire:
    """One user's connections to the target's origins; :meth:`send` returns (status, headers, body)."""

    def __init__(self, target: Target, concurrency: int = 1) -> None:
        self.timeout = float(target.timeout)
        self.tls = target.tls
        self.concurrency = concurrency
        self._context: ssl.SSLContext | None = None
        #: "scheme://host:port/" as the URLs spell it -> its client
        self._clients: dict[str, HTTPClient] = {}
        self.cookies = CookieJar()
        self._cookies_set = False

    def send(self, method: str, url: str, headers: dict[str, str], body: bytes | str | None = None,
             json_body: Any = None) -> tuple[int, Any, bytes]:
        """Send one request; TransportError (with a bounded, path-free message) when it fails."""
        try:
            client, uri = self._route(url)
            fields = {"Accept-Encoding": ACCEPT_ENCODING, **headers}
            if json_body is not None:
                body = json.dumps(json_body, separators=(",", ":"), ensure_ascii=False).encode()
                for name, lower, value in _JSON_HEADERS:
                    if name not in fields and lower not in fields:
                        fields[name] = value
            if self._cookies_set and (cookie := self._cookie(url, method)):
                fields["Cookie"] = cookie
            response = client.request(method, uri, body=body, headers=fields)
            raw = _read(response)
            found = response._headers_index  # a Headers; `headers` is a generator of pairs
            if "set-cookie" in found:
                request = CompatRequest(url, method=method, headers=Headers())
                self.cookies.extract_cookies(CompatResponse(response, request), request)  # type: ignore[arg-type]
                self._cookies_set = True
            encoding = found.get("content-encoding")
            if encoding and encoding != "identity":
                decoder = BoundedDecoder(encoding, MAX_BODY)
                raw = decoder.feed(raw) + decoder.flush()
            return response.status_code, found, raw
        except TransportError:
            raise
        except Exception as exc:  # whatever the socket, TLS or parser raised
            raise describe(exc, url) from None

    def _cookie(self, url: str, method: str) -> str | None:
        """The Cookie header the jar gives this URL (its domain, path, secure and expiry rules)."""
        request = CompatRequest(url, method=method, headers=Headers())
        self.cookies.add_cookie_header(request)
        cookie: str | None = request.headers.get("Cookie")
        return cookie

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def _route(self, url: str) -> tuple[HTTPClient, str]:
        """The client for the URL's origin, and the request target to send it."""
        for prefix, client in self._clients.items():
            if url.startswith(prefix):
                uri = url[len(prefix) - 1:]
                if _PLAIN_URI.fullmatch(uri):
                    return client, uri
                break
        parsed = URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise TransportError("invalid URL", "connect")
        scheme, host, port = origin_of(url)
        prefix = f"{format_origin((scheme, host, port))}/"
        client = self._clients.get(prefix)
        if client is None:
            client = self._clients[prefix] = self._client(parsed)
        return client, parsed.quoted_uri

    def _client(self, url: URL) -> HTTPClient:
        options: dict[str, Any] = {}
        if url.scheme == "https":
            if self._context is None:
                self._context = tls_context(self.tls)
            context = self._context
            options = {"ssl_context_factory": lambda cafile=None: context, "insecure": not self.tls.verify}
        return HTTPClient.from_url(url, concurrency=self.concurrency, connection_timeout=self.timeout,
                                   network_timeout=self.timeout, **options)


def tls_context(tls: TLS) -> ssl.SSLContext:
    """The target's ``tls`` as an SSL context, as the probes build it (crmpulse.client)."""
    if tls.verify:
        context = gevent.ssl.create_default_context(cafile=tls.ca_file)
    else:
        context = gevent.ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.client_cert:
        context.load_cert_chain(tls.client_cert, tls.client_key)
    return context


def _read(response: Any) -> bytes:
    """The whole raw body, refused past MAX_BODY bytes; the connection goes back to its pool."""
    body: bytes = response.read(_BLOCK)
    if len(body) < _BLOCK:  # read(n) stops short only at the end of the body
        return body
    parts = [body]
    size = len(body)
    while chunk := response.read(_BLOCK):
        size += len(chunk)
        if size > MAX_BODY:
            response.release()  # closes it: a body cut off leaves the connection unusable
            raise BodyTooLarge
        parts.append(chunk)
    return b"".join(parts)


def describe(exc: BaseException, url: str) -> TransportError:
    """A transport failure as a TransportError: a bounded reason, the origin, no path or header."""
    if isinstance(exc, BodyTooLarge):
        error = TransportError(f"response body larger than {MAX_BODY} bytes", "assertion")
    elif isinstance(exc, BadEncoding):
        error = TransportError(f"response body refused: {exc}", "assertion")
    elif isinstance(exc, TimeoutError | socket.timeout):
        error = TransportError("timed out", "timeout")
    elif isinstance(exc, ssl.SSLError | ssl.CertificateError):
        error = TransportError("TLS handshake failed", "tls")
    elif isinstance(exc, socket.gaierror):
        error = TransportError("name resolution failed", "dns")
    elif isinstance(exc, HTTPConnectionClosed | HTTPParseError | ConnectionResetError | BrokenPipeError):
        error = TransportError("connection broken", "connect")
    elif isinstance(exc, OSError):
        error = TransportError("connection failed", "connect")
    elif isinstance(exc, ValueError):  # geventhttpclient refused a header or the URL: never echo it
        error = TransportError("request refused before sending: a header or the URL is not valid HTTP",
                               "protocol")
    else:
        error = TransportError(exc.__class__.__name__, "connect")
    try:
        error.args = (f"{error.args[0]} ({format_origin(origin_of(url))})",)
    except ValueError:
        pass
    return error
