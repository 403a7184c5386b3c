"""Access checks: does customer data reach only the people who should see it?

Five kinds, each acting as named credentials (``target.credentials``) besides the
target's own, each run on a schedule like any check (``TargetRunner.run``):

- ``isolation``: a record the owner creates must be invisible to an observer (another
  tenant) on every read path configured (get, list, search, global search, export,
  report). Each path is judged only after the owner sees the record there itself, so a
  path that cannot show it (a lagging index, a wrong filter) is reported as not judged,
  never as holding.
- ``role_scope``: a restricted credential is refused the operations listed (403/404 as
  configured) and never receives the fields listed as hidden.
- ``exposure``: responses to a credential hold no personal data beyond what the config
  allows (detectors in ``detectors.py``); by default only the check's own records are
  scanned.
- ``revocation``: a token the check fetches and revokes is refused within ``within``; or a
  credential the config names as revoked is refused now.
- ``bruteforce``: wrong passwords against a canary account are throttled, or lock it,
  within ``attempts``; it refuses to run unless the config names the account twice (the
  credential and ``account``) and nothing else uses it.

Safety: records are the check's own, made of synthetic values (``Identity``), marked and
deleted after the run, whatever happens; findings are paths and counts; no message,
log line or metric carries a value read from the CRM or written to it. A path that
leaked is named, the record never is.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from crmpulse import AuthError, OperationError
from crmpulse.auth import OAuth2Provider, StaticAuth, make_auth
from crmpulse.client import Flow, Reply, Session
from crmpulse.config import (
    AccessCall,
    AccessCreate,
    BasicAuth,
    BruteforceCheck,
    Check,
    ExposureCheck,
    IsolationCheck,
    OAuth2Password,
    RevocationCheck,
    RoleScopeCheck,
)
from crmpulse.markers import access_marker
from crmpulse.origins import origin_of
from crmpulse.profile import OperationResult, RenderedRequest, loads_json
from crmpulse.templates import render

from .detectors import Scanner, child_path, path_allowed, plain_key

if TYPE_CHECKING:
    from .checks import Outcome, TargetRunner

__all__ = ["ACCESS_RUNNERS", "AccessFindings", "Identity", "detector_names", "hand_over"]


@dataclass
class AccessFindings:
    """What an access run found: per path whether the protection holds, and counts."""

    kind: str
    #: path -> holds, for the paths this run could judge (the others keep their last value)
    holds: dict[str, bool] = field(default_factory=dict)
    #: (path, detector) -> values beyond the allowance, for every read this run judged
    exposed: dict[tuple[str, str], int] = field(default_factory=dict)
    revocation_seconds: float | None = None
    login_attempts: int | None = None


@dataclass(frozen=True)
class Identity:
    """The synthetic person an access run writes: values no real customer holds.

    The email is under ``crmpulse.example`` (``.example`` is reserved, RFC 2606), the phone
    in 555-0100 to 555-0199 (reserved for fiction); the nonce makes the record
    recognizable in any response, JSON or CSV, without reading anything else.
    """

    marker: str
    nonce: str
    email: str
    phone: str

    @classmethod
    def new(cls, target: str, check: str) -> Identity:
        nonce = secrets.token_hex(6)
        return cls(str(access_marker(target, check)), nonce, f"crmpulse.access.{nonce}@crmpulse.example",
                   f"+1-555-01{random.randint(0, 99):02d}")

    def variables(self) -> dict[str, Any]:
        return {"marker": self.marker, "nonce": self.nonce, "email": self.email, "phone": self.phone}

    def values(self) -> tuple[str, ...]:
        """Every synthetic value: what no output may ever show (tests grep for them)."""
        return (self.email, self.phone)


def detector_names(check: ExposureCheck) -> tuple[str, ...]:
    return Scanner(check.detectors, check.patterns).names


class _Refused(Exception):
    """The run cannot go on: ``reason`` and ``message`` say why (never a value)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


