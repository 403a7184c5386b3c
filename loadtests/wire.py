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
import time
import weakref
from http.cookiejar import Cookie, CookieJar, DefaultCookiePolicy
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import gevent.ssl
from geventhttpclient.client import IDEMPOTENT_METHODS, HTTPClient
from geventhttpclient.header import Headers
from geventhttpclient.response import (
    HEADER_STATE_DONE,
    HTTPConnectionClosed,
    HTTPParseError,
    HTTPSocketPoolResponse,
)
from geventhttpclient.url import URL
from geventhttpclient.useragent import CompatRequest, CompatResponse

from crmpulse import TransportError
from crmpulse._decoding import ACCEPT_ENCODING, BadEncoding, BodyTooLarge, BoundedDecoder
from crmpulse.client import body_error
from crmpulse.config import Target
from crmpulse.origins import format_origin, origin_of
from crmpulse.profile import RenderedRequest

__all__ = ["MAX_BODY", "MAX_COOKIES", "MAX_HEAD", "Answer", "Wire", "query_string"]

#: the largest body a load test reads, raw or decoded (the probes' cap)
MAX_BODY = 16 * 1024 * 1024
#: the largest response head (status line and header fields) a load test reads
MAX_HEAD = 64 * 1024
#: cookies one user keeps a domain (RFC 6265 section 6.1 asks clients for at least 50)
#: and the largest one it takes (its minimum: 4096)
MAX_COOKIES, MAX_COOKIE = 50, 4096
_BLOCK = 64 * 1024
# A request target that needs no quoting: what URL(...).quoted_uri would leave as it is.
_PLAIN_URI = re.compile(r"/[A-Za-z0-9\-._~/?&=%:@!$'()*+,;]*")
# URL(...) drops these silently (WHATWG URL parsing), which would send the request to
# another resource; the probes' httpx refuses them, and so does the load test.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: connections not yet used for a request (a request that loses one is not sent again)
_FRESH: weakref.WeakSet[Any] = weakref.WeakSet()
#: bytes a response may be fed between two yields to the event loop
_YIELD_EVERY = 1024 * 1024


class Fields(Headers):
    """A response's header fields, case-insensitive, a repeated field read as one value joined
    with ", " (RFC 9110 section 5.3), by ``get``, ``[]`` and ``items()`` alike, as httpx reads
    them for the probes: geventhttpclient's own ``Headers`` gives a list, or each line apart.
    (``Headers.get`` reads ``self[field]``.) Cookies are read line by line (``get_all``)."""

    def __getitem__(self, field: str) -> str:  # type: ignore[override]
        value = super().__getitem__(field)
        return value if isinstance(value, str) else ", ".join(value)

    if TYPE_CHECKING:  # what Headers.get returns through __getitem__ above
        def get(self, field: str, default: Any = None) -> Any: ...

    def items(self) -> Any:
        return self.itermerged()


class Answer:
    """What a request got: (status, headers, body) unpacks from it; it is also the
    ``response`` Locust's request event carries, with what Locust's own listeners read
    (``status_code``; ``_request.payload`` for ``run_single_user(include_payload=True)``)."""

    __slots__ = ("content", "headers", "payload", "status_code", "url")

    def __init__(self, status_code: int, headers: Any, content: bytes, url: str,
                 payload: bytes | None = None) -> None:
        self.status_code, self.headers, self.content = status_code, headers, content
        self.url, self.payload = url, payload

    def __iter__(self) -> Any:
        return iter((self.status_code, self.headers, self.content))

    @property
    def _request(self) -> Answer:
        return self  # its .payload: the body sent

    @property
    def ok(self) -> bool:
        return 0 < self.status_code < 400

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class _Policy(DefaultCookiePolicy):
    """The standard library's cookie rules, within MAX_COOKIES cookies a domain of at most
    MAX_COOKIE bytes: a CRM setting new names on every response must not grow a user's jar,
    its Cookie header and the CPU both cost (inside the measured response time) without
    end. Past the cap a new cookie is refused (an update or a deletion of a held one is
    not); the standard library's rules already keep a domain's cookies from another's.
    """

    jar: CookieJar

    def set_ok(self, cookie: Cookie, request: Any) -> bool:
        if len(cookie.name) + len(cookie.value or "") > MAX_COOKIE or not super().set_ok(cookie, request):
            return False
        paths = self.jar._cookies.get(cookie.domain, {})  # type: ignore[attr-defined]
        if cookie.name in paths.get(cookie.path, {}):
            return True  # an update
        return sum(map(len, paths.values())) < MAX_COOKIES


