"""Check kinds: http, journey, tls, protection, and the access kinds (access.py). Each run
returns an Outcome, never raises.

A run executes under its own deadline; whatever goes wrong (the CRM hangs, resets,
sends 10 MB, presents a bad certificate, stops enforcing auth) becomes a failed
Outcome with a reason from the contract's bounded set, so the exporter keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import re
import socket
import ssl
import time
from dataclasses import dataclass, field, replace
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from cryptography import x509

from crmpulse import TransportError
from crmpulse.client import (
    PROBE_CONTEXT,
    AsyncClient,
    ProbeContext,
    Reply,
    Session,
    StepResult,
    http_options,
)
from crmpulse.config import (
    Check,
    HTTPCheck,
    JourneyCheck,
    LoadedConfig,
    ProtectionCheck,
    TLSCheck,
)
from crmpulse.contract import PHASES
from crmpulse.profile import RenderedRequest
from crmpulse.steps import evaluate_expect

from .access import ACCESS_RUNNERS, AccessFindings
from .transport import ProbeTransport, peer_certificate

__all__ = ["Outcome", "StepOutcome", "TargetRunner"]

INVALID_TOKEN = "crmpulse-deliberately-invalid-token"


@dataclass
class StepOutcome:
    name: str
    success: bool
    duration: float
    reason: str = ""


@dataclass
class Outcome:
    """The result of one check run."""

    check: str
    kind: str
    success: bool = True
    reason: str = ""
    message: str = ""
    duration: float = 0.0
    status: int = 0
    phases: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    steps: list[StepOutcome] = field(default_factory=list)
    auth_duration: float = 0.0
    tls_expiry: float | None = None
    tls_chain_valid: bool | None = None
    protections: dict[str, bool] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    finished_at: float = 0.0
    left_behind: int = 0
    access: AccessFindings | None = None
    #: sessions besides the run's own whose records are deleted after the run (access checks
    #: act as several credentials, and each deletes what it created)
    cleanups: list[Session] = field(default_factory=list, repr=False)

    def fail(self, reason: str, message: str) -> Outcome:
        if self.success:  # the first failure is the one that explains the run
            self.success, self.reason, self.message = False, reason, message
        return self


@functools.cache
def _default_context(verify: bool) -> ssl.SSLContext:
    """httpx's context for ``verify`` (certifi's roots), shared: loading it costs ~1 MB."""
    return httpx.create_ssl_context(verify=verify)


class TargetRunner:
    """Runs checks against one target with a shared client and shared credentials.

    Each request opens a fresh connection (no keep-alive), as blackbox_exporter does, so
    every run measures and exercises DNS, TCP and TLS; tokens, unlike connections, are
    reused across runs until they near expiry.
    """

    def __init__(self, loaded: LoadedConfig, base_url: str | None = None) -> None:
        self.loaded = loaded
        target = loaded.target if base_url is None else loaded.target.model_copy(
            update={"base_url": base_url.rstrip("/")})
        self.target = target
        options = http_options(target)
        # TLS contexts and files load here, so a config whose files are missing fails
        # when its runners are built (before a reload swaps them in), not at the first run
        verify = options.pop("verify")
        context = verify if isinstance(verify, ssl.SSLContext) else _default_context(verify)
        self.client = AsyncClient(target=target, profile=loaded.profile,
                                  http=httpx.AsyncClient(**options,
                                                         transport=ProbeTransport(context)))
        self.auth = self.client.session.auth

    async def aclose(self) -> None:
        await self.client.aclose()

    def session(self) -> Session:
        return Session(self.target, self.loaded.profile, auth=self.auth, force_authenticate=False)

    async def run(self, check: Check, timeout: float | None = None, debug: bool = False) -> Outcome:
        """Run ``check`` under ``timeout`` (default: the check's own); never raises."""
        timeout = check.timeout if timeout is None else timeout
        max_body = getattr(getattr(check, "expect", None), "max_body", ProbeContext.max_body)
        probe = ProbeContext(max_body=max_body, traces=[], log=[] if debug else None)
        outcome = Outcome(check=check.name, kind=check.kind)
        token = PROBE_CONTEXT.set(probe)
        session = self.session()
        auth_before = session.auth_elapsed
        start = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                await self._resolve(outcome, check)
                if outcome.success:
                    await _RUNNERS[check.kind](self, session, check, outcome)
        except TimeoutError:
            outcome.fail("timeout", f"no result within {timeout:g}s")
        except TransportError as exc:
            outcome.fail(exc.reason, str(exc))
        except Exception as exc:  # a bug must not take the exporter down; say what it was
            outcome.fail("assertion", f"internal error: {exc.__class__.__name__}")
        finally:
            # the time the loop kept finished replies waiting is the exporter's, not the CRM's
            elapsed = time.perf_counter() - start - probe.stalled
            outcome.auth_duration = session.auth_elapsed - auth_before
            outcome.duration = max(0.0, elapsed - outcome.auth_duration)
            for trace in probe.traces or []:
                for phase, value in trace.phases().items():
                    outcome.phases[phase] += value
            outcome.log = [*(probe.log or []), *outcome.log]
            for made in (*outcome.cleanups, session):
                await self._cleanup(made, outcome)
            PROBE_CONTEXT.reset(token)
            outcome.finished_at = time.time()
        return outcome

    async def _resolve(self, outcome: Outcome, check: Check) -> None:
        host = (check.host if isinstance(check, TLSCheck) and check.host
                else urlsplit(self.target.base_url).hostname) or ""
        try:
            ipaddress.ip_address(host)
            return
        except ValueError:
            pass
        start = time.perf_counter()
        try:
            await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except socket.gaierror:
            outcome.fail("dns", f"cannot resolve {host}")
        outcome.phases["resolve"] = time.perf_counter() - start

    async def _cleanup(self, session: Session, outcome: Outcome) -> None:
        if not session.ledger.pending:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(max(5.0, self.target.timeout)):
                await self.client.run(session.cleanup())
        left = len(session.ledger.pending)
        outcome.left_behind += left
        if left:
            outcome.log.append(f"cleanup left {left} record(s); the sweeper removes them")


# -- http ---------------------------------------------------------------------------------


def _http_request(runner: TargetRunner, session: Session, check: HTTPCheck) -> RenderedRequest:
    if check.request is not None:
        raw = check.request
        url = raw.path if re.match(r"https?://", raw.path) else urljoin(
            runner.target.base_url + "/", raw.path.lstrip("/"))
        return RenderedRequest(operation=check.name, method=raw.method, url=url,
                               headers=dict(raw.headers), content=raw.body, auth=raw.auth)
    assert check.operation is not None
    op = runner.loaded.profile.operation(check.operation)
    return op.render(runner.target.base_url, session.variables(dict(check.with_)))


async def run_http(runner: TargetRunner, session: Session, check: Check, outcome: Outcome) -> None:
    assert isinstance(check, HTTPCheck)
    request = _http_request(runner, session, check)
    reply: Reply = await runner.client.run(session.send(request))
    outcome.status = reply.status
    if check.expect.status is not None:
        accepted = reply.status in check.expect.status
    elif check.operation is not None:
        accepted = runner.loaded.profile.operation(check.operation).accepts(reply.status)
    else:
        accepted = 200 <= reply.status < 300
    if not accepted:
        reason = "auth" if reply.status in (401, 403) else "status"
        outcome.fail(reason, f"unexpected status {reply.status}")
        return
    # the status was judged above; the rest of `expect` is judged here
    failure = evaluate_expect(check.expect.model_copy(update={"status": None}), reply.status,
                              reply.headers, reply.body)
    if failure:
        outcome.fail("assertion", failure)


# -- journey ------------------------------------------------------------------------------


async def run_journey(runner: TargetRunner, session: Session, check: Check, outcome: Outcome) -> None:
    assert isinstance(check, JourneyCheck)
    results: list[StepResult] = await runner.client.run(session.steps(check.steps, {}))
    for result in results:
        r = result.result
        duration = result.waited if result.attempts > 1 else r.elapsed
        outcome.steps.append(StepOutcome(result.step, r.ok, duration, r.reason))
        if r.status:
            outcome.status = r.status
        if not r.ok:
            outcome.fail(r.reason or "assertion", r.message or f"step {result.step} failed")
    if len(results) < len(check.steps) and outcome.success:
        outcome.fail("assertion", "journey stopped early")


# -- tls ----------------------------------------------------------------------------------


async def run_tls(runner: TargetRunner, session: Session, check: Check, outcome: Outcome) -> None:
    assert isinstance(check, TLSCheck)
    parts = urlsplit(runner.target.base_url)
    if check.host:
        host, port = check.host, check.port or 443
    elif parts.scheme == "https":  # the target's own TLS endpoint, on its own port
        host, port = parts.hostname or "", check.port or parts.port or 443
    else:  # config validation refuses this for the target; /probe can still name an http:// one
        outcome.fail("tls", f"{runner.target.base_url} is plain {parts.scheme}: there is no TLS to "
                     "check (give the check a host that serves TLS)")
        return
    verified = ssl.create_default_context(cafile=runner.target.tls.ca_file)
    try:
        der = await _peer_certificate(host, port, verified, outcome)
        outcome.tls_chain_valid = True
    except ssl.SSLCertVerificationError as exc:
        outcome.tls_chain_valid = False
        outcome.fail("tls", f"certificate does not verify: {exc.verify_message}")
        unverified = ssl.create_default_context()
        unverified.check_hostname = False
        unverified.verify_mode = ssl.CERT_NONE
        der = await _peer_certificate(host, port, unverified, outcome)
    cert = x509.load_der_x509_certificate(der)
    expiry = cert.not_valid_after_utc.timestamp()
    outcome.tls_expiry = expiry
    if expiry <= time.time():
        outcome.fail("tls", "certificate has expired")


async def _peer_certificate(host: str, port: int, context: ssl.SSLContext, outcome: Outcome) -> bytes:
    try:
        der, connect, handshake = await peer_certificate(host, port, context)
    except ssl.SSLCertVerificationError:
        raise
    except ssl.SSLError as exc:
        raise TransportError(f"TLS handshake failed: {exc.reason}", "tls") from exc
    except socket.gaierror as exc:
        raise TransportError(f"cannot resolve {host}", "dns") from exc
    except OSError as exc:
        raise TransportError(f"cannot connect to {host}:{port}: {exc.strerror or exc}", "connect") from exc
    outcome.phases["connect"] += connect
    outcome.phases["tls"] += handshake
    if not der:
        raise TransportError("no certificate presented", "tls")
    return der


# -- protection ---------------------------------------------------------------------------


async def run_protection(runner: TargetRunner, session: Session, check: Check,
                         outcome: Outcome) -> None:
    assert isinstance(check, ProtectionCheck)
    op = runner.loaded.profile.operation(check.operation)
    request = op.render(runner.target.base_url, session.variables(dict(check.with_)))
    broken: list[str] = []

    async def send(req: RenderedRequest) -> Reply:
        reply: Reply = await runner.client.run(session.send(req))
        return reply

    if check.require_auth:
        anonymous = await send(replace(request, auth=False))
        forged = await send(replace(request, auth=False,
                                    headers={**request.headers,
                                             "Authorization": f"Bearer {INVALID_TOKEN}"}))
        unavailable = [r.status for r in (anonymous, forged) if r.status >= 500 or r.status == 429]
        if unavailable:  # a CRM that is down or throttling says nothing about its protections
            outcome.fail("status", f"{check.operation} answered {unavailable[0]}: protections "
                         "cannot be judged while the CRM is not serving")
            return
        holds = anonymous.status in (401, 403) and forged.status in (401, 403)
        outcome.protections["require_auth"] = holds
        if not holds:
            broken.append(f"auth not enforced: {check.operation} answered {anonymous.status} "
                          f"without credentials and {forged.status} with an invalid token")
    if check.https_redirect:
        http_url = _plain_http_url(check, request.url)
        reply = await send(replace(request, url=http_url, auth=False, params=request.params))
        location = reply.headers.get("location", "")
        holds = reply.status in (301, 302, 307, 308) and location.startswith("https://")
        outcome.protections["https_redirect"] = holds
        if not holds:
            broken.append(f"plain HTTP answered {reply.status} instead of redirecting to HTTPS")
    if check.hsts or check.forbidden_patterns:
        reply = await send(request)
        outcome.status = reply.status
        if not op.accepts(reply.status):
            outcome.fail("auth" if reply.status in (401, 403) else "status",
                         f"{check.operation} answered {reply.status} with valid credentials")
            return
        if check.hsts:
            header = {k.lower(): v for k, v in reply.headers.items()}.get(
                "strict-transport-security", "")
            match = re.search(r"max-age=(\d+)", header)
            holds = bool(match and int(match.group(1)) > 0)
            outcome.protections["hsts"] = holds
            if not holds:
                broken.append("no Strict-Transport-Security header with a max-age")
        if check.forbidden_patterns:
            text = reply.body.decode("utf-8", "replace")
            hits = [p for p in check.forbidden_patterns if re.search(p, text)]
            outcome.protections["forbidden_patterns"] = not hits
            if hits:
                # the pattern is the user's own config; never echo the matched data
                broken.append(f"response exposes data matching {len(hits)} forbidden "
                              f"pattern(s), first /{hits[0]}/")
    if broken:
        outcome.fail("protection", "; ".join(broken))


def _plain_http_url(check: ProtectionCheck, url: str) -> str:
    parts = urlsplit(url)
    if check.http_url:
        base = urlsplit(check.http_url)
        return urlunsplit(("http", base.netloc, parts.path, parts.query, ""))
    return urlunsplit(("http", parts.hostname or "", parts.path, parts.query, ""))


_RUNNERS = {"http": run_http, "journey": run_journey, "tls": run_tls, "protection": run_protection,
            **ACCESS_RUNNERS}