class _Run:
    """One access run: its identity, a session per credential, and calls made as each."""

    def __init__(self, runner: TargetRunner, session: Session, check: Check, outcome: Outcome) -> None:
        self.runner, self.check, self.outcome = runner, check, outcome
        self.identity = Identity.new(runner.target.name, check.name)
        self.sessions: dict[str | None, Session] = {None: session}
        self.variables: dict[str, Any] = {**session.variables({}), **self.identity.variables()}

    def session(self, credential: str | None) -> Session:
        """A session acting as ``credential`` (None: the target's own); its records are
        deleted after the run with the same credential."""
        if credential not in self.sessions:
            assert credential is not None
            provider = self.runner.auth.named.get(credential)
            if provider is None:
                raise _Refused("auth", f"credential {credential} is not available here (an "
                               "anonymous probe of another origin carries none)")
            session = Session(self.runner.target, self.runner.loaded.profile, auth=provider,
                              force_authenticate=False)
            self.sessions[credential] = session
            self.outcome.cleanups.append(session)
        return self.sessions[credential]

    def render(self, with_: dict[str, Any], variables: dict[str, Any], operation: str) -> dict[str, Any]:
        try:
            rendered: dict[str, Any] = render(with_, variables, self.runner.loaded.profile.filters)
        except OperationError as exc:
            raise _Refused("assertion", f"{operation}: {exc}") from None
        return rendered

    async def call(self, session: Session, call: AccessCall, variables: dict[str, Any],
                   given: dict[str, Any] | None = None) -> OperationResult:
        """Call as ``session``: the operation gets its ``with`` filled from ``variables``
        (like a journey step), or ``given`` as it is."""
        rendered = self.render(call.with_, variables, call.operation) if given is None else given
        try:
            result: OperationResult = await self.runner.client.run(
                session.call(call.operation, rendered, call.pages))
        except OperationError as exc:
            raise _Refused("assertion", str(exc)) from None
        return result

    async def create(self, session: Session, spec: AccessCreate, who: str,
                     deleted_by: Session | None = None) -> dict[str, Any]:
        """Create the run's record as ``session``; what it sent and extracted, for later calls.

        ``deleted_by``: the session that deletes it after the run (a restricted credential
        may create records it may not delete).
        """
        sent = self.render(spec.with_, self.variables, spec.operation)
        before = set(session.ledger.pending)
        result = await self.call(session, AccessCall(operation=spec.operation), {}, sent)
        if deleted_by is not None:
            hand_over(session, deleted_by, before)
        if not result.ok:
            reason = "auth" if result.status == 401 else "status" if result.status else result.reason
            raise _Refused(reason or "status", f"{who} could not create the check's record: "
                           f"{spec.operation} answered {result.status or result.reason}")
        return {**sent, **result.values}

    def shows(self, result: OperationResult, record: dict[str, Any]) -> bool:
        """Whether a successful answer shows the run's record (its nonce, or a long id)."""
        if not 200 <= result.status < 300:
            return False
        tokens = [self.identity.nonce]
        record_id = record.get("id")
        if isinstance(record_id, str | int) and len(str(record_id)) >= 8:
            tokens.append(str(record_id))
        texts = [result.body.decode("utf-8", "replace")]
        if result.items and result.pages > 1:
            texts.append(json.dumps(result.items, default=str))
        return any(token in text for token in tokens for text in texts)


def hand_over(source: Session, to: Session, before: set[tuple[str, str]]) -> None:
    """Move what ``source`` created since ``before`` to ``to``'s ledger: ``to`` deletes it."""
    for key in set(source.ledger.pending) - before:
        to.ledger.add(key[0], key[1], source.ledger.pending.pop(key))


def _unusable(result: OperationResult) -> str | None:
    """Why an answer cannot be judged (the CRM is down, throttling, refusing us), or None."""
    if result.status == 401:
        return "auth"
    if result.status == 429 or result.status >= 500 or result.status == 0:
        return "status"
    return None


def _finish(outcome: Outcome, findings: AccessFindings, broken: list[str],
            unjudged: list[tuple[str, str]]) -> None:
    if broken:
        outcome.fail("protection", "; ".join(broken))
    if unjudged:
        reason = next((r for r, _ in unjudged if r == "auth"), unjudged[0][0])
        outcome.fail(reason, "not judged: " + "; ".join(m for _, m in unjudged))


async def _guarded(body: Any, runner: TargetRunner, session: Session, check: Check,
                   outcome: Outcome, kind: str) -> None:
    findings = AccessFindings(kind)
    outcome.access = findings
    run = _Run(runner, session, check, outcome)
    try:
        await body(run, findings)
    except _Refused as refused:
        outcome.fail(refused.reason, refused.message)


