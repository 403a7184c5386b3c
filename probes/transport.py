"""The probes' HTTP/1.1 transport: one fresh connection per request, run by socket callbacks.

    http = httpx.AsyncClient(transport=ProbeTransport(ssl_context))

Why probes do not use httpx's default transport (httpcore). A probe reports how long
the CRM took. On one event loop, a coroutine that sends a request and awaits the
reply resumes only when the loop gets to it: with eight probes in flight, each one's
reply waits behind the others' Python work, and each reported duration grows by that
wait (bench/probe_vs_blackbox.py measured 7.9 ms where blackbox_exporter saw 1.7 ms).

Here the exchange runs in readiness callbacks on the socket, which the loop calls
straight from its poll: the connect callback starts TLS (through ``ssl.MemoryBIO``) or
writes the request at once, and each read feeds TLS and the C parser llhttp
(httptools) at once. Every read takes the kernel's arrival stamp (``SO_TIMESTAMPNS``)
and the connect takes the kernel's handshake time (``tcpi_rtt``), so data that waited
in the socket while the loop was busy is dated when it arrived. Where the loop was
late to send what the CRM waited for, the CRM's timeline moved by that much (the
*shift*); that, and the time from an event to the coroutine picking it up (the
*stall*, :class:`_Clock`), are the exporter's time, handed to the probe's
:class:`~crmpulse.client.ProbeContext` and left out of what it reports
(docs/probes.md, "True durations under concurrency").

It is also leaner than httpcore for this job: no connection pool (probes never reuse
connections, as blackbox_exporter does not) and no anyio layer;
bench/probe_vs_blackbox.py measures the CPU per probe.

Bounds against a hostile server: the response head (status line and headers) may not
exceed :data:`MAX_HEAD_BYTES` nor :data:`MAX_HEADERS` fields; the body is buffered only
up to :data:`HIGH_WATER` before reading pauses, so memory follows what the caller
consumes (the client stops at the check's ``max_body``); header values with line
breaks are refused before anything is sent. Redirects are never followed by probes
(``follow_redirects=False``): a 3xx is an answer to judge.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import platform
import socket
import ssl
import struct
import sys
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import httptools
import httpx

from crmpulse.client import PROBE_CONTEXT

__all__ = ["MAX_HEADERS", "MAX_HEAD_BYTES", "ProbeTransport", "peer_certificate", "received"]

#: Largest response head (status line and header fields) accepted, in bytes.
MAX_HEAD_BYTES = 64 * 1024
#: Most header fields accepted in one response.
MAX_HEADERS = 256
#: Body bytes buffered before reading from the socket pauses.
HIGH_WATER = 256 * 1024
#: Largest piece of body handed to httpx at once (its decoders expand each piece whole).
PIECE = 64 * 1024
#: Bytes read from the socket at once.
RECV = 256 * 1024

_now = time.perf_counter
_FORBIDDEN = (b"\r", b"\n", b"\0")
# SO_TIMESTAMPNS (Linux's generic value; the socket module does not name it): the kernel
# stamps each received segment, and recvmsg hands the stamp over as SCM_TIMESTAMPNS.
_SO_TIMESTAMPNS = 35 if sys.platform == "linux" and platform.machine() in (
    "x86_64", "aarch64", "i686", "i386", "armv7l", "armv8l", "ppc64le", "s390x", "riscv64") else None
_ANCILLARY = socket.CMSG_SPACE(16) if _SO_TIMESTAMPNS else 0
_TCP_INFO = getattr(socket, "TCP_INFO", None)

#: Response bytes read by every probe so far (the exporter trims memory after bursts).
received = 0
_holder: socket.socket | None = None


def _keep_timestamps_on() -> None:
    """Hold one socket with SO_TIMESTAMPNS for the life of the process.

    The kernel turns receive timestamping on when the first socket asks for it and off
    when the last one closes, and the switch is dear: with each probe's socket the only
    one, every probe paid it twice (a fifth of a probe's CPU, measured). One idle socket
    keeps it on.
    """
    global _holder
    if _holder is None and _SO_TIMESTAMPNS is not None:
        holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            holder.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        except OSError:
            holder.close()
            return
        _holder = holder


def _handshake_rtt(sock: socket.socket) -> float | None:
    """The kernel's measure of the TCP handshake (tcpi_rtt, the first sample), in seconds."""
    if _TCP_INFO is None or sys.platform != "linux":
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 104)
    except OSError:
        return None
    return struct.unpack_from("I", info, 68)[0] / 1e6 if len(info) >= 72 else None


