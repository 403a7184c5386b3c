"""Which template variables each caller of a profile operation knows, checked at load.

An operation's templates (``path: /contacts/{{ id }}``) are filled from what its caller
passes under ``with``, the profile's and the target's ``variables``, and the built-ins
(``unique``, ``now``, ``now_unix``). A caller's own ``with`` templates are filled from
what that caller knows at that point: a journey step from the values earlier steps
saved, a sync pair from its marker, its canary id, what its create step sent and got
back. :data:`CALLERS` says what each caller knows; :func:`check_callers` checks every
``with`` of the config against it, and every operation against the ``with`` it is
given, so ``{{ emial }}`` is a config error instead of a check failing at 3 a.m.

A new kind of caller (a load-test journey publishing what it passes, say) adds a row
to :data:`CALLERS` and a loop to :func:`check_callers`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ._yamlfile import KeyPath, LineMap
from .templates import BUILTIN_FILTERS, expressions, filter_names, placeholders, syntax_problems

if TYPE_CHECKING:
    from ._exceptions import Problem
    from .config import Config, System
    from .profile import Profile

__all__ = ["BUILTINS", "CALLERS", "Caller", "Journey", "check_callers", "check_journeys",
           "contract_table", "needs"]

#: Computed by the template engine itself (crmpulse.templates).
BUILTINS = ("unique", "now", "now_unix")


@dataclass(frozen=True)
class Caller:
    """What one kind of caller knows when it renders its ``with`` block, and what it calls."""

    what: str                      # in messages: "this check", "this step", ...
    knows: tuple[str, ...] = ()    # names besides built-ins and the variables sections
    after_create: bool = False     # also what the pair's create sent and extracted
    renders_with: bool = True      # False: its with values are passed as written
    label: str = ""                # the contract table's caller column
    calls: str = ""                # ... its operation column
    passes: str = ""               # ... its variables column


#: Keyed by where the caller sits in crmpulse.yaml (or the profile). These are what
#: crmpulse.probes (checks.py, synclag.py) and the core's sweeps and cleanup pass today;
#: the table in docs/profiles.md is generated from them and the journeys' declarations.
CALLERS: dict[str, Caller] = {
    "probes.checks": Caller(
        "this check", renders_with=False, label="`http` check",
        calls="its `operation`", passes="its `with`, as written"),
    "probes.checks.protection": Caller(
        "this check", renders_with=False, label="`protection` check",
        calls="its `operation` (default `list_contacts`)",
        passes="its `with`, as written; sent without credentials, with a forged token, then "
        "with the target's"),
    "probes.checks.steps": Caller(
        "this step", label="`journey` check", calls="each step's `operation`",
        passes="each step's `with`, filled from what earlier steps `save`d"),
    "probes.checks.tls": Caller("this check", label="`tls` check", calls="none",
                                passes="(a TLS handshake with the host)"),
    "probes.sync.create": Caller(
        "this create", ("marker", "canary"), label="sync pair (every mode): create",
        calls="`create.operation` (it must declare `cleanup`)",
        passes="`create.with`, filled with `marker` (and `canary` in canary mode)"),
    "probes.sync.read.canary": Caller(
        "this read", ("marker", "canary"), after_create=True, label="`canary` pair: read",
        calls="`read.operation` (on `read.system` if set), until `read.found` matches",
        passes="`read.with`, filled with `marker`, `canary`, and what create sent and extracted"),
    "probes.sync.update": Caller(
        "this update", ("marker", "id", "heartbeat"), label="`heartbeat` pair: update",
        calls="`update.operation`",
        passes="`update.with`, filled with `marker`, `id` (the marker record's) and `heartbeat`"),
    "probes.sync.read.heartbeat": Caller(
        "this read", ("marker", "id"), label="`heartbeat` pair: read",
        calls="`read.operation`, reading `read.value`", passes="`read.with`, filled with `marker`, `id`"),
    "probes.sync.webhook.subscribe": Caller(
        "this subscribe", ("marker", "url", "webhook_secret"), label="`webhook` pair: subscribe",
        calls="`webhook.subscribe.operation` (its cleanup unsubscribes)",
        passes="its `with`, filled with `marker`, `url`, `webhook_secret`"),
    "probes.sync.sweep": Caller(
        "this sweep", ("marker",), label="sync pair (every mode): sweep",
        calls="`sweep.operation`, then create's cleanup operation per marked record",
        passes="`sweep.with`, filled with `marker`; the cleanup gets the listed record's fields"),
    "probes.checks.access.create": Caller(
        "this create", ("marker", "nonce", "email", "phone"),
        label="access check (`isolation`, `role_scope`, `exposure`): create",
        calls="`create.operation` (role_scope: `own.operation` too; it must declare `cleanup`)",
        passes="`create.with`, filled with `marker`, `nonce` and a synthetic `email` and `phone` "
        "(default: `first_name`, `last_name`, `email`, `tags`)"),
    "probes.checks.access.read": Caller(
        "this read", ("marker", "nonce", "email", "phone", "other_id", "own_id"), after_create=True,
        label="access check: `reads`, `denied`, `hidden_fields`",
        calls="each `operation`, as the check's credential",
        passes="its `with`, filled with what create sent and extracted (`id`), `marker`, `nonce`; "
        "role_scope: `other_id`, `own_id`"),
    "probes.checks.access.revoke": Caller(
        "this revoke", ("token",), label="`revocation` check: revoke",
        calls="`revoke.operation`, then `read.operation` until it is refused",
        passes="`revoke.with`, filled with `token` (the fresh token it revokes); `read.with`"),
    "probes.checks.access.login": Caller(
        "this login", ("username", "password"), label="`bruteforce` check: login",
        calls="`login.operation`: with the canary's password, then wrong ones, then its own again",
        passes="`login.with`, filled with `username` and `password` (the credential's, or a wrong "
        "one the check makes)"),
    "profile.sweep": Caller(
        "this sweep", ("marker",), label="load test end, `crmpulse sweep`: the profile's `sweep`",
        calls="each `sweep[].operation`, then `sweep[].delete` per marked record",
        passes="`with`, filled with `marker`; `delete_with`, filled with the listed record's fields"),
    "profile.cleanup": Caller(
        "this cleanup", label="everything that creates a record",
        calls="the create's `cleanup.operation`",
        passes="`cleanup.with`, filled with what the create sent and extracted"),
    "profile.credentials": Caller(
        "this credential", label="a credential of `type: operation`",
        calls="its `operation`, when its token is missing, near expiry or refused",
        passes="its `with`, filled from the profile's and target's `variables`"),
}


class Journey(Protocol):
    """What a load-test journey declares (crmpulse.loadtests: each journey class)."""

    #: operation -> the variables the journey passes to it
    calls: Mapping[str, frozenset[str]]
    #: operations it skips when the profile lacks them
    optional: frozenset[str]


def _heads(template: Any, optional: bool = False) -> set[str]:
    return {name.split(".", 1)[0] for name, opt in placeholders(template) if optional or not opt}


class _Checker:
    def __init__(self, lines: LineMap) -> None:
        self.lines = lines
        self.problems: list[Problem] = []

    def call(self, where: KeyPath, caller: Caller, operation: str, with_: dict[str, Any],
             profile: Profile, variables: Iterable[str], extra: Iterable[str] = ()) -> None:
        """Check one call site: its ``with`` templates, then what the operation needs."""
        for path, message in syntax_problems(with_, (*where, "with")):
            self.problems.append(self.lines.problem(path, message))
        usable = set(BUILTIN_FILTERS) | (set(profile.maps) if caller is CALLERS["probes.checks.steps"]
                                          else set())
        for name in sorted(filter_names(with_) - usable):
            self.problems.append(self.lines.problem(
                (*where, "with"), f'unknown filter "{name}" ({caller.what} may use '
                f"{', '.join(sorted(usable))}; value maps belong in the profile's operations)"))
        known = {*BUILTINS, *variables, *caller.knows, *extra}
        for key, value in with_.items():
            if not caller.renders_with and _heads(value, optional=True):
                self.problems.append(self.lines.problem(
                    (*where, "with", key), f"{caller.what} passes its with values as written: "
                    "templates are filled in journey steps and sync pairs, not here"))
                continue
            for missing in needs(value, known):
                name = missing.split('"', 1)[0]  # a fallback's first name: the others follow
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f'did you mean "{close[0]}"?' if close else \
                    f"known to {caller.what}: {', '.join(sorted(known))}"
                self.problems.append(self.lines.problem(
                    (*where, "with", key), f'unknown template variable "{missing}" ({hint})'))
        op = profile.operations.get(operation)
        if op is None:
            return  # reported as an unknown operation already
        for name in needs(op.templates, {*with_, *variables}):
            self.problems.append(self.lines.problem(
                (*where, "with"), f'operation {operation} needs "{name}", which {caller.what} '
                "does not give: add it under with"))


def needs(templates: Any, given: Iterable[str]) -> list[str]:
    """What templates need that ``given`` (and the built-ins) lack, as each expression says it:
    ``"id"``, or ``"contact_id" or "deal_id"`` for a fallback none of whose names is given."""
    known = {*given, *BUILTINS}
    missing = []
    for expression in expressions(templates):
        if not expression.required:
            continue
        heads = [name.split(".", 1)[0] for name in expression.names]
        if not any(head in known for head in heads):
            missing.append('" or "'.join(dict.fromkeys(heads)))
    return sorted(set(missing))


def check_callers(config: Config, profile: Profile, systems: dict[str, tuple[System, Profile]],
                  lines: LineMap) -> list[Problem]:
    """Every template problem in the config's calls of profile operations."""
    checker = _Checker(lines)
    variables = {*profile.variables, *config.target.variables}
    for name, credential in profile.credentials.items():
        checker.call(("profile", "credentials", name), CALLERS["profile.credentials"], credential.operation,
                     credential.with_, profile, variables)
    for i, check in enumerate(config.probes.checks):
        where: KeyPath = ("probes", "checks", i)
        operation = getattr(check, "operation", None)
        if operation is not None and hasattr(check, "with_"):
            checker.call(where, CALLERS["probes.checks.protection" if check.kind == "protection"
                                        else "probes.checks"],
                         operation, check.with_, profile, variables)
        saved: set[str] = set()
        for j, step in enumerate(getattr(check, "steps", [])):
            checker.call((*where, "steps", j), CALLERS["probes.checks.steps"], step.operation,
                         step.with_, profile, variables, saved)
            saved |= set(step.save)
    for i, check in enumerate(config.probes.checks):
        _access_calls(checker, ("probes", "checks", i), check, profile, variables)
    for i, pair in enumerate(config.probes.sync):
        where = ("probes", "sync", i)
        checker.call((*where, "create"), CALLERS["probes.sync.create"], pair.create.operation,
                     pair.create.with_, profile, variables)
        create_op = profile.operations.get(pair.create.operation)
        created = {*pair.create.with_, *(create_op.extract if create_op else {})}
        if pair.update is not None:
            checker.call((*where, "update"), CALLERS["probes.sync.update"], pair.update.operation,
                         pair.update.with_, profile, variables)
        if pair.read is not None:
            read_profile, read_variables = profile, variables
            if pair.read.system is not None:
                if pair.read.system not in systems:
                    continue  # reported already
                system, read_profile = systems[pair.read.system]
                read_variables = {*read_profile.variables, *system.variables}
            caller = CALLERS["probes.sync.read.heartbeat" if pair.mode == "heartbeat"
                             else "probes.sync.read.canary"]
            checker.call((*where, "read"), caller, pair.read.operation, pair.read.with_,
                         read_profile, read_variables, created if caller.after_create else ())
        if pair.webhook is not None and pair.webhook.subscribe is not None:
            checker.call((*where, "webhook", "subscribe"), CALLERS["probes.sync.webhook.subscribe"],
                         pair.webhook.subscribe.operation, pair.webhook.subscribe.with_, profile,
                         variables)
        checker.call((*where, "sweep"), CALLERS["probes.sync.sweep"], pair.sweep.operation,
                     pair.sweep.with_, profile, variables)
    return checker.problems