# -- isolation ------------------------------------------------------------------------------


async def _isolation(run: _Run, findings: AccessFindings) -> None:
    check = run.check
    assert isinstance(check, IsolationCheck)
    owner, observer = run.session(check.owner), run.session(check.observer)
    owner_name = check.owner or "target.auth"
    record = await run.create(owner, check.create, owner_name)
    variables = {**run.variables, **record}
    broken: list[str] = []
    unjudged: list[tuple[str, str]] = []
    for path, read in check.reads.items():
        deadline = time.monotonic() + read.within
        tries = 0
        while True:  # the control: the owner must see its own record on this path
            tries += 1
            mine = await run.call(owner, read, variables)
            if run.shows(mine, record) or time.monotonic() >= deadline:
                break
            await asyncio.sleep(min(0.1 * tries, 1.0, max(0.0, deadline - time.monotonic())))
        if not run.shows(mine, record):
            unjudged.append(((_unusable(mine) or "assertion"),
                             f"{path} ({read.operation}) does not show {owner_name} its own record "
                             f"(status {mine.status}" + (f", within {read.within:g}s" if read.within else "")
                             + ")"))
            continue
        theirs = await run.call(observer, read, variables)
        if run.shows(theirs, record):
            findings.holds[path] = False
            broken.append(f"{path} ({read.operation}) shows credential {check.observer} a record "
                          f"of {owner_name}")
            continue
        why = _unusable(theirs)
        if why is not None:
            unjudged.append((why, f"{path} ({read.operation}) answered {check.observer} "
                             f"{theirs.status or theirs.reason}"))
            continue
        findings.holds[path] = True
    if broken:
        broken[0] = "isolation broken: " + broken[0]
    _finish(run.outcome, findings, broken, unjudged)


# -- role scope ------------------------------------------------------------------------------


