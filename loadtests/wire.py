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

import contextlib
import errno
import functools
import json
import re
import socket
import ssl
from http.cookiejar import CookieJar
from typing import Any
from urllib.parse import urlencode

import gevent.ssl
from geventhttpclient.client import IDEMPOTENT_METHODS, HTTPClient
from geventhttpclient.header import Headers
from geventhttpclient.response import HTTPConnectionClosed, HTTPParseError, HTTPSocketPoolResponse
from geventhttpclient.url import URL
from geventhttpclient.useragent import CompatRequest, CompatResponse

from crmpulse import TransportError
from crmpulse._decoding import ACCEPT_ENCODING, BadEncoding, BodyTooLarge, BoundedDecoder
from crmpulse.client import body_error
from crmpulse.config import Target
from crmpulse.origins import format_origin, origin_of
from crmpulse.profile import RenderedRequest

__all__ = ["MAX_BODY", "Wire", "query_string"]

#: the largest body a load test reads, raw or decoded (the probes' cap)
MAX_BODY = 16 * 1024 * 1024
#: the largest response head (status line and header fields) a load test reads
MAX_HEAD = 64 * 1024
_BLOCK = 64 * 1024
# A request target that needs no quoting: what URL(...).quoted_uri would leave as it is.
_PLAIN_URI = re.compile(r"/[A-Za-z0-9\-._~/?&=%:@!$'()*+,;]*")
_JSON_HEADERS = (("Content-Type", "content-type", "application/json"),
                 ("Accept", "accept", "application/json"))


class Fields(Headers):
    """A response's header fields, case-insensitive, a repeated field read as one value joined
    with ", " (RFC 9110 section 5.3), as httpx reads it for the probes: geventhttpclient's own
    ``Headers`` gives a list then, which no caller expects of ``headers.get``. Cookies are
    read apart, line by line (``get_all``)."""

    def __getitem__(self, field: str) -> str:  # type: ignore[override]
        value = super().__getitem__(field)
        return value if isinstance(value, str) else ", ".join(value)

    def get(self, field: str, default: Any = None) -> Any:
        try:
            return self[field]
        except KeyError:
            return default


class Wire:
    """One user's connections to the target's origins; :meth:`send` returns (status, headers, body)."""

    def __init__(self, target: Target, max_body: int = MAX_BODY) -> None:
        self.timeout = float(target.timeout)
        self.tls = target.tls
        self.max_body = max_body
        #: "scheme://host:port/" as the URLs spell it -> its client
        self._clients: dict[str, HTTPClient] = {}
        self.cookies = CookieJar()
        self._cookies_set = False
        # target.timeout bounds the whole request, as in the probes' clients: a socket
        # timeout bounds each read only, and a server dripping a byte a second never trips
        # it. One Timeout per user, restarted per request (a fresh one costs 3x as much).
        self._deadline = gevent.Timeout(self.timeout)

    def send(self, request: RenderedRequest) -> tuple[int, Any, bytes]:
        """Send one request a Session flow yielded: (status, headers, body), or TransportError
        (with a bounded message that names no path and no header value)."""
        url, method = request.url, request.method
        body: bytes | None = None
        if request.params:
            url += ("&" if "?" in url else "?") + query_string(request.params)
        deadline = self._deadline
        deadline.start()
        client = None
        try:
            client, uri = self._route(url)
            fields = {"Accept-Encoding": ACCEPT_ENCODING, **request.headers}
            if request.json is not None:
                body = json.dumps(request.json, separators=(",", ":"), ensure_ascii=False).encode()
                for name, lower, value in _JSON_HEADERS:
                    if name not in fields and lower not in fields:
                        fields[name] = value
            elif request.form is not None:
                body = urlencode(request.form).encode()
                fields["Content-Type"] = "application/x-www-form-urlencoded"
            elif request.content is not None:
                content = request.content
                body = content.encode() if isinstance(content, str) else content
            if self._cookies_set and (cookie := self._cookie(url, method)):
                fields["Cookie"] = cookie
            response = _exchange(client, method, uri, body, fields)
            raw = _read(response, self.max_body)
            found: Fields = response._headers_index  # type: ignore[assignment]  # our headers_type
            if "set-cookie" in found:
                asked = CompatRequest(url, method=method, headers=Headers())
                self.cookies.extract_cookies(CompatResponse(response, asked), asked)  # type: ignore[arg-type]
                self._cookies_set = True
            encoding = found.get("content-encoding")
            if encoding and encoding != "identity":
                decoder = BoundedDecoder(encoding, self.max_body)
                raw = decoder.feed(raw) + decoder.flush()
            return response.status_code, found, raw
        except TransportError:
            raise
        except gevent.Timeout as fired:
            if fired is not deadline:
                raise
            # a Timeout that has fired fires again at once when restarted (gevent 24-26)
            self._deadline = gevent.Timeout(self.timeout)
            # The request was cut off wherever it was, perhaps holding its connection
            # outside the pool: the origin's client is dropped, the next request opens anew.
            if client is not None:
                self._drop(client)
            raise describe(TimeoutError(), url) from None
        except (BodyTooLarge, BadEncoding) as exc:
            raise describe(exc, url, self.max_body) from None
        except Exception as exc:  # whatever the socket, TLS or parser raised
            raise describe(exc, url) from None
        finally:
            deadline.cancel()

    def _drop(self, client: HTTPClient) -> None:
        for prefix, known in list(self._clients.items()):
            if known is client:
                del self._clients[prefix]
        client.close()

    def _cookie(self, url: str, method: str) -> str | None:
        """The Cookie header the jar gives this URL (its domain, path, secure and expiry rules)."""
        request = CompatRequest(url, method=method, headers=Headers())
        self.cookies.add_cookie_header(request)
        cookie = request.headers.get("Cookie")
        return cookie if isinstance(cookie, str) else None

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
        known = self._clients.get(prefix)
        if known is None:
            known = self._clients[prefix] = self._client(parsed)
        return known, parsed.quoted_uri

    def _client(self, url: URL) -> HTTPClient:
        options: dict[str, Any] = {}
        if url.scheme == "https":
            tls = self.tls
            context = tls_context(tls.verify, tls.ca_file, tls.client_cert, tls.client_key)
            options = {"ssl_context_factory": lambda cafile=None: context, "insecure": not tls.verify}
        return HTTPClient.from_url(url, concurrency=1, connection_timeout=self.timeout,
                                   network_timeout=self.timeout, headers_type=Fields, **options)