def _access_calls(checker: _Checker, where: KeyPath, check: Any, profile: Profile,
                  variables: set[str]) -> None:
    """The calls of an access check (crmpulse.probes.access), each with what it is given."""
    create, read = CALLERS["probes.checks.access.create"], CALLERS["probes.checks.access.read"]
    created: set[str] = set()
    for key in ("create", "own"):
        call = getattr(check, key, None)
        if call is None or check.kind not in ("isolation", "role_scope", "exposure"):
            continue
        checker.call((*where, key), create, call.operation, call.with_, profile, variables)
        op = profile.operations.get(call.operation)
        created |= {*call.with_, *(op.extract if op else {})}
    reads = getattr(check, "reads", None)
    calls: list[tuple[KeyPath, Any]] = []
    if isinstance(reads, dict):
        calls += [((*where, "reads", path), call) for path, call in reads.items()]
    elif isinstance(reads, list):
        calls += [((*where, "reads", i), call) for i, call in enumerate(reads)]
    for key in ("denied", "hidden_fields"):
        calls += [((*where, key, i), call) for i, call in enumerate(getattr(check, key, []))]
    for at, call in calls:
        checker.call(at, read, call.operation, call.with_, profile, variables, created)
    if check.kind in ("revocation", "bruteforce") and getattr(check, "read", None) is not None:
        # the request a token or a password must be refused on: given nothing of the run's own
        checker.call((*where, "read"), Caller("this read"), check.read.operation, check.read.with_,
                     profile, variables)
    if check.kind == "bruteforce" and check.login is not None:
        checker.call((*where, "login"), CALLERS["probes.checks.access.login"], check.login.operation,
                     check.login.with_, profile, variables)
    if check.kind == "revocation" and check.revoke is not None:
        checker.call((*where, "revoke"), CALLERS["probes.checks.access.revoke"],
                     check.revoke.operation, check.revoke.with_, profile, variables)


