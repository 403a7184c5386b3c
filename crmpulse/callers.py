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
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._yamlfile import KeyPath, LineMap
from .templates import placeholders, syntax_problems

if TYPE_CHECKING:
    from ._exceptions import Problem
    from .config import Config, System
    from .profile import Profile

__all__ = ["BUILTINS", "CALLERS", "Caller", "check_callers"]

#: Computed by the template engine itself (crmpulse.templates).
BUILTINS = ("unique", "now", "now_unix")


@dataclass(frozen=True)
class Caller:
    """What one kind of caller knows when it renders its ``with`` block."""

    what: str                      # in messages: "this check", "this step", ...
    knows: tuple[str, ...] = ()    # names besides built-ins and the variables sections
    after_create: bool = False     # also what the pair's create sent and extracted
    renders_with: bool = True      # False: its with values are passed as written


#: Keyed by where the caller sits in crmpulse.yaml. These are what crmpulse.probes
#: (checks.py, synclag.py) pass today.
CALLERS: dict[str, Caller] = {
    "probes.checks": Caller("this check", renders_with=False),
    "probes.checks.steps": Caller("this step"),  # + what earlier steps saved
    "probes.sync.create": Caller("this create", ("marker", "canary")),
    "probes.sync.update": Caller("this update", ("marker", "id", "heartbeat")),
    "probes.sync.read.canary": Caller("this read", ("marker", "canary"), after_create=True),
    "probes.sync.read.heartbeat": Caller("this read", ("marker", "id")),
    "probes.sync.webhook.subscribe": Caller("this subscribe", ("marker", "url", "webhook_secret")),
    "probes.sync.sweep": Caller("this sweep", ("marker",)),
}


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
        known = {*BUILTINS, *variables, *caller.knows, *extra}
        for key, value in with_.items():
            if not caller.renders_with and _heads(value, optional=True):
                self.problems.append(self.lines.problem(
                    (*where, "with", key), f"{caller.what} passes its with values as written: "
                    "templates are filled in journey steps and sync pairs, not here"))
                continue
            for name in sorted(_heads(value) - known):
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f'did you mean "{close[0]}"?' if close else \
                    f"known to {caller.what}: {', '.join(sorted(known))}"
                self.problems.append(self.lines.problem(
                    (*where, "with", key), f'unknown template variable "{name}" ({hint})'))
        op = profile.operations.get(operation)
        if op is None:
            return  # reported as an unknown operation already
        given = {*with_, *variables, *BUILTINS}
        for name in sorted(_heads([op.path, op.query, op.headers, op.json_body, op.form]) - given):
            self.problems.append(self.lines.problem(
                (*where, "with"), f'operation {operation} needs "{name}", which {caller.what} '
                "does not give: add it under with"))


def check_callers(config: Config, profile: Profile, systems: dict[str, tuple[System, Profile]],
                  lines: LineMap) -> list[Problem]:
    """Every template problem in the config's calls of profile operations."""
    checker = _Checker(lines)
    variables = {*profile.variables, *config.target.variables}
    for i, check in enumerate(config.probes.checks):
        where: KeyPath = ("probes", "checks", i)
        operation = getattr(check, "operation", None)
        if operation is not None and hasattr(check, "with_"):
            checker.call(where, CALLERS["probes.checks"], operation, check.with_, profile, variables)
        saved: set[str] = set()
        for j, step in enumerate(getattr(check, "steps", [])):
            checker.call((*where, "steps", j), CALLERS["probes.checks.steps"], step.operation,
                         step.with_, profile, variables, saved)
            saved |= set(step.save)
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