def query_string(params: dict[str, Any]) -> str:
    """``urlencode(params, doseq=True)``; plain letters and digits skip its quoting, which
    leaves them as they are (a search for "Smith" is the common case)."""
    parts = []
    for key, value in params.items():
        if not (key.__class__ is str and value.__class__ is str and key.isalnum() and value.isalnum()
                and key.isascii() and value.isascii()):
            return urlencode(params, doseq=True)
        parts.append(f"{key}={value}")
    return "&".join(parts)


@functools.cache
def tls_context(verify: bool, ca_file: str | None, client_cert: str | None,
                client_key: str | None) -> ssl.SSLContext:
    """The target's ``tls`` as an SSL context, as the probes build it (crmpulse.client).

    One per process and setting, shared by every user: a context holds the parsed CA
    store (about a megabyte, some milliseconds to build), which a thousand users need not
    each hold; connections keep their own TLS state.
    """
    if verify:
        context = gevent.ssl.create_default_context(cafile=ca_file)
    else:
        context = gevent.ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if client_cert:
        context.load_cert_chain(client_cert, client_key)
    return context


class _Response(HTTPSocketPoolResponse):
    """geventhttpclient's response, refused once its head passes MAX_HEAD bytes.

    Its parser sets no limit of its own: a CRM sending one endless header line would fill
    memory until the deadline. The probes' clients (h11) refuse such a head too.
    """

    _head = 0

    def feed(self, data: bytes) -> None:  # type: ignore[override]
        super().feed(data)
        if not self.headers_complete:
            self._head += len(data)
            if self._head > MAX_HEAD:
                raise HTTPParseError(f"response head larger than {MAX_HEAD} bytes")


def _exchange(client: HTTPClient, method: str, uri: str, body: bytes | None,
              fields: dict[str, str]) -> _Response:
    """``HTTPClient.request`` for what crmpulse sends (a whole body, never chunked, no
    ``Expect``), reading the answer as a :class:`_Response`.

    As geventhttpclient does, a request that meets a connection the server has closed
    before answering is sent again on a fresh one, up to the pool's size + 1 times, when its
    method is idempotent (RFC 9110 section 9.2.2: a POST may have been processed).
    """
    head = client._build_request(method, uri, body=body or b"", headers=fields, chunked=False)
    data = head.encode("latin-1") + body if body else head.encode("latin-1")
    pool = client._connection_pool
    attempts = pool.size + 1
    while True:
        sock = pool.get_socket()
        try:
            sock.sendall(data)
        except OSError as exc:
            if exc.errno not in (errno.ECONNRESET, errno.EPIPE):
                pool.release_socket(sock)
                raise
            # the server may have answered (a 413, a 401) and closed before reading it all
        except BaseException:
            pool.release_socket(sock)
            raise
        try:
            return _Response(sock, pool, block_size=client.block_size, method=method, headers_type=Fields)
        except (HTTPConnectionClosed, ConnectionResetError, BrokenPipeError):
            # the response released the socket
            if attempts > 0 and method in IDEMPOTENT_METHODS:
                attempts -= 1
                continue
            raise


def _read(response: Any, limit: int) -> bytes:
    """The whole raw body, refused past ``limit`` bytes; the connection goes back to its pool."""
    body: bytes = response.read(_BLOCK)
    if len(body) < _BLOCK:  # read(n) stops short only at the end of the body
        return body
    parts = [body]
    size = len(body)
    while chunk := response.read(_BLOCK):
        size += len(chunk)
        if size > limit:
            response.release()  # closes it: a body cut off leaves the connection unusable
            raise BodyTooLarge
        parts.append(chunk)
    return b"".join(parts)


def describe(exc: BaseException, url: str, max_body: int = MAX_BODY) -> TransportError:
    """A transport failure as a TransportError: a bounded reason, the origin, no path or header.

    The wording is the probes' clients' (crmpulse.client), so a failure reads the same in a
    load test's report as in a probe's metric.
    """
    if isinstance(exc, BodyTooLarge | BadEncoding):
        return body_error(exc, max_body)
    if isinstance(exc, TimeoutError | socket.timeout):
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
    with contextlib.suppress(ValueError):
        error.args = (f"{error.args[0]} ({format_origin(origin_of(url))})",)
    return error