class Wire:
    """One user's connections to the target's origins; :meth:`send` returns an :class:`Answer`."""

    def __init__(self, target: Target, max_body: int = MAX_BODY) -> None:
        self.timeout = float(target.timeout)
        self.tls = target.tls
        self.max_body = max_body
        #: "scheme://host:port/" as the URLs spell it -> its client
        self._clients: dict[str, HTTPClient] = {}
        policy = _Policy()
        self.cookies = policy.jar = CookieJar(policy)
        self._cookies_set = False
        # target.timeout bounds the whole request, as in the probes' clients: a socket
        # timeout bounds each read only, and a server dripping a byte a second never trips
        # it. One Timeout per user, restarted per request (a fresh one costs 3x as much);
        # the response checks the same deadline as it reads, for a socket that always has
        # data never lets the Timeout's timer run.
        self._deadline = gevent.Timeout(self.timeout)

    def send(self, request: RenderedRequest) -> Answer:
        """Send one request a Session flow yielded; TransportError (with a bounded message that
        names no path and no header value) when it fails."""
        url, method = request.url, request.method
        body: bytes | None = None
        if request.params:
            url += ("&" if "?" in url else "?") + query_string(request.params)
        deadline = self._deadline
        if deadline.pending:  # a custom journey sending from two greenlets of one user
            deadline = gevent.Timeout(self.timeout)
        deadline.start()
        deadline_at = time.monotonic() + self.timeout
        try:
            client, uri = self._route(url)
            fields = {"Accept-Encoding": ACCEPT_ENCODING, **request.headers}
            if request.json is not None:
                body = json.dumps(request.json, separators=(",", ":"), ensure_ascii=False).encode()
                names = {name.lower() for name in fields}
                if "content-type" not in names:
                    fields["Content-Type"] = "application/json"
                if "accept" not in names:
                    fields["Accept"] = "application/json"
            elif request.form is not None:
                body = urlencode(request.form).encode()
                fields["Content-Type"] = "application/x-www-form-urlencoded"
            elif request.content is not None:
                content = request.content
                body = content.encode() if isinstance(content, str) else content
            if self._cookies_set and (cookie := self._cookie(url, method, fields)):
                fields["Cookie"] = cookie
            response = _exchange(client, method, uri, body, fields, deadline_at)
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
            # a token request (sent without credentials: auth False) carries secrets in its body,
            # and the query string may hold what a template put there: listeners get neither
            return Answer(response.status_code, found, raw, request.url,
                          body if request.auth is not False else None)
        except TransportError:
            raise
        except gevent.Timeout as fired:
            if fired is not deadline:
                raise
            if fired is self._deadline:  # one that has fired fires again at once if restarted
                self._deadline = gevent.Timeout(self.timeout)
            # wherever it was cut off, the connection went back to the pool closed (the
            # sending loop and geventhttpclient's readers release it on any exception)
            raise describe(TimeoutError(), url) from None
        except (BodyTooLarge, BadEncoding) as exc:
            raise describe(exc, url, self.max_body) from None
        except Exception as exc:  # whatever the socket, TLS or parser raised
            raise describe(exc, url) from None
        finally:
            deadline.cancel()

    def _cookie(self, url: str, method: str, fields: dict[str, str]) -> str | None:
        """The Cookie header the jar gives this URL (its domain, path, secure and expiry rules);
        none when the request has its own (a session cookie in target.headers), which the
        standard library, Locust and httpx all leave as it is."""
        if any(name.lower() == "cookie" for name in fields):
            return None
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
        if _CONTROL.search(url):
            raise _InvalidURL
        parsed = URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise _InvalidURL
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
        client = HTTPClient.from_url(url, concurrency=1, connection_timeout=self.timeout,
                                     network_timeout=self.timeout, headers_type=Fields, **options)
        pool = client._connection_pool
        create = pool._create_socket

        def tagged() -> Any:  # so a request knows whether its connection is a kept-alive one
            sock = create()
            _FRESH.add(sock)
            return sock
        pool._create_socket = tagged  # type: ignore[method-assign]
        return client


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


class _InvalidURL(Exception):
    """A URL that is not http(s), or holds control characters."""


class _HandshakeFailed(Exception):
    """Connecting failed in TLS: the certificate, the protocol, the handshake itself."""


