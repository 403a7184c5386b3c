"""A load test within the CRM's API quotas: read them first, refuse, watch the floor, report.

A load test spends the same API quota the company's integrations live on. Before it
starts, :func:`read_quota` asks the CRM (each limits operation the profile's ``quota:``
names, then one cheap call for quotas read from response headers) and
:func:`plan_problems` refuses a plan whose estimated requests exceed
``loadtest.quota.max_share`` of what is left, or would leave less than
``loadtest.quota.floor`` of the limit. While it runs, every user's responses feed the
run's :class:`~crmpulse.quota.QuotaBook`, and :func:`under_floor` tells the monitor to
abort once what is left falls under the floor. :func:`spent` is what the report says.

Decisions (docs/loadtests.md): a quota whose window is shorter than the run (Dataverse's
five minutes) is compared with the plan's requests in one window, not the whole run's;
a quota the profile marks ``load_test: false`` (a per-app burst limit the load test's
own app has to itself) is neither checked nor watched; a quota the CRM did not report
before the run is not refused on, and the plan says so.
"""

from __future__ import annotations

import contextlib
from typing import Any

from crmpulse import Client, CrmpulseError, LoadedConfig
from crmpulse.quota import Quota, QuotaBook

__all__ = ["DEFAULT_READERS", "plan_problems", "read_quota", "spent", "under_floor"]

#: Cheap calls that carry quota headers, tried in order when ``read_with`` is not set.
DEFAULT_READERS = ("whoami", "list_accounts", "list_contacts")


def reader(loaded: LoadedConfig) -> str | None:
    configured = loaded.config.loadtest.quota.read_with
    if configured is not None:
        return configured
    return next((op for op in DEFAULT_READERS if op in loaded.profile.operations), None)


def read_quota(loaded: LoadedConfig, book: QuotaBook | None = None) -> QuotaBook:
    """Ask the CRM how much of each quota is spent; the answers are in the returned book."""
    book = book if book is not None else QuotaBook(loaded.profile.quota)
    if not book:
        return book
    with Client(loaded) as client:
        client.session.quota = book
        for operation in book.due(force=True):
            _call(client, operation)
        cheap = reader(loaded)
        if cheap is not None and any(book.get(s.name) is None for s in book.from_headers):
            _call(client, cheap)
    return book


def _call(client: Client, operation: str) -> None:
    # an operation that needs variables nobody gave: the quota stays unread
    with contextlib.suppress(CrmpulseError):
        client.call(operation)


def _share(requests: float, quota: Quota, duration: float) -> tuple[float, str]:
    """The plan's requests that count against one window of ``quota``, and how to say so."""
    window = quota.window_seconds
    if window and duration > window:
        per = requests * window / duration
        return per, f"about {per:,.0f} requests per {quota.window}"
    return requests, f"about {requests:,.0f} requests"


def plan_problems(loaded: LoadedConfig, requests: float, duration: float,
                  book: QuotaBook) -> tuple[list[str], list[str]]:
    """(reasons to refuse the plan, notes to print) for the quotas load tests keep within."""
    rails = loaded.config.loadtest.quota
    problems, notes = [], []
    for spec in loaded.profile.quota:
        if not spec.load_test:
            continue
        quota = book.get(spec.name)
        if quota is None:
            notes.append(f"API quota {spec.name}: the CRM did not report it before the run; "
                         "the plan is not checked against it")
            continue
        per, said = _share(requests, quota, duration)
        allowed = rails.max_share / 100 * quota.remaining
        floor = rails.floor / 100 * quota.limit
        where = (f"API quota {quota.name} ({quota.remaining:,.0f} of {quota.limit:,.0f} left"
                 f"{'' if quota.window == 'unknown' else f' per {quota.window}'})")
        notes.append(f"{where}: the plan sends {said}, {rails.max_share:g} % of what is left "
                     f"is {allowed:,.0f}")
        if per > allowed:
            problems.append(f"the plan sends {said}, more than loadtest.quota.max_share "
                            f"({rails.max_share:g} %) of what is left of {where}: shorten it "
                            "(--duration), lower --users or --rate, or wait for the quota to reset")
        elif quota.remaining - per < floor:
            problems.append(f"the plan sends {said}, which would leave less than "
                            f"loadtest.quota.floor ({rails.floor:g} % of the limit, {floor:,.0f}) of {where}")
    return problems, notes


def under_floor(loaded: LoadedConfig, book: QuotaBook, since: float) -> str | None:
    """Why the run must stop: a quota reported since ``since`` with less left than the floor."""
    rails = loaded.config.loadtest.quota
    watched = {s.name for s in loaded.profile.quota if s.load_test}
    for quota in book.readings():
        if quota.name in watched and quota.observed_at >= since and \
                quota.remaining < rails.floor / 100 * quota.limit:
            return (f"API quota {quota.name}: {quota.remaining:,.0f} of {quota.limit:,.0f} left, under "
                    f"loadtest.quota.floor ({rails.floor:g} % of the limit)")
    return None


def spent(before: list[Quota], after: list[Quota], duration: float) -> dict[str, dict[str, Any]]:
    """What the report says per quota: used before and after, and what the run spent.

    ``spent`` is the difference of the CRM's own counts: it includes the quota reads, the
    cleanup, and whatever else spent the quota meanwhile; it is None when the window is
    shorter than the run or reset during it (the counts are then not comparable).
    """
    out: dict[str, dict[str, Any]] = {}
    earlier = {q.name: q for q in before}
    for quota in after:
        first = earlier.get(quota.name)
        row: dict[str, Any] = {"window": quota.window, "limit": quota.limit, "used_after": quota.used,
                               "remaining_after": quota.remaining, "used_before": None, "spent": None}
        if first is not None:
            row["used_before"] = first.used
            comparable = (not quota.window_seconds or quota.window_seconds >= duration) and \
                quota.used >= first.used
            row["spent"] = quota.used - first.used if comparable else None
        out[quota.name] = row
    return out