def check_journeys(config: Config, profile: Profile, journeys: Mapping[str, Journey],
                   lines: LineMap) -> tuple[list[Problem], list[str]]:
    """What the weighted load-test journeys need that the profile lacks, and notes.

    Problems (each at ``loadtest.journeys.NAME``): an operation a journey calls that the
    profile does not define (unless the journey skips it), a variable an operation needs
    that neither the journey nor the variables sections give. Notes: operations a journey
    will skip, variables it passes that the operation ignores (a journey's ``tags`` ignored
    by a create means its records are not marked for sweeps).
    """
    problems: list[Problem] = []
    notes: list[str] = []
    variables = {*profile.variables, *config.target.variables}
    for name, weight in config.loadtest.journeys.items():
        journey = journeys.get(name)
        if journey is None or weight <= 0:
            continue
        where: KeyPath = ("loadtest", "journeys", name)
        for operation, passed in journey.calls.items():
            op = profile.operations.get(operation)
            if operation == "authenticate" and (op is None or op.auth is False):
                continue  # the credentials' own token fetch, or nothing to fetch
            if op is None:
                if operation in journey.optional:
                    notes.append(f"journey {name} skips {operation}: profile {profile.name} does not "
                                 "define it")
                else:
                    problems.append(lines.problem(where, (
                        f"journey {name} calls {operation}, which profile {profile.name} does not "
                        f"define (add it, or set loadtest.journeys.{name}: 0)")))
                continue
            for variable in needs(op.templates, {*passed, *variables}):
                problems.append(lines.problem(where, (
                    f'journey {name} calls {operation} with {_listing(passed)}; the operation needs '
                    f'"{variable}" (define it in target.variables, or give it a fallback: '
                    f'"{{{{ {variable.split(chr(34))[0]} or ... }}}}")')))
            used = {n.split(".", 1)[0] for n, _ in op.variables()}
            ignored = sorted(set(passed) - used)
            if ignored:
                notes.append(f"journey {name} passes {', '.join(ignored)} to {operation}, which "
                             "ignores " + ("them" if len(ignored) > 1 else "it"))
    return problems, notes


def _listing(names: Iterable[str]) -> str:
    listed = sorted(names)
    return ", ".join(listed) if listed else "no variables"


def contract_table(journeys: Mapping[str, Journey]) -> str:
    """The Markdown table of every operation each caller calls and what it passes.

    docs/profiles.md holds its output between markers; a test regenerates it from the
    code (this module and the journeys' declarations) and compares.
    """
    rows = ["| caller | operation | variables it passes |", "|---|---|---|"]
    for name in sorted(journeys):
        journey = journeys[name]
        for operation in sorted(journey.calls):
            skip = " (skipped when the profile lacks it)" if operation in journey.optional else ""
            if operation == "authenticate":
                passed = ("none (without an `authenticate` operation, the credentials fetch their "
                          "own token or ride with each request)")
            else:
                passed = ", ".join(f"`{v}`" for v in sorted(journey.calls[operation])) or "none"
            rows.append(f"| journey `{name}` | `{operation}`{skip} | {passed} |")
    for caller in CALLERS.values():
        rows.append(f"| {caller.label} | {caller.calls} | {caller.passes} |")
    return "\n".join(rows) + "\n"