class _Response(HTTPSocketPoolResponse):
    """geventhttpclient's response, bounded in size and time as it is read.

    Its parser sets no limit of its own, and a socket that always has data never lets a
    gevent timer run: a CRM sending an endless header line, chunk extension or trailer
    would hold the whole worker (every user, Locust's own heartbeats and run-time limit)
    until memory ran out. So each block fed to the parser is counted: the head, and the
    trailer after the last chunk, up to MAX_HEAD bytes each (both are kept as Python
    strings); chunk sizes and extensions, which the C parser skips, up to MAX_HEAD plus 8
    times the body (a stream of one-byte chunks, as a framework writing JSON tokens sends,
    is 5 times); the deadline is checked, and every _YIELD_EVERY bytes the reader lets
    the event loop run (timers included). The probes' clients (h11) refuse such responses
    too.

    An interim response (100, 103) is not the end of the exchange: the socket is released
    at the final one only (geventhttpclient releases it at the interim one and returns a
    body cut at whatever the first read held).
    """

    _head = 0
    _trailer = 0
    _framing = 0
    _body = 0
    _fed = 0

    def __init__(self, sock: Any, pool: Any, deadline_at: float, **kw: Any) -> None:
        self._deadline_at = deadline_at
        super().__init__(sock, pool, **kw)

    def _on_message_complete(self) -> None:
        self.message_complete = True
        if self.get_code() >= 200:
            self.release()

    def feed(self, data: bytes) -> None:  # type: ignore[override]
        if self.headers_complete:
            before = len(self._body_buffer)
            super().feed(data)
            body = len(self._body_buffer) - before
            if self._header_state != HEADER_STATE_DONE:  # fields after the last chunk
                self._trailer += len(data) - body
                if self._trailer > MAX_HEAD:
                    raise HTTPParseError(f"response trailer larger than {MAX_HEAD} bytes")
            else:
                self._body += body
                self._framing += len(data) - body
                if self._framing > MAX_HEAD + 8 * self._body:
                    raise HTTPParseError("response framing larger than its body")
        else:
            super().feed(data)
            if not self.headers_complete:
                self._head += len(data)
                if self._head > MAX_HEAD:
                    raise HTTPParseError(f"response head larger than {MAX_HEAD} bytes")
        if time.monotonic() > self._deadline_at:
            raise TimeoutError
        self._fed += len(data)
        if self._fed >= _YIELD_EVERY:
            self._fed = 0
            gevent.sleep(0.0001)  # not sleep(0), which may come back before timers run


def _exchange(client: HTTPClient, method: str, uri: str, body: bytes | None,
              fields: dict[str, str], deadline_at: float) -> _Response:
    """``HTTPClient.request`` for what crmpulse sends (a whole body, never chunked, no
    ``Expect``), reading the answer as a :class:`_Response`.

    A request that meets a kept-alive connection the server has closed before answering
    is sent again on a fresh one (once per pooled connection, and one more) when its
    method is idempotent (RFC 9110 section 9.2.2: a POST may have been processed); one
    that loses a fresh connection is not: the server is failing, not racing.
    """
    head = client._build_request(method, uri, body=body or b"", headers=fields, chunked=False)
    data = head.encode("latin-1") + body if body else head.encode("latin-1")
    pool = client._connection_pool
    attempts = pool.size + 1
    while True:
        try:
            sock = pool.get_socket()
        except ssl.SSLError as exc:
            raise _HandshakeFailed from exc
        reused = sock not in _FRESH
        _FRESH.discard(sock)
        try:
            sock.sendall(data)
        except OSError as exc:
            if exc.errno not in (errno.ECONNRESET, errno.EPIPE) and not isinstance(exc, ssl.SSLEOFError):
                pool.release_socket(sock)
                raise
            # the server may have answered (a 413, a 401) and closed before reading it all
        except BaseException:
            pool.release_socket(sock)
            raise
        try:
            return _Response(sock, pool, deadline_at, block_size=client.block_size, method=method,
                             headers_type=Fields)
        except (HTTPConnectionClosed, ConnectionResetError, BrokenPipeError):
            # the response released the socket
            if reused and attempts > 0 and method in IDEMPOTENT_METHODS:
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
    elif isinstance(exc, _HandshakeFailed):
        error = TransportError("TLS handshake failed", "tls")
    elif isinstance(exc, _InvalidURL):
        error = TransportError("invalid URL", "connect")
    elif isinstance(exc, socket.gaierror):
        error = TransportError("name resolution failed", "dns")
    elif isinstance(exc, HTTPParseError | ConnectionResetError | BrokenPipeError | ssl.SSLEOFError
                    | ssl.SSLZeroReturnError | ssl.SSLSyscallError):
        # (an EOF after the handshake: the connection ended mid-way, as h11 sees it)
        error = TransportError("connection broken", "connect")
    elif isinstance(exc, ssl.SSLError):  # an alert: TLS 1.3 refuses a client certificate after
        error = TransportError("TLS handshake failed", "tls")  # the client's handshake is done
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
