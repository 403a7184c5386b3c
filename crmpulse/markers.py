"""Run markers: the tag on every record crmpulse creates, parsed back and matched exactly.

Every record a load test or a sync probe writes carries a marker, so that whatever a
crash leaves behind can be found and deleted, and nothing else ever is:

    crmpulse-<target>-lt-<stamp>-<nonce>   one load-test run   crmpulse-shop-lt-20261129t101500-3f9a1c0b7d2e
    crmpulse-<target>-lt                   every load test of a target (the family tag)
    crmpulse-<target>-sync-<pair>          one sync pair        crmpulse-shop-sync-search_heartbeat
    crmpulse-<target>-access-<check>       one access check     crmpulse-shop-access-tenant_isolation

Target and pair names are config names (``[a-z][a-z0-9_]*``): they never hold the
``-`` delimiter, so every field is delimited and a marker parses back to exactly one
(kind, target, name, nonce). A load-test run carries a random nonce, so two runs
started in the same second never share a marker.

A CRM's search may match substrings or tokens (``crmpulse-shop-sync-search`` is a
prefix of ``crmpulse-shop-sync-search_heartbeat``): a listed record is therefore never
trusted because the search returned it. :func:`sweep` deletes a record only when one
of the markers it carries (:func:`markers_in`) matches what is being swept exactly.

    marker = run_marker("shop")                 # crmpulse-shop-lt-20261129t101500-3f9a1c0b7d2e
    parse(str(marker)) == marker                # True
    carries({"tags": [str(marker)]}, marker)    # True

A sync pair's marker has no random part on purpose: a restarted exporter must find the
records its predecessor left with the same (often exact-match) filter. It is unique
because it is delimited and names the target and the pair; exact matching does the rest.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from ._exceptions import OperationError, TransportError
from .templates import render

if TYPE_CHECKING:
    from .config import LoadedConfig

__all__ = [
    "Marker",
    "SweepResult",
    "SweepTarget",
    "access_marker",
    "access_targets",
    "carries",
    "family_marker",
    "loadtest_targets",
    "markers_in",
    "pair_marker",
    "parse",
    "run_marker",
    "sweep",
    "sync_targets",
]

Kind = Literal["lt", "sync", "access"]
_NAME = r"[a-z][a-z0-9_]{0,62}"
_STAMP = r"\d{8}t\d{6}"
_GRAMMAR = re.compile(
    rf"crmpulse-(?P<target>{_NAME})-(?:"
    rf"(?P<lt>lt)(?:-(?P<stamp>{_STAMP})-(?P<nonce>[0-9a-f]{{6,16}}))?"
    rf"|(?P<sync>sync)-(?P<pair>{_NAME})"
    rf"|(?P<access>access)-(?P<check>{_NAME}))")
# where a marker may sit inside a longer string (an email, a note): between characters
# that cannot belong to one
_TOKENS = re.compile(r"[A-Za-z0-9_-]+")
_MAX_DEPTH = 8


@dataclass(frozen=True)
class Marker:
    """One parsed marker. ``name`` is the run id (``stamp-nonce``) or the pair; "" for a family."""

    kind: Kind
    target: str
    name: str = ""

    def __str__(self) -> str:
        return f"crmpulse-{self.target}-{self.kind}" + (f"-{self.name}" if self.name else "")

    @property
    def is_family(self) -> bool:
        return not self.name

    @property
    def started(self) -> float | None:
        """A load-test run's start (unix seconds, from its stamp); None otherwise."""
        if self.kind != "lt" or not self.name:
            return None
        stamp = self.name.split("-", 1)[0]
        return datetime.strptime(stamp, "%Y%m%dt%H%M%S").replace(tzinfo=UTC).timestamp()

    def family(self) -> Marker:
        return Marker(self.kind, self.target)


def parse(text: str) -> Marker | None:
    """The marker ``text`` is, exactly; None when it is not one (no partial matches)."""
    match = _GRAMMAR.fullmatch(text)
    if match is None:
        return None
    if match["lt"]:
        name = f"{match['stamp']}-{match['nonce']}" if match["stamp"] else ""
        return Marker("lt", match["target"], name)
    if match["access"]:
        return Marker("access", match["target"], match["check"])
    return Marker("sync", match["target"], match["pair"])


def run_marker(target: str, run_id: str | None = None) -> Marker:
    """A new load-test run's marker (UTC stamp and a random nonce), or the one of ``run_id``."""
    if run_id is None:
        run_id = time.strftime("%Y%m%dt%H%M%S", time.gmtime()) + "-" + secrets.token_hex(6)
    marker = parse(f"crmpulse-{target}-lt-{run_id}")
    if marker is None:
        raise ValueError(f"expected a run id like 20261129t101500-3f9a1c0b7d2e, got {run_id!r}")
    return marker


def family_marker(target: str, kind: Kind = "lt") -> Marker:
    """The tag every load-test record of ``target`` carries besides its run's marker."""
    return Marker(kind, target)


def pair_marker(target: str, pair: str) -> Marker:
    marker = parse(f"crmpulse-{target}-sync-{pair}")
    if marker is None:
        raise ValueError(f"expected config names, got target {target!r} and pair {pair!r}")
    return marker


def access_marker(target: str, check: str) -> Marker:
    """What an access check's records carry (no random part: a sweep finds any run's)."""
    marker = parse(f"crmpulse-{target}-access-{check}")
    if marker is None:
        raise ValueError(f"expected config names, got target {target!r} and check {check!r}")
    return marker


def _strings(value: Any, depth: int = 0) -> Iterator[str]:
    if depth > _MAX_DEPTH:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, depth + 1)