def _keys(value: Any, names: set[str], path: str = "$", depth: int = 0) -> Iterator[str]:
    """Normalized paths of every key in ``names`` under ``value`` (values never read)."""
    if depth > 32:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            child = child_path(path, key if key in names else plain_key(str(key)))
            if key in names:
                yield child
            yield from _keys(item, names, child, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _keys(item, names, f"{path}[*]", depth + 1)


async def _role_scope(run: _Run, findings: AccessFindings) -> None:
    check = run.check
    assert isinstance(check, RoleScopeCheck)
    restricted, owner = run.session(check.credential), run.session(check.owner)
    variables = dict(run.variables)
    if check.create is not None:
        other = await run.create(owner, check.create, check.owner or "target.auth")
        variables["other_id"] = other.get("id")
    if check.own is not None:  # the owner deletes it: the restricted credential may not
        own = await run.create(restricted, check.own, check.credential, deleted_by=owner)
        variables["own_id"] = own.get("id")
    broken: list[str] = []
    unjudged: list[tuple[str, str]] = []
    # hidden fields first: a denied delete that is allowed would take the record away
    for hidden in check.hidden_fields:
        path = f"fields:{hidden.operation}"
        result = await run.call(restricted, hidden, variables)
        if not 200 <= result.status < 300:
            unjudged.append((_unusable(result) or "status",
                             f"{hidden.operation} answered {check.credential} {result.status}"))
            continue
        try:
            document = loads_json(result.body) if result.body else None
        except (ValueError, RecursionError):  # not JSON, or nested deeper than Python parses
            unjudged.append(("assertion", f"{hidden.operation} answered with no JSON to look in"))
            continue
        found = set(_keys(document, set(hidden.fields)))
        if result.pages > 1 and result.items:
            found |= set(_keys(result.items, set(hidden.fields), "$(every page)"))
        findings.holds[path] = not found
        if found:
            shown = ", ".join(sorted(found)[:5])
            broken.append(f"{hidden.operation} shows credential {check.credential} hidden "
                          f"field(s) at {shown}")
    for denied in check.denied:
        before = set(restricted.ledger.pending)
        result = await run.call(restricted, denied, variables)
        hand_over(restricted, owner, before)  # what it should not have made, the owner deletes
        if result.status in denied.status:
            findings.holds[denied.operation] = True
        elif 200 <= result.status < 300:
            findings.holds[denied.operation] = False
            broken.append(f"{denied.operation} answered credential {check.credential} "
                          f"{result.status} instead of refusing "
                          f"({', '.join(str(s) for s in denied.status)})")
        else:
            unjudged.append((_unusable(result) or "status", f"{denied.operation} answered "
                             f"{check.credential} {result.status or result.reason}, neither a refusal "
                             "nor a success"))
    if broken:
        broken[0] = "role scope broken: " + broken[0]
    _finish(run.outcome, findings, broken, unjudged)


# -- exposure --------------------------------------------------------------------------------


def _own_records(value: Any, nonce: str, path: str = "$", depth: int = 0) -> Iterator[tuple[str, Any]]:
    """(normalized path, record) of every object carrying ``nonce`` in one of its own strings."""
    if depth > 32:
        return
    if isinstance(value, dict):
        direct = [v for v in value.values() if isinstance(v, str)]
        direct += [s for v in value.values() if isinstance(v, list) for s in v if isinstance(s, str)]
        if any(nonce in text for text in direct):
            yield path, value
            return
        for key, item in value.items():
            yield from _own_records(item, nonce, child_path(path, plain_key(str(key))), depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _own_records(item, nonce, f"{path}[*]", depth + 1)


def _scan(scanner: Scanner, result: OperationResult, nonce: str, whole: bool,
          items_path: str | None) -> tuple[Counter[tuple[str, str]], bool]:
    """Values found in an answer, by (detector, path); and whether the run's record was in it."""
    text = result.body.decode("utf-8", "replace")
    try:
        document: Any = loads_json(result.body) if result.body.strip() else None
    except (ValueError, RecursionError):  # not JSON (CSV, text), or nested too deeply to parse
        document = None
    if document is not None or not text.strip():
        parts: list[tuple[str, Any]] = [("$", document)]
        if result.pages > 1 and result.items is not None and items_path:
            parts = [(f"{items_path}[*]", item) for item in result.items]
        found: Counter[tuple[str, str]] = Counter()
        seen = False
        for root, part in parts:
            records = [(root, part)] if whole else list(_own_records(part, nonce, root))
            seen = seen or nonce in json.dumps(part, default=str)
            for at, record in records:
                found.update(scanner.document(record, at))
        return found, seen
    lines = text.splitlines()
    if "," in (lines[0] if lines else "") and len(lines) > 1:  # CSV: a header, then rows
        rows = lines if whole else [lines[0], *(line for line in lines[1:] if nonce in line)]
        return scanner.csv("\n".join(rows)), nonce in text
    kept = text if whole else "\n".join(line for line in lines if nonce in line)
    return Counter({(name, "$body"): n for name, n in scanner.text(kept).items()}), nonce in text


async def _exposure(run: _Run, findings: AccessFindings) -> None:
    check = run.check
    assert isinstance(check, ExposureCheck)
    scanner = Scanner(check.detectors, check.patterns)
    actor = run.session(check.credential)
    who = check.credential or "target.auth"
    record = await run.create(actor, check.create, who)
    variables = {**run.variables, **record}
    allowed: dict[str, list[str]] = {}
    for allowance in check.allow:
        allowed.setdefault(allowance.detector, []).append(allowance.path)
    broken: list[str] = []
    unjudged: list[tuple[str, str]] = []
    for read in check.reads:
        result = await run.call(actor, read, variables)
        if not 200 <= result.status < 300:
            unjudged.append((_unusable(result) or "status", f"{read.operation} answered {who} "
                             f"{result.status or result.reason}"))
            continue
        op = run.runner.loaded.profile.operations[read.operation]
        items_path = op.paginate.items if op.paginate else None
        found, seen = _scan(scanner, result, run.identity.nonce, check.scan == "whole_response",
                            items_path)
        if not seen and check.scan == "own_records":
            unjudged.append(("assertion", f"{read.operation} does not show {who} the check's own "
                             "record, so there is nothing of its own to scan"))
            continue
        beyond: Counter[str] = Counter()
        where: dict[str, set[str]] = {}
        for (detector, path), count in found.items():
            if path_allowed(path, allowed.get(detector, [])):
                continue
            beyond[detector] += count
            where.setdefault(detector, set()).add(path)
        for detector in scanner.names:
            key = (read.operation, detector)
            findings.exposed[key] = findings.exposed.get(key, 0) + beyond[detector]
        holds = not beyond
        findings.holds[read.operation] = findings.holds.get(read.operation, True) and holds
        if not holds:
            shown = "; ".join(f"{beyond[d]} {d} at {', '.join(sorted(where[d])[:3])}"
                              for d in sorted(beyond))
            broken.append(f"{read.operation} exposes to {who}: {shown}")
    if broken:
        broken[0] = "personal data exposed: " + broken[0]
    _finish(run.outcome, findings, broken, unjudged)


# -- revocation ------------------------------------------------------------------------------


async def _revocation(run: _Run, findings: AccessFindings) -> None:
    check = run.check
    assert isinstance(check, RevocationCheck)
    if check.revoke is None:
        await _already_revoked(run, findings, check)
        return
    runner = run.runner
    spec = runner.target.credentials.get(check.credential)
    if spec is None or not runner.auth.named.get(check.credential):
        raise _Refused("auth", f"credential {check.credential} is not available here")
    # a provider of its own: the token it revokes is fresh, never one other checks share
    copy = runner.target.model_copy(update={"auth": spec, "credentials": {}})
    fresh = make_auth(copy, runner.loaded.profile)
    holder = Session(copy, runner.loaded.profile, auth=fresh, force_authenticate=False)
    run.outcome.cleanups.append(holder)
    control = await run.call(holder, check.read, run.variables)
    if not 200 <= control.status < 300 or not isinstance(fresh, OAuth2Provider) or not fresh.token:
        raise _Refused(_unusable(control) or "status", f"{check.read.operation} does not work "
                       f"with a fresh token of {check.credential} (status {control.status}): "
                       "nothing to revoke")
    header, value = next(iter(fresh.headers().items()))
    pinned = StaticAuth("bearer", header, value)  # the token as it is: no refresh, no retry on 401
    pinned.origins = fresh.origins
    revoked = await run.call(holder, check.revoke, {**run.variables, "token": fresh.token})
    if not 200 <= revoked.status < 300:
        raise _Refused(_unusable(revoked) or "status", f"{check.revoke.operation} answered "
                       f"{revoked.status or revoked.reason}: the token was not revoked")
    fresh.invalidate()
    user = Session(copy, runner.loaded.profile, auth=pinned, force_authenticate=False)
    started = time.monotonic()
    tries = 0
    while True:
        tries += 1
        answer = await run.call(user, check.read, run.variables)
        waited = time.monotonic() - started
        if answer.status in check.refused_status:
            findings.holds["revoke"], findings.revocation_seconds = True, waited
            return
        if not 200 <= answer.status < 300:
            raise _Refused(_unusable(answer) or "status", f"{check.read.operation} answered "
                           f"{answer.status or answer.reason} to the revoked token, neither a "
                           "refusal nor a success")
        if waited >= check.within:
            findings.holds["revoke"], findings.revocation_seconds = False, waited
            run.outcome.fail("protection", f"revocation ignored: {check.read.operation} still "
                             f"accepts a token of {check.credential} {waited:.1f}s after it was "
                             f"revoked (allowed: {check.within:g}s)")
            return
        await asyncio.sleep(min(0.1 * tries, 1.0, max(0.0, check.within - waited)))


async def _already_revoked(run: _Run, findings: AccessFindings, check: RevocationCheck) -> None:
    session = run.session(check.credential)
    try:
        answer = await run.call(session, check.read, run.variables)
    except AuthError:
        findings.holds["revoked"] = True  # not even a token for it: refused at the door
        return
    if answer.status in check.refused_status:
        findings.holds["revoked"] = True
    elif 200 <= answer.status < 300:
        findings.holds["revoked"] = False
        run.outcome.fail("protection", f"revocation ignored: {check.read.operation} accepts "
                         f"credential {check.credential}, which the config names as revoked")
    else:
        raise _Refused(_unusable(answer) or "status", f"{check.read.operation} answered "
                       f"{answer.status or answer.reason}, neither a refusal nor a success")


# -- bruteforce ------------------------------------------------------------------------------


class _Login:
    """Signs in as the canary with its password or a wrong one; answers the status."""

    def __init__(self, run: _Run, check: BruteforceCheck) -> None:
        runner = run.runner
        spec = runner.target.credentials.get(check.credential)
        # checked at load too; checked again here so nothing but the named canary is ever tried
        if not isinstance(spec, OAuth2Password | BasicAuth) or spec.username != check.account:
            raise _Refused("assertion", f"refusing to try passwords: credential {check.credential} "
                           f"is not a password credential of the account the check names")
        if isinstance(spec, BasicAuth) and check.read is None and check.login is None:
            raise _Refused("assertion", "a basic credential signs in through login or read: give one")
        self.run, self.check, self.spec = run, check, spec

    async def attempt(self, right: bool) -> int:
        runner, spec = self.run.runner, self.spec
        if not right:
            wrong = "crmpulse-wrong-" + secrets.token_urlsafe(12)
            spec = spec.model_copy(update={"password": SecretStr(wrong)})
        if self.check.login is not None:  # a sign-in endpoint: the password goes in its body
            anonymous = Session(runner.target.anonymous(), runner.loaded.profile)
            given = {**self.run.variables, "username": spec.username,
                     "password": spec.password.get_secret_value()}
            login = self.check.login
            result = await self.run.call(anonymous, login, {}, self.run.render(
                login.with_, given, login.operation))
            return result.status
        copy = runner.target.model_copy(update={"auth": spec, "credentials": {}})
        provider = make_auth(copy, runner.loaded.profile)
        session = Session(copy, runner.loaded.profile, auth=provider, force_authenticate=False)
        if isinstance(provider, OAuth2Provider):
            request = provider.token_request()
            if not session.destination(request) and origin_of(request.url) not in provider.token_origins:
                raise _Refused("assertion", "the canary's token URL is not an origin its "
                               "credentials may go to")
            reply: Reply = await runner.client.run(_once(request))
            return reply.status
        assert self.check.read is not None
        result = await self.run.call(session, self.check.read, self.run.variables)
        return result.status


def _once(request: RenderedRequest) -> Flow:
    reply = yield request
    return reply


async def _bruteforce(run: _Run, findings: AccessFindings) -> None:
    check = run.check
    assert isinstance(check, BruteforceCheck)
    login = _Login(run, check)
    first = await login.attempt(right=True)
    if first in check.throttled_status:
        findings.holds["login"], findings.login_attempts = True, 0  # locked since an earlier run
        return
    if not 200 <= first < 300:
        raise _Refused("auth" if 400 <= first < 500 else "status", (
            f"the canary's own password is refused ({first}) before any wrong one: it is still "
            "locked from an earlier run (run this check less often than the lockout lasts) or "
            "its password in the config is wrong"))
    for attempt in range(1, check.attempts + 1):
        status = await login.attempt(right=False)
        if status in check.throttled_status:
            findings.holds["login"], findings.login_attempts = True, attempt
            return
        if 200 <= status < 300:
            findings.holds["login"], findings.login_attempts = False, attempt
            run.outcome.fail("protection", "login protection broken: a wrong password signed "
                             f"the canary in (attempt {attempt})")
            return
        if status == 429 or status >= 500:
            raise _Refused("status", f"sign-in answered {status} on wrong password {attempt}")
    last = await login.attempt(right=True)
    findings.login_attempts = check.attempts
    if 200 <= last < 300:
        findings.holds["login"] = False
        run.outcome.fail("protection", f"login protection broken: {check.attempts} wrong passwords "
                         "neither throttled nor locked the canary account")
        return
    findings.holds["login"] = True  # locked: even its own password is refused now


def _runner(body: Any, kind: str) -> Any:
    async def run(runner: TargetRunner, session: Session, check: Check, outcome: Outcome) -> None:
        await _guarded(body, runner, session, check, outcome, kind)
    return run


#: kind -> the function TargetRunner.run calls, like every other check kind's
ACCESS_RUNNERS = {
    "isolation": _runner(_isolation, "isolation"),
    "role_scope": _runner(_role_scope, "role_scope"),
    "exposure": _runner(_exposure, "exposure"),
    "revocation": _runner(_revocation, "revocation"),
    "bruteforce": _runner(_bruteforce, "bruteforce"),
}
