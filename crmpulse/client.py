"""Run profile operations against a target: one shared flow, a sync and an async driver.

The logic of a call (credentials, token refresh, retry once on 401, pagination,
cleanup bookkeeping, journey steps with ``until`` polling) is written once as a
generator that *yields* what to send and *receives* the reply. Drivers do the I/O:
:class:`Client` with ``httpx.Client``, :class:`AsyncClient` with ``httpx.AsyncClient``,
and the Locust users with Locust's own client. httpx errors are translated here, at
the boundary, into :class:`TransportError` with a bounded ``reason``.

    with Client(loaded) as crm:
        result = crm.call("create_contact", first_name="Ada", last_name="L", email="a@x.example")
        crm.cleanup()                    # deletes whatever was created and not yet deleted
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Collection, Generator, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from ._decoding import ACCEPT_ENCODING, BadEncoding, BodyTooLarge, BoundedDecoder
from ._exceptions import AuthError, OperationError, OriginError, TransportError
from ._types import compile_jsonpath
from .auth import AuthProvider, OperationTokenProvider, make_auth
from .config import LoadedConfig, Target
from .origins import format_origin, origin_of
from .profile import OperationResult, Profile, RenderedRequest, loads_json
from .quota import QuotaBook
from .steps import Step, evaluate_expect
from .templates import render

__all__ = [
    "PROBE_CONTEXT",
    "AsyncClient",
    "CleanupReport",
    "Client",
    "Ledger",
    "PhaseTrace",
    "ProbeContext",
    "Reply",
    "Session",
    "Sleep",
    "StepResult",
    "http_options",
    "translate_error",
]


@dataclass
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes
    elapsed: float = 0.0


@dataclass(frozen=True)
class Sleep:
    seconds: float


class PhaseTrace:
    """Collects httpcore trace events of one request and turns them into phase durations.

    Phases are named as blackbox_exporter names them: ``connect`` (TCP), ``tls``
    (handshake), ``processing`` (request sent to response headers received) and
    ``transfer`` (response body). ``resolve`` is measured by the caller, which looks
    the host up itself; for an IP address it is 0.
    """

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        # a transport that stamped the event when it happened passes the reading as "at"
        self.marks[event.split(".", 1)[1] if "." in event else event] = (
            info.get("at") or time.perf_counter())

    def phases(self) -> dict[str, float]:
        m = self.marks

        def span(start: str, end: str) -> float:
            return max(0.0, m[end] - m[start]) if start in m and end in m else 0.0

        ready = m.get("start_tls.complete") or m.get("connect_tcp.complete") or m.get(
            "send_request_headers.started")
        processing = 0.0
        if ready is not None and "receive_response_headers.complete" in m:
            processing = max(0.0, m["receive_response_headers.complete"] - ready)
        return {
            "connect": span("connect_tcp.started", "connect_tcp.complete"),
            "tls": span("start_tls.started", "start_tls.complete"),
            "processing": processing,
            "transfer": span("receive_response_headers.complete", "receive_response_body.complete"),
        }


@dataclass
class ProbeContext:
    """Per-task settings a probe run gives the async driver (a contextvar, so no API churn).

    ``max_body`` caps how much of a response is read (a CRM answering 10 MB must not
    exhaust the exporter's memory); ``traces`` collects one PhaseTrace per request;
    ``log`` collects a line per request for ``/probe?debug=true`` (never headers);
    ``stalled`` is time a transport saw the probe's reply waiting while the event loop
    ran other work (probes/transport.py): it is left out of the reported durations.
    """

    max_body: int = 16 * 1024 * 1024
    traces: list[PhaseTrace] | None = None
    log: list[str] | None = None
    stalled: float = 0.0


PROBE_CONTEXT: ContextVar[ProbeContext | None] = ContextVar("crmpulse_probe", default=None)


Flow = Generator["RenderedRequest | Sleep", "Reply | None", Any]
_OK = (True, "")


@dataclass
class StepResult:
    step: str
    result: OperationResult
    attempts: int = 1
    waited: float = 0.0  # from the first attempt to the last, when `until` retried


@dataclass
class CleanupReport:
    created: int = 0
    deleted: int = 0
    failed: int = 0

    @property
    def left(self) -> int:
        return self.created - self.deleted


class Ledger:
    """Records a program created, so every one can be deleted at the end.

    A create whose operation declares ``cleanup`` adds its delete request; running
    that delete (explicitly or at cleanup time) removes it. 404 on delete counts as
    deleted: the record is gone either way.
    """

    def __init__(self) -> None:
        self.pending: dict[tuple[str, str], dict[str, Any]] = {}
        self.report = CleanupReport()

    def add(self, operation: str, url: str, variables: dict[str, Any]) -> None:
        key = (operation, url)
        if key not in self.pending:
            self.pending[key] = variables
            self.report.created += 1

    def done(self, operation: str, url: str) -> None:
        if self.pending.pop((operation, url), None) is not None:
            self.report.deleted += 1


def translate_error(exc: httpx.HTTPError, url: str = "") -> TransportError:
    """Map an httpx error to a TransportError with a bounded reason label.

    The message names the origin (scheme, host, port) but never the path, which may
    hold record ids, nor user-info, which may hold a password.
    """
    try:
        origin = f" ({format_origin(origin_of(url))})" if url else ""
    except ValueError:
        origin = ""
    error = _translate(exc)
    error.args = (f"{error.args[0]}{origin}",)
    return error


def _translate(exc: httpx.HTTPError) -> TransportError:
    if isinstance(exc, httpx.TimeoutException):
        return TransportError("timed out", "timeout")
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError | ssl.CertificateError):
            return TransportError("TLS handshake failed", "tls")
        if isinstance(cause, socket.gaierror):
            return TransportError("name resolution failed", "dns")
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.ConnectError):
        return TransportError("connection failed", "connect")
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return TransportError("connection broken", "connect")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return TransportError("invalid URL", "connect")
    return TransportError(exc.__class__.__name__, "connect")


class Session:
    """The I/O-free logic of talking to one target through its profile.

    Every request it yields has passed :meth:`destination`: the target's credentials
    (and ``target.headers``) ride only to the origins configured for them, and with
    ``allowed_hosts`` (a load test's ``target.safety.allowed_hosts``) nothing is sent to
    any other host. A URL that breaks this, whether it came from the profile, a variable
    or a response (a pagination link), raises :class:`OriginError` before it is sent.
    """

    def __init__(self, target: Target, profile: Profile, auth: AuthProvider | None = None,
                 ledger: Ledger | None = None, force_authenticate: bool = True,
                 allowed_hosts: Collection[str] | None = None, quota: QuotaBook | None = None) -> None:
        self.target = target
        self.profile = profile
        self.auth = auth or make_auth(target, profile)
        # named credentials share the default one's origins and live beside it (auth.named)
        self.credentials: dict[str, AuthProvider] = self.auth.named
        self.origins = target.credential_origins | self.auth.origins
        self.allowed_hosts = (None if allowed_hosts is None
                              else frozenset(h.lower().strip("[]") for h in allowed_hosts))
        # URLs under a trusted origin, spelled as format_origin spells it, skip parsing:
        # this runs for every request of a load test.
        self._fast = tuple(f"{format_origin(o)}/" for o in self.origins
                           if self.allowed_hosts is None or o[1] in self.allowed_hosts)
        self.ledger = ledger or Ledger()
        # The demo and `call` fetch a fresh token for `authenticate`; probes reuse a
        # cached token until it nears expiry, as a real client would.
        self.force_authenticate = force_authenticate
        # How the last reply was judged (ok, message): Locust marks its request with it.
        self.verdict: tuple[bool, str] = (True, "")
        self.auth_elapsed = 0.0  # time spent fetching tokens, for journeys to report apart
        self._fetching = 0  # depth of operation-token fetches under way
        # every reply's quota headers (and a limits operation's body) land here; share one
        # book between the sessions of a target to keep its latest readings in one place
        self.quota = quota if quota is not None else QuotaBook(profile.quota)

    @property
    def base_url(self) -> str:
        """Where operations' relative paths go: the target's base URL, or the instance URL
        the token response named (checked against the credentials' origins when accepted)."""
        return self.auth.instance_url or self.target.base_url

    def provider(self, auth: bool | str) -> AuthProvider | None:
        """The credentials a request's ``auth`` asks for; None for none."""
        if auth is True:
            return self.auth
        if auth is False:
            return None
        try:
            return self.credentials[auth]
        except KeyError:
            raise AuthError(f"needs credential {auth!r}, which this target does not have "
                            "(an anonymous probe sends none)") from None

    def variables(self, extra: dict[str, Any]) -> dict[str, Any]:
        if not self.profile.variables and not self.target.variables:
            return extra
        return {**self.profile.variables, **self.target.variables, **extra}

    def destination(self, request: RenderedRequest) -> bool:
        """Whether the target's credentials may ride with ``request``; OriginError if it must not go."""
        url = request.url
        if url.startswith(self._fast):
            return True
        try:
            origin = origin_of(url)
        except ValueError:
            raise OriginError(f"not sent: {url[:120]!r} is not an http(s) URL with a valid host "
                              "and port") from None
        if self.allowed_hosts is not None and origin[1] not in self.allowed_hosts:
            raise OriginError(f"not sent: host {origin[1]} is not in "
                              f"target.safety.allowed_hosts ({', '.join(sorted(self.allowed_hosts))})")
        return origin in self.origins

    def _refuse(self, request: RenderedRequest, what: str) -> OriginError:
        shown = format_origin(origin_of(request.url))
        allowed = ", ".join(sorted(format_origin(o) for o in self.origins))
        return OriginError(f"not sent: it would carry target "
                           f"{self.target.name}'s {what} to {shown}, and they go only to {allowed}")

    # -- flows -----------------------------------------------------------------------

    def send(self, request: RenderedRequest) -> Flow:
        """Send with credentials; fetch a token first when needed; retry once on 401."""
        own_headers = request.headers
        trusted = self.destination(request)
        provider = self.provider(request.auth)
        if provider is not None and not trusted and provider.kind != "none":
            raise self._refuse(request, "credentials")
        for attempt in (1, 2):
            if provider is not None and provider.needs_token():
                yield from self.fetch_token(provider)
            headers = ({**self.target.headers, **own_headers} if self.target.headers and trusted
                       else dict(own_headers))
            if provider is not None:
                headers.update(provider.headers())
            request.headers = headers  # the request is this flow's own: no copy needed
            reply = yield request
            assert isinstance(reply, Reply)
            if self.quota:
                self.quota.observe(request.operation, reply.status, reply.headers, reply.body)
            self.verdict = _OK if reply.status < 400 else (
                False, f"{request.operation}: status {reply.status}")
            if reply.status == 401 and provider is not None and provider.refreshable and attempt == 1:
                self.verdict = (False, f"{request.operation}: 401, token refreshed and retried")
                provider.invalidate()
                continue
            return reply
        raise AssertionError("unreachable")

    def fetch_token(self, provider: AuthProvider | None = None) -> Flow:
        """Fetch a token for ``provider`` (default: the target's own credentials)."""
        provider = provider or self.auth
        if isinstance(provider, OperationTokenProvider):
            return (yield from self._fetch_by_operation(provider))
        token_request = provider.token_request()
        if not self.destination(token_request) and \
                origin_of(token_request.url) not in provider.token_origins:
            raise self._refuse(token_request, "client credentials")
        token_request.headers = {**self.target.headers, **token_request.headers}
        reply = yield token_request
        assert isinstance(reply, Reply)
        self.auth_elapsed += reply.elapsed
        self.verdict = _OK if reply.status == 200 else (
            False, f"authenticate: token endpoint answered {reply.status}")
        provider.accept_token(reply.status, reply.body)
        if provider.instance_url is not None:
            self._check_instance(provider)
        return reply

    def _check_instance(self, provider: AuthProvider) -> None:
        """An instance URL comes from a response: it is used only where the credentials may go."""
        url = provider.instance_url or ""
        try:
            origin = origin_of(url)
        except ValueError:
            origin = None
        if origin is None or origin not in self.origins or urlsplit(url).query or (
                self.allowed_hosts is not None and origin[1] not in self.allowed_hosts):
            provider.instance_url = None
            provider.invalidate()
            shown = format_origin(origin) if origin else repr(url[:120])
            allowed = ", ".join(sorted(format_origin(o) for o in self.origins))
            raise OriginError(f"not used: the token response names instance {shown}, and target "
                              f"{self.target.name}'s credentials go only to {allowed} (set "
                              "target.base_url to the instance's URL)")

    def _fetch_by_operation(self, provider: OperationTokenProvider) -> Flow:
        if self._fetching >= 2:  # a credential fetched with itself: refused at load, guarded here
            raise AuthError(f"credential {provider.name}: fetching it needs itself")
        self._fetching += 1
        try:
            variables = render(provider.spec.with_, self.variables({}), self.profile.filters)
            result = yield from self.call(provider.spec.operation, variables)
        finally:
            self._fetching -= 1
        self.auth_elapsed += result.elapsed
        provider.accept_result(result)
        return result

    def call(self, name: str, variables: dict[str, Any], max_pages: int = 1) -> Flow:
        """Call one operation; follow up to ``max_pages`` pages when it paginates."""
        if name == "authenticate":
            op_or_none = self.profile.operations.get(name)
            if self.auth.refreshable:
                if not self.force_authenticate and not self.auth.needs_token():
                    return OperationResult(operation=name, status=0, message="token cached")
                self.auth.invalidate()
                reply = yield from self.fetch_token()
                result = OperationResult(operation=name, status=getattr(reply, "status", 0),
                                         elapsed=getattr(reply, "elapsed", 0.0))
                result.body = getattr(reply, "body", b"")
                return result
            if op_or_none is None or op_or_none.auth is False:
                # a token-only CRM has no login: its credentials ride with every request
                return OperationResult(operation=name, status=0,
                                       message=f"{self.auth.kind} credentials: no token to fetch")
        op = self.profile.operation(name)
        provider = self.provider(op.auth)
        if provider is not None and provider.needs_token():
            yield from self.fetch_token(provider)  # first: the answer may name the base URL
        merged = self.variables(variables)
        request = op.render(self.base_url, merged)
        reply = yield from self.send(request)
        result = op.interpret(reply.status, reply.headers, reply.body)
        result.elapsed, result.body, result.headers = reply.elapsed, reply.body, reply.headers
        self.verdict = (result.ok, result.message)
        while op.paginate and result.ok and result.next_page and result.pages < max_pages:
            request = request.next(result.next_page, op.paginate)
            reply = yield from self.send(request)
            page = op.interpret(reply.status, reply.headers, reply.body)
            self.verdict = (page.ok, page.message)
            items = (result.items or []) + (page.items or [])
            page.elapsed, page.pages, page.items = result.elapsed + reply.elapsed, result.pages + 1, items
            page.values = {**result.values, **page.values}
            page.body, page.headers = reply.body, reply.headers
            result = page
        if result.ok and op.cleanup:
            try:
                undo = render(op.cleanup.with_, {**merged, **result.values}, self.profile.filters)
                url = self.profile.operation(op.cleanup.operation).render(
                    self.base_url, self.variables(undo)).url
            except OperationError:
                return result.fail("assertion", f"{name}: created a record, but the response "
                                   "lacks what its cleanup needs to delete it")
            self.ledger.add(op.cleanup.operation, url, undo)
        if op.method == "DELETE" and (result.ok or result.status == 404):
            self.ledger.done(name, request.url)
        return result

    def steps(self, steps: Iterable[Step], context: dict[str, Any]) -> Flow:
        """Run journey steps in order, stopping at the first failure; returns StepResults."""
        results: list[StepResult] = []
        for step in steps:
            try:
                variables = render(step.with_, {**self.variables({}), **context}, self.profile.filters)
            except OperationError as exc:
                failed = OperationResult(operation=step.operation, ok=False, reason="assertion",
                                         message=f"step {step.label}: {exc}")
                results.append(StepResult(step.label, failed))
                break
            started = time.monotonic()
            deadline = started + step.within
            attempts = 0
            while True:
                attempts += 1
                try:
                    result = yield from self.call(step.operation, variables, step.pages)
                except TransportError as exc:
                    result = OperationResult(operation=step.operation, ok=False,
                                             reason=exc.reason, message=f"{step.label}: {exc}")
                if step.until is not None and result.throttled and time.monotonic() < deadline:
                    # a poll that outpaces the CRM's rate limit (HubSpot's search: 5 a second)
                    # waits as told, then polls on
                    pause = result.retry_after if result.retry_after is not None else 1.0
                    yield Sleep(max(0.0, min(pause, deadline - time.monotonic())))
                    continue
                if not result.ok or step.until is None or _matches(step.until, result.body):
                    break
                if time.monotonic() >= deadline:
                    result.fail("assertion", f"step {step.label}: {step.until} did not appear "
                                f"within {step.within:g}s")
                    break
                yield Sleep(min(0.05 * attempts, 0.5))
            if result.ok and step.expect is not None:
                failure = evaluate_expect(step.expect, result.status, result.headers, result.body)
                if failure:
                    result.fail("assertion", f"step {step.label}: {failure}")
            for var, name in step.save.items():
                if result.ok and name not in result.values:
                    result.fail("assertion", f"step {step.label}: the operation extracted no {name!r}")
                elif result.ok:
                    context[var] = result.values[name]
            results.append(StepResult(step.label, result, attempts, time.monotonic() - started))
            if not result.ok:
                break
        return results

    def cleanup(self) -> Flow:
        """Delete every record still in the ledger; returns the ledger's report."""
        for (operation, _url), variables in list(self.ledger.pending.items()):
            try:
                result = yield from self.call(operation, variables)
            except TransportError:
                result = None
            if result is None or not (result.ok or result.status == 404):
                self.ledger.report.failed += 1
        return self.ledger.report


def _matches(path: str, body: bytes) -> bool:
    try:
        document = loads_json(body)
    except ValueError:
        return False
    return bool(compile_jsonpath(path).find(document))


def _request_kwargs(request: RenderedRequest) -> dict[str, Any]:
    # only encodings the drivers can decode within a cap (crmpulse._decoding)
    headers = request.headers if "Accept-Encoding" in request.headers else {
        "Accept-Encoding": ACCEPT_ENCODING, **request.headers}
    kwargs: dict[str, Any] = {"params": request.params or None, "headers": headers}
    if request.json is not None:
        kwargs["json"] = request.json
    elif request.form is not None:
        kwargs["data"] = request.form
    elif request.content is not None:
        kwargs["content"] = request.content
    return kwargs


def body_error(exc: BodyTooLarge | BadEncoding, limit: int) -> TransportError:
    """The same failure, whichever driver read the body."""
    if isinstance(exc, BodyTooLarge):
        return TransportError(f"response body larger than {limit} bytes (decompressed)", "assertion")
    return TransportError(f"response body refused: {exc}", "assertion")


class _Watchdog:
    """Ends a synchronous request at its deadline, wherever it is blocked.

    httpx's timeouts bound each read, not the request: a server dripping a byte every
    few seconds (into the headers or the body) never trips them. At the deadline this
    shuts down the client's sockets from a timer thread, which wakes the blocked read;
    an idle pooled connection shut down with them is simply reopened next time.
    """

    def __init__(self, seconds: float, sockets: list[socket.socket]) -> None:
        self.expired = False
        self._sockets = sockets
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.expired = True
        for sock in list(self._sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


def http_options(target: Target) -> dict[str, Any]:
    verify: Any = target.tls.verify
    if target.tls.ca_file and verify:
        verify = ssl.create_default_context(cafile=target.tls.ca_file)
    if target.tls.client_cert:
        context = verify if isinstance(verify, ssl.SSLContext) else ssl.create_default_context()
        if not target.tls.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        context.load_cert_chain(target.tls.client_cert, target.tls.client_key)
        verify = context
    return {"timeout": httpx.Timeout(target.timeout), "verify": verify, "trust_env": False,
            "follow_redirects": False}


def _session(loaded: LoadedConfig | None, target: Target | None, profile: Profile | None,
             auth: AuthProvider | None, allowed_hosts: Collection[str] | None) -> Session:
    target = target or (loaded.target if loaded else None)
    profile = profile or (loaded.profile if loaded else None)
    if target is None or profile is None:
        raise ValueError("a client needs a LoadedConfig or a target and a profile")
    return Session(target, profile, auth=auth, allowed_hosts=allowed_hosts)


def failed_result(operation: str, exc: TransportError) -> OperationResult:
    """A transport or auth failure as the operation's result, its message led by the operation."""
    return OperationResult(operation=operation, ok=False, reason=exc.reason,
                           message=f"{operation}: {exc}")


class Client:
    """Synchronous driver (CLI, demo, cleanup, sweeps, tests).

    Bounded like the async driver: each request ends by ``target.timeout`` however
    slowly the server drips, and its body is refused past ``max_body`` bytes after
    decompression, with the same failure reasons.
    """

    def __init__(self, loaded: LoadedConfig | None = None, *, target: Target | None = None,
                 profile: Profile | None = None, http: httpx.Client | None = None,
                 auth: AuthProvider | None = None, allowed_hosts: Collection[str] | None = None,
                 max_body: int = 16 * 1024 * 1024) -> None:
        self.session = _session(loaded, target, profile, auth, allowed_hosts)
        self.http = http or httpx.Client(**http_options(self.session.target))
        self.max_body = max_body
        self._sockets: list[socket.socket] = []  # every connection this client opened

    def run(self, flow: Flow) -> Any:
        try:
            item = next(flow)
            while True:
                if isinstance(item, Sleep):
                    time.sleep(item.seconds)
                    item = flow.send(None)
                    continue
                try:
                    reply = self._send(item)
                except TransportError as exc:
                    item = flow.throw(exc)
                else:
                    item = flow.send(reply)
        except StopIteration as stop:
            return stop.value

    def _trace(self, event: str, info: dict[str, Any]) -> None:
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            sock = info["return_value"].get_extra_info("socket")
            if sock is not None:
                self._sockets[:] = [s for s in self._sockets if s.fileno() != -1]
                self._sockets.append(sock)

    def _send(self, request: RenderedRequest) -> Reply:
        kwargs = _request_kwargs(request)
        kwargs["extensions"] = {"trace": self._trace}
        start = time.perf_counter()
        watchdog = _Watchdog(self.session.target.timeout, self._sockets)
        try:
            with self.http.stream(request.method, request.url, **kwargs) as response:
                decoder = BoundedDecoder(response.headers.get("content-encoding"), self.max_body)
                body = bytearray()
                for chunk in response.iter_raw():
                    body += decoder.feed(chunk)
                    if watchdog.expired:
                        raise httpx.ReadTimeout("deadline")
                body += decoder.flush()
        except httpx.HTTPError as exc:
            error = httpx.ReadTimeout("deadline") if watchdog.expired else exc
            raise translate_error(error, request.url) from exc
        except (BodyTooLarge, BadEncoding) as exc:
            raise body_error(exc, self.max_body) from None
        finally:
            watchdog.cancel()
        return Reply(response.status_code, dict(response.headers), bytes(body),
                     time.perf_counter() - start)

    def call(self, operation: str, max_pages: int = 1, **variables: Any) -> OperationResult:
        """Call an operation; transport and auth failures come back as a failed result."""
        try:
            return self.run(self.session.call(operation, variables, max_pages))
        except TransportError as exc:
            return failed_result(operation, exc)

    def steps(self, steps: Iterable[Step], context: dict[str, Any] | None = None) -> list[StepResult]:
        return self.run(self.session.steps(steps, context if context is not None else {}))

    def cleanup(self) -> CleanupReport:
        return self.run(self.session.cleanup())

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient:
    """Asynchronous driver (the probes)."""

    def __init__(self, loaded: LoadedConfig | None = None, *, target: Target | None = None,
                 profile: Profile | None = None, http: httpx.AsyncClient | None = None,
                 auth: AuthProvider | None = None,
                 allowed_hosts: Collection[str] | None = None) -> None:
        self.session = _session(loaded, target, profile, auth, allowed_hosts)
        self.http = http or httpx.AsyncClient(**http_options(self.session.target))

    async def run(self, flow: Flow) -> Any:
        try:
            item = next(flow)
            while True:
                if isinstance(item, Sleep):
                    await asyncio.sleep(item.seconds)
                    item = flow.send(None)
                    continue
                try:
                    reply = await self._send(item)
                except TransportError as exc:
                    item = flow.throw(exc)
                else:
                    item = flow.send(reply)
        except StopIteration as stop:
            return stop.value

    async def _send(self, request: RenderedRequest) -> Reply:
        context = PROBE_CONTEXT.get()
        kwargs = _request_kwargs(request)
        limit = context.max_body if context else ProbeContext.max_body
        if context is not None and context.traces is not None:
            trace = PhaseTrace()
            context.traces.append(trace)
            kwargs["extensions"] = {"trace": trace}
        stalled = context.stalled if context is not None else 0.0
        start = time.perf_counter()
        try:
            # the request's whole deadline: httpx's timeouts bound each read, not the sum
            async with asyncio.timeout(self.session.target.timeout), \
                    self.http.stream(request.method, request.url, **kwargs) as response:
                decoder = BoundedDecoder(response.headers.get("content-encoding"), limit)
                body = bytearray()
                async for chunk in response.aiter_raw():
                    body += decoder.feed(chunk)
                body += decoder.flush()
        except httpx.HTTPError as exc:
            raise translate_error(exc, request.url) from exc
        except TimeoutError:
            raise translate_error(httpx.ReadTimeout("deadline"), request.url) from None
        except (BodyTooLarge, BadEncoding) as exc:
            raise body_error(exc, limit) from None
        elapsed = time.perf_counter() - start
        if context is not None:
            elapsed = max(0.0, elapsed - (context.stalled - stalled))
        if context is not None and context.log is not None:
            parts = urlsplit(request.url)
            context.log.append(f"{request.method} {format_origin(origin_of(request.url))}{parts.path} -> "
                               f"{response.status_code} in {elapsed * 1000:.1f} ms, {len(body)} bytes")
        return Reply(response.status_code, dict(response.headers), bytes(body), elapsed)

    async def call(self, operation: str, max_pages: int = 1, **variables: Any) -> OperationResult:
        try:
            return await self.run(self.session.call(operation, variables, max_pages))
        except TransportError as exc:
            return failed_result(operation, exc)

    async def cleanup(self) -> CleanupReport:
        return await self.run(self.session.cleanup())

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