class _Exchange:
    """One request and its response on one socket, driven by the loop's readiness callbacks.

    The socket is watched with ``add_writer``/``add_reader``, whose callbacks the loop runs
    the moment the socket is ready (uvloop calls them straight from its poll; a transport's
    ``connection_made`` would wait in the ready queue behind other probes' work).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, out: bytes, host: str,
                 context: ssl.SSLContext | None, head_only: bool) -> None:
        self.loop = loop
        self.out = out
        self.host = host
        self.context = context
        self.head_only = head_only
        self.parser = httptools.HttpResponseParser(self)
        self.sock: socket.socket | None = None
        self.reading = self.writing = False
        self.pending = bytearray()
        self.tls: ssl.SSLObject | None = None
        self.incoming: ssl.MemoryBIO | None = None
        self.outgoing: ssl.MemoryBIO | None = None
        self.waiter: asyncio.Future[None] | None = None
        # When each event happened, on a timeline without the exporter's lag: the kernel's
        # arrival stamp of the data, minus `shift`, the time the CRM's side was pushed back
        # because the loop was late to send what it was waiting for (docs/probes.md).
        self.connect_started = 0.0
        self.stamps = False
        self.shift = 0.0
        self.lag = 0.0  # how long the data of the current callback waited for the loop
        self.owed = False  # the current callback's lag delays whatever it sends
        self.connected_at = 0.0
        self.secured_at = 0.0
        self.sent_at = 0.0
        self.headers_at = 0.0
        self.done_at = 0.0
        self.last_data_at = 0.0
        self.arrived = 0.0
        self.status = 0
        self.version = b"HTTP/1.1"
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_bytes = 0
        self.framed = False  # Content-Length or chunked: the body does not end at EOF
        self.informational = False
        self.headers_complete = False
        self.complete = False
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.error: BaseException | None = None
        self.connect_error: OSError | None = None
        self.closed = False
        self.handshake_only = False  # a TLS check: the certificate, no request

    # -- the socket ----------------------------------------------------------------------

    def connect(self, sock: socket.socket, address: Any) -> None:
        """Start a non-blocking connect; ``connected_at`` or ``connect_error`` tells the end."""
        self.sock = sock
        if _SO_TIMESTAMPNS is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
                self.stamps = True
            except OSError:
                self.stamps = False
        self.connect_started = _now()
        try:
            sock.connect(address)
        except (BlockingIOError, InterruptedError):
            self.writing = True
            self.loop.add_writer(sock, self._connected)
            return
        except OSError as exc:
            self.connect_error = exc
            return
        self._connected()

    def _connected(self) -> None:
        assert self.sock is not None
        if self.writing:
            self.loop.remove_writer(self.sock)
            self.writing = False
        now = _now()
        error = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            self.connect_error = OSError(error, os.strerror(error))
            self._wake()
            return
        rtt = _handshake_rtt(self.sock)
        connected = now if rtt is None else min(now, self.connect_started + rtt)
        self.connected_at = self.arrived = connected
        self.lag, self.owed = now - connected, True
        self.reading = True
        self.loop.add_reader(self.sock, self._readable)
        if self.context is None:
            self._send()
        else:
            self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            try:
                self.tls = self.context.wrap_bio(self.incoming, self.outgoing,
                                                 server_hostname=self.host or None)
            except (ssl.SSLError, ValueError) as exc:
                self._fail(exc)
                return
            self._handshake()
        self.owed = False
        self._wake()

    def _write(self, data: bytes) -> None:
        if self.closed or self.sock is None:
            return
        if self.owed:  # we send this late by the callback's lag: the CRM answers that much later
            self.shift += self.lag
            self.owed = False
        if self.pending:
            self.pending += data
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            return  # the peer went away; reading will say how
        if sent < len(data):
            self.pending += data[sent:]
            self.writing = True
            self.loop.add_writer(self.sock, self._writable)

    def _writable(self) -> None:
        assert self.sock is not None
        try:
            sent = self.sock.send(self.pending)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            sent = len(self.pending)
        del self.pending[:sent]
        if not self.pending:
            self.loop.remove_writer(self.sock)
            self.writing = False

    def _readable(self) -> None:
        assert self.sock is not None
        now = _now()
        try:
            if self.stamps:
                data, ancillary, _, _ = self.sock.recvmsg(RECV, _ANCILLARY)
            else:
                data, ancillary = self.sock.recv(RECV), []
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            if not self.complete and self.error is None:
                self.error = exc
            self.close()
            self._wake()
            return
        global received
        received += len(data)
        arrived = now
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(value) >= 16:
                seconds, nanoseconds = struct.unpack_from("qq", value)
                kernel = seconds + nanoseconds / 1e9 - (time.time() - now)
                arrived = min(now, max(self.connect_started, kernel))
        self.arrived = arrived - self.shift
        self.lag, self.owed = now - arrived, True
        try:
            self._received(data)
        finally:
            self.owed = False

    def _received(self, data: bytes) -> None:
        if not data:
            self._eof()
            self.close()
            return
        if self.tls is None:
            self._feed(data)
            return
        assert self.incoming is not None
        self.incoming.write(data)
        if not self.secured_at:
            self._handshake()
            if not self.secured_at:
                return
        while not self.closed:
            try:
                plain = self.tls.read(PIECE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self._eof()
                break
            except ssl.SSLError as exc:
                self._fail(exc)
                break
            if not plain:
                self._eof()
                break
            self._feed(plain)
        self._flush()

    # -- httptools callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.headers = []
        self.framed = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) >= MAX_HEADERS:
            raise httpx.RemoteProtocolError(f"more than {MAX_HEADERS} header fields")
        self.headers.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length" or (lowered == b"transfer-encoding"
                                            and b"chunked" in value.lower()):
            self.framed = True

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.informational = True  # 100 Continue and friends: the real answer follows
            return
        self.informational = False
        self.status = status
        self.version = b"HTTP/" + self.parser.get_http_version().encode()
        self.headers_complete = True
        self.headers_at = self.arrived
        if self.head_only or status in (101, 204, 304):
            self._finish()

    def on_body(self, body: bytes) -> None:
        if self.complete:
            return
        self.chunks.append(body)
        self.buffered += len(body)
        self.last_data_at = self.arrived
        if self.buffered > HIGH_WATER and self.reading and self.sock is not None:
            self.reading = False  # the caller reads slower than the server sends: wait for it
            self.loop.remove_reader(self.sock)
        self._wake()

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
            return
        self._finish()

    # -- internals -----------------------------------------------------------------------

    def _handshake(self) -> None:
        assert self.tls is not None
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return
        except (ssl.SSLError, ssl.CertificateError) as exc:
            self._flush()
            self._fail(exc)
            return
        self.secured_at = self.arrived
        if self.handshake_only:
            self._flush()  # TLS 1.3: the client's Finished
            self._wake()
            return
        self._send()

    def _send(self) -> None:
        self.sent_at = self.arrived
        if self.tls is None:
            self._write(self.out)
            return
        try:
            self.tls.write(self.out)
        except ssl.SSLError as exc:
            self._fail(exc)
            return
        self._flush()

    def _flush(self) -> None:
        if self.outgoing is not None and self.outgoing.pending:
            self._write(self.outgoing.read())

    def _feed(self, data: bytes) -> None:
        if self.complete:
            return
        if not self.headers_complete:
            self.head_bytes += len(data)
            if self.head_bytes > MAX_HEAD_BYTES and not self._head_ends_within(data):
                self._fail(httpx.RemoteProtocolError(
                    f"response head larger than {MAX_HEAD_BYTES // 1024} KiB"))
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._finish()
        except httpx.RemoteProtocolError as exc:
            self._fail(exc)
        except httptools.HttpParserError as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, httpx.RemoteProtocolError):
                self._fail(cause)
            else:
                self._fail(httpx.RemoteProtocolError(f"malformed response: {exc}"))

    def _head_ends_within(self, data: bytes) -> bool:
        # the head may end inside the chunk that crossed the limit
        end = data.find(b"\r\n\r\n")
        return end != -1 and self.head_bytes - len(data) + end + 4 <= MAX_HEAD_BYTES

    def _eof(self) -> None:
        if self.complete or self.error is not None:
            return
        if self.headers_complete and not self.framed:
            self._finish()  # a body that ends when the connection does
        else:
            self.error = httpx.RemoteProtocolError(
                "server closed the connection before the response was complete")
        self._wake()

    def _finish(self) -> None:
        if not self.complete:
            self.complete = True
            self.done_at = self.arrived
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        if self.error is None and not self.complete:
            self.error = exc
        self.close()
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.sock is not None:
            if self.reading:
                self.loop.remove_reader(self.sock)
            if self.writing:
                self.loop.remove_writer(self.sock)
            self.reading = self.writing = False
            self.sock.close()

    def drained(self, size: int) -> None:
        self.buffered -= size
        if not self.reading and not self.closed and self.buffered <= HIGH_WATER // 4 \
                and self.sock is not None and self.connected_at:
            self.reading = True
            self.loop.add_reader(self.sock, self._readable)


class _Clock:
    """Stall accounting for one request: how long the coroutine lagged behind its events.

    The request is written by a callback, so the CRM's events (connected, headers, body,
    done) happen at times that do not depend on when the coroutine runs. At each point
    where the coroutine picks something up, the time since that thing became available
    is a stall, unless the coroutine had not asked for it yet (its own work). A stall at
    an event whose time is unknown (the connect) counts provisionally and is trimmed by
    the next known event: ``stall = min(stall + waited, now - available)``.
    """

    __slots__ = ("stall",)

    def __init__(self) -> None:
        self.stall = 0.0

    def waited(self, asked: float, available: float | None) -> None:
        now = _now()
        stall = self.stall + (now - asked)
        if available:
            stall = min(stall, now - available)
        self.stall = max(0.0, stall)


class _Body(httpx.AsyncByteStream):
    def __init__(self, exchange: _Exchange, clock: _Clock, read_timeout: float | None,
                 trace: Any, start: float) -> None:
        self.exchange = exchange
        self.clock = clock
        self.read_timeout = read_timeout
        self.trace = trace
        self.start = start
        self.settled = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        ex = self.exchange
        while True:
            if ex.chunks:
                chunk = ex.chunks.popleft()
                ex.drained(len(chunk))
                for offset in range(0, len(chunk), PIECE):
                    yield chunk[offset:offset + PIECE] if len(chunk) > PIECE else chunk
                continue
            if ex.complete:
                self.clock.waited(_now(), ex.done_at)
                await self._settle()
                return
            if ex.error is not None:
                raise _translate(ex.error, "read")
            asked = _now()
            await _wait(ex, self.read_timeout, httpx.ReadTimeout)
            self.clock.waited(asked, ex.done_at if ex.complete else ex.last_data_at or None)

    async def _settle(self) -> None:
        """Hand the probe its stall and the phase marks, once."""
        if self.settled:
            return
        self.settled = True
        ex = self.exchange
        context = PROBE_CONTEXT.get()
        if context is not None:
            context.stalled += self.clock.stall
        if self.trace is not None:
            await self.trace("http11.receive_response_body.complete", {"at": ex.done_at})

    async def aclose(self) -> None:
        self.exchange.close()
        if not self.settled:
            # closed before the end (the caller's body cap): the stall so far still counts
            self.settled = True
            context = PROBE_CONTEXT.get()
            if context is not None:
                context.stalled += self.clock.stall


async def _connect(loop: asyncio.AbstractEventLoop, exchange: _Exchange, host: str,
                   port: int) -> None:
    """Connect to the first address of ``host`` that accepts, as create_connection would."""
    try:
        ip = ipaddress.ip_address(host)
        addresses: list[tuple[Any, ...]] = [
            (socket.AF_INET6 if ip.version == 6 else socket.AF_INET, (host, port))]
    except ValueError:
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise _translate(exc, "connect") from exc
        addresses = [(family, address) for family, _, _, _, address in infos]
    error: OSError | None = None
    for family, address in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        exchange.connect_error = None
        exchange.connect(sock, address)
        while not exchange.connected_at and exchange.connect_error is None:
            await _wait(exchange, None, httpx.ConnectTimeout)
        if exchange.connected_at:
            return
        error = exchange.connect_error
        exchange.close()
        exchange.closed = False
    assert error is not None
    raise _translate(error, "connect") from error


async def peer_certificate(host: str, port: int, context: ssl.SSLContext) -> tuple[bytes, float, float]:
    """Connect and shake hands only: the peer's certificate (DER), and how long the TCP
    connect and the TLS handshake took, timed like every probe here.

    Raises what the socket and TLS layers raise (``ssl.SSLCertVerificationError`` for a
    chain that does not verify, ``ssl.SSLError``, ``socket.gaierror``, ``OSError``) and
    ``ConnectionError`` when the peer closes before the handshake ends.
    """
    loop = asyncio.get_running_loop()
    exchange = _Exchange(loop, b"", host, context, head_only=False)
    exchange.handshake_only = True
    _keep_timestamps_on()
    clock = _Clock()
    start = _now()
    try:
        try:
            await _connect(loop, exchange, host, port)
        except httpx.TransportError as exc:
            raise (exc.__cause__ if isinstance(exc.__cause__, OSError) else exc) from None
        clock.waited(start, exchange.connected_at)
        while not exchange.secured_at:
            if exchange.error is not None:
                raise exchange.error
            if exchange.closed:
                raise ConnectionError("the server closed the connection during the TLS handshake")
            asked = _now()
            await _wait(exchange, None, httpx.ConnectTimeout)
            clock.waited(asked, exchange.secured_at or None)
        assert exchange.tls is not None
        der = exchange.tls.getpeercert(binary_form=True) or b""
        return der, exchange.connected_at - start, exchange.secured_at - exchange.connected_at
    finally:
        exchange.close()
        context_ = PROBE_CONTEXT.get()
        if context_ is not None:
            context_.stalled += clock.stall


async def _wait(ex: _Exchange, timeout: float | None, error: type[httpx.TimeoutException]) -> None:
    loop = asyncio.get_running_loop()
    waiter = ex.waiter = loop.create_future()
    handle = loop.call_later(timeout, _expire, waiter) if timeout is not None else None
    try:
        await waiter
    except TimeoutError:
        ex.close()
        raise error(f"no data within {timeout:g}s") from None
    finally:
        ex.waiter = None
        if handle is not None:
            handle.cancel()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def _translate(exc: BaseException, stage: str) -> httpx.TransportError:
    if isinstance(exc, httpx.TransportError):
        return exc
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        error: httpx.TransportError = httpx.ConnectError(f"TLS handshake failed: {exc}")
    elif stage == "connect":
        error = httpx.ConnectError(str(exc) or exc.__class__.__name__)
    else:
        error = httpx.ReadError(str(exc) or exc.__class__.__name__)
    error.__cause__ = exc
    return error


def _head(request: httpx.Request, body: bytes) -> bytes:
    target = request.url.raw_path
    method = request.method.encode()
    if any(c in target for c in (b" ", *_FORBIDDEN)) or not method.isalpha():
        raise httpx.LocalProtocolError("request line holds forbidden characters")
    lines = [method, b" ", target, b" HTTP/1.1\r\n"]
    chunked = False
    for name, value in request.headers.raw:
        if any(c in name or c in value for c in _FORBIDDEN) or b":" in name:
            # a value a CRM sent back (a saved id, a token) must not inject a header
            raise httpx.LocalProtocolError(f"header {name.decode(errors='replace')!r} holds "
                                           "a line break or NUL")
        lowered = name.lower()
        if lowered == b"connection":
            continue  # httpx's default is keep-alive; this connection is never reused
        chunked = chunked or (lowered == b"transfer-encoding" and b"chunked" in value.lower())
        lines += [name, b": ", value, b"\r\n"]
    lines.append(b"Connection: close\r\n")  # so the server closes first, as with blackbox
    lines.append(b"\r\n")
    if chunked:
        body = (b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)) if body else b"0\r\n\r\n"
    return b"".join(lines) + body


class ProbeTransport(httpx.AsyncBaseTransport):
    """An httpx transport for probes: HTTP/1.1, one connection per request, no pool."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.context = context or ssl.create_default_context()
        _keep_timestamps_on()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        trace = request.extensions.get("trace")
        url = request.url
        secure = url.scheme == "https"
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported scheme {url.scheme!r}")
        host = url.host
        port = url.port or (443 if secure else 80)
        body = await request.aread()
        out = _head(request, body)
        loop = asyncio.get_running_loop()
        exchange = _Exchange(loop, out, host, self.context if secure else None,
                             request.method == "HEAD")
        clock = _Clock()
        start = _now()
        connect_timeout = timeouts.get("connect")
        try:
            async with asyncio.timeout(connect_timeout):
                await _connect(loop, exchange, host, port)
        except TimeoutError:
            exchange.close()
            raise httpx.ConnectTimeout(f"no connection within {connect_timeout:g}s") from None
        except BaseException:
            exchange.close()
            raise
        clock.waited(start, exchange.connected_at)
        try:
            while not exchange.headers_complete:
                if exchange.error is not None:
                    raise _translate(exchange.error, "connect" if not exchange.sent_at else "read")
                asked = _now()
                await _wait(exchange, timeouts.get("read"), httpx.ReadTimeout)
                clock.waited(asked, exchange.headers_at or None)
        except BaseException:
            exchange.close()
            raise
        if trace is not None:
            tcp = exchange.connected_at
            await trace("connection.connect_tcp.started", {"at": start})
            await trace("connection.connect_tcp.complete", {"at": tcp})
            if exchange.secured_at:
                await trace("connection.start_tls.started", {"at": tcp})
                await trace("connection.start_tls.complete", {"at": exchange.secured_at})
            await trace("http11.send_request_headers.started", {"at": exchange.sent_at})
            await trace("http11.receive_response_headers.complete", {"at": exchange.headers_at})
        return httpx.Response(
            exchange.status, headers=exchange.headers,
            stream=_Body(exchange, clock, timeouts.get("read"), trace, start),
            extensions={"http_version": exchange.version})