def markers_in(record: Any) -> set[Marker]:
    """Every marker a record carries, in any field (tags, an email, a custom field)."""
    found = set()
    for text in _strings(record):
        if "crmpulse-" not in text:
            continue
        for token in _TOKENS.findall(text):
            marker = parse(token)
            if marker is not None:
                found.add(marker)
    return found


def carries(record: Any, marker: Marker) -> bool:
    """Whether ``record`` carries exactly ``marker`` (a family matches any run of it)."""
    for found in markers_in(record):
        if found == marker or (marker.is_family and found.kind == marker.kind
                               and found.target == marker.target):
            return True
    return False


# -- the sweep ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepTarget:
    """One kind of record to sweep: how to list candidates and how to delete one.

    ``search`` is what the list filter is rendered with (``{{ marker }}``); ``accept``
    decides, from the markers a listed record carries, whether it is ours to delete.
    """

    label: str  # e.g. "contacts (load tests)"
    list_operation: str
    list_with: dict[str, Any]
    delete_operation: str
    delete_with: dict[str, Any]
    search: Marker
    accept: Callable[[set[Marker]], bool]
    pages: int = 50
    id_field: str = "id"
    created_field: str = "created_at"


@dataclass
class SweepResult:
    label: str
    listed: int = 0
    matched: int = 0
    deleted: int = 0
    failed: int = 0
    skipped_young: int = 0
    errors: list[str] = field(default_factory=list)


def created_at(item: dict[str, Any], field_name: str, markers: set[Marker]) -> float | None:
    """When a listed record was created: its own field, else its run marker's stamp."""
    value = item.get(field_name)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    stamps = [m.started for m in markers if m.started is not None]
    return min(stamps) if stamps else None


def sweep(call: Callable[..., Any], target: SweepTarget, variables: dict[str, Any],
          dry_run: bool = False, older_than: float = 0.0) -> SweepResult:
    """List candidates for ``target``, delete those whose markers ``accept`` says are ours.

    ``call(operation, max_pages=..., **variables)`` runs one operation and returns an
    OperationResult (a :class:`crmpulse.Client`'s ``call``, with retries as the caller
    wants them). A listed record that carries no marker, or another one, is left alone:
    the search that listed it may have matched a substring.
    """
    result = SweepResult(target.label)
    try:
        listing = call(target.list_operation, max_pages=target.pages,
                       **render(target.list_with, {**variables, "marker": str(target.search)}))
    except (OperationError, TransportError) as exc:
        result.errors.append(f"{target.list_operation}: {exc}")
        return result
    if not listing.ok:
        result.errors.append(listing.message or f"{target.list_operation} failed")
        return result
    now = time.time()
    for item in listing.items or []:
        if not isinstance(item, dict):
            continue
        result.listed += 1
        found = markers_in(item)
        if not found or not target.accept(found):
            continue
        created = created_at(item, target.created_field, found)
        if older_than > 0 and (created is None or now - created < older_than):
            result.skipped_young += 1
            continue
        result.matched += 1
        if dry_run:
            continue
        try:
            deleted = call(target.delete_operation,
                           **render(target.delete_with, {**variables, **item,
                                                         "id": item.get(target.id_field)}))
        except (OperationError, TransportError) as exc:
            result.failed += 1
            result.errors.append(f"{target.delete_operation}: {exc}")
            continue
        if deleted.ok or deleted.status == 404:
            result.deleted += 1
        else:
            result.failed += 1
            result.errors.append(deleted.message or f"{target.delete_operation} failed")
    return result


def loadtest_targets(loaded: LoadedConfig, search: Marker,
                     accept: Callable[[set[Marker]], bool]) -> list[SweepTarget]:
    """The profile's ``sweep`` section (how to list and delete marked records) as targets."""
    return [SweepTarget(label=f"{spec.operation} -> {spec.delete}", list_operation=spec.operation,
                        list_with=spec.with_, delete_operation=spec.delete,
                        delete_with=spec.delete_with, search=search, accept=accept, pages=spec.pages)
            for spec in loaded.profile.sweep]


def _exactly(marker: Marker) -> Callable[[set[Marker]], bool]:
    def accept(found: set[Marker]) -> bool:
        return marker in found
    return accept


def sync_targets(loaded: LoadedConfig) -> list[SweepTarget]:
    """One target per configured sync pair: its sweep listing, its create's cleanup rule."""
    targets = []
    for pair in loaded.config.probes.sync:
        marker = pair_marker(loaded.target.name, pair.name)
        cleanup = loaded.profile.operations[pair.create.operation].cleanup
        if cleanup is None:  # load_config refuses this; nothing could delete the records
            continue
        targets.append(SweepTarget(
            label=f"sync pair {pair.name}", list_operation=pair.sweep.operation,
            list_with=pair.sweep.with_, delete_operation=cleanup.operation,
            delete_with=cleanup.with_, search=marker, accept=_exactly(marker),
            pages=pair.sweep.pages, id_field=pair.sweep.id, created_field=pair.sweep.created_at))
    return targets


def access_targets(loaded: LoadedConfig) -> list[SweepTarget]:
    """Per access check that creates records, the profile's sweep specs searching its marker.

    They run with the target's credentials, which see what the target's own tenant holds:
    records an access check created as another tenant are that tenant's to sweep.
    """
    targets = []
    for check in loaded.config.probes.checks:
        if check.kind not in ("isolation", "role_scope", "exposure"):
            continue
        marker = access_marker(loaded.target.name, check.name)
        targets += [SweepTarget(label=f"access check {check.name}: {spec.operation} -> {spec.delete}",
                                list_operation=spec.operation, list_with=spec.with_,
                                delete_operation=spec.delete, delete_with=spec.delete_with,
                                search=marker, accept=_exactly(marker), pages=spec.pages)
                    for spec in loaded.profile.sweep]
    return targets
