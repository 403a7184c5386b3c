"""Locust's side of the operations engine: a User that runs profile operations.

The request logic (credentials, token refresh, retry on 401, pagination, cleanup
bookkeeping) is the core's ``Session`` flow, the same one the probes run; this module
only sends what the flow yields, through geventhttpclient's pooled client (:mod:`.wire`:
the target's TLS settings and deadline, bounded bodies, cookies; not Locust's
``self.client``, whose wrappers cost as much CPU as the journey layer itself), and
reports every request to Locust's statistics (``events.request``) under its **operation
name**, a success or a failure with the flow's specific message (``create_contact:
expected status 201, got 500``).

Before each request a user takes a token from the process's pacer (the target's
``safety.max_rps`` cap, and the open-model rate when a shape sets one). A ``429``
counts as a failure whose message starts with ``throttled``; with
``honour_retry_after`` the user then waits the ``Retry-After`` it was given.

Each response time also goes into the run's HDR histograms (:mod:`.latency`), which
the gates and the report read. A journey declares the operations it calls and the
variables it passes (``calls``), so a profile that cannot serve it is refused before
the run (:func:`.safety.journey_problems`), not discovered by users crashing.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any, ClassVar

import gevent
from locust import FastHttpUser, between
from locust.exception import CatchResponseError

from crmpulse import TransportError
from crmpulse.client import Flow, Reply, Session, Sleep, failed_result
from crmpulse.profile import OperationResult, RenderedRequest

from .wire import Answer, Fields, Wire

if TYPE_CHECKING:
    from .loadrun import LoadRun

__all__ = ["CRMUser", "journey_timer"]

#: variables the journeys' fake data passes to the operations that create records
CONTACT = frozenset({"first_name", "last_name", "title", "email", "tags"})
DEAL = frozenset({"name", "amount", "stage", "tags", "account_id"})
ACTIVITY = frozenset({"kind", "subject", "tags", "contact_id"})


class CRMUser(FastHttpUser):
    """Base class of every journey: ``self.call("search_contacts", q="smith")``."""

    abstract = True
    wait_time = between(0.5, 1.5)
    #: the name in loadtest.journeys
    journey: ClassVar[str] = ""
    #: operation -> the variables this journey passes to it
    calls: ClassVar[dict[str, frozenset[str]]] = {}
    #: operations the journey skips when the profile lacks them
    optional: ClassVar[frozenset[str]] = frozenset()
    #: records it creates: (when a user starts, per iteration), for the dry run's estimate
    creates: ClassVar[tuple[int, int]] = (0, 0)
    #: requests one iteration sends, for the estimate
    requests: ClassVar[int] = 3

    def __init__(self, environment: Any) -> None:
        from .loadrun import run_of

        run = run_of(environment)
        self.host = run.loaded.target.base_url
        super().__init__(environment)
        self.loadrun: LoadRun = run
        # allowed_hosts: every request, whatever URL a response or variable produced, is
        # checked against the safety rail before it is sent (crmpulse.client.Session)
        self.session = Session(run.loaded.target, run.loaded.profile, force_authenticate=False,
                               allowed_hosts=run.loaded.target.safety.allowed_hosts, quota=run.quota)
        run.sessions.append(self.session)
        # requests go out here, not through self.client: see .wire
        self.wire = Wire(run.loaded.target)
        think = run.think_time
        self.wait_time = lambda: random.uniform(think * 0.5, think * 1.5)  # type: ignore[method-assign]

    def on_stop(self) -> None:
        # a user stopped in a ramp-down hangs up now, not when it is garbage-collected
        self.wire.close()

    @property
    def marker(self) -> str:
        return str(self.loadrun.marker)

    @property
    def tags(self) -> list[str]:
        """The tags every record of this run carries: its marker and the target's family tag."""
        return self.loadrun.tags

    def has(self, operation: str) -> bool:
        return operation in self.loadrun.loaded.profile.operations

    def call(self, operation: str, max_pages: int = 1, **variables: Any) -> OperationResult:
        """Run one operation; never raises (a transport failure is a failed result)."""
        try:
            result: OperationResult = self.drive(self.session.call(operation, variables, max_pages))
        except TransportError as exc:
            return failed_result(operation, exc)
        return result

    def drive(self, flow: Flow) -> Any:
        try:
            item = next(flow)
            while True:
                if isinstance(item, Sleep):
                    gevent.sleep(item.seconds)
                    item = flow.send(None)
                    continue
                item = self._exchange(flow, item)
                if item.__class__ is _Finished:
                    return item.value
        except StopIteration as stop:
            return stop.value

    def _exchange(self, flow: Flow, request: RenderedRequest) -> Any:
        """Send one request the flow yielded; the flow's next item, or _Finished with its value."""
        run = self.loadrun
        run.pacer.acquire()
        name, fire = request.operation, self.environment.events.request.fire
        started_at = time.time()
        start = time.perf_counter()
        try:
            answer = self.wire.send(request)
        except TransportError as error:
            elapsed = time.perf_counter() - start
            fire(request_type=request.method, name=name, response_time=elapsed * 1000, response_length=0,
                 exception=CatchResponseError(f"{name}: {error}"), context=self.context(),
                 response=Answer(0, _NO_FIELDS, b"", request.url), url=request.url, start_time=started_at)
            run.book.record("operation", name, elapsed, False)
            return flow.throw(error)
        elapsed = time.perf_counter() - start
        status, content = answer.status_code, answer.content
        # The flow judges the reply and moves on. Only a StopIteration's value is kept: the
        # exception itself, held in a local, would make a cycle with this frame (through
        # its traceback) that only the garbage collector frees, on every request.
        item: Any
        try:
            item = flow.send(Reply(status, answer.headers, content, elapsed))
        except StopIteration as stop:
            item = _Finished(stop.value)
        ok, message = self.session.verdict
        failure = None
        if status == 429:
            failure = CatchResponseError(f"throttled (429) on {name}")
            run.throttled[name] = run.throttled.get(name, 0) + 1
            ok = False
        elif not ok:
            failure = CatchResponseError(message)
        fire(request_type=request.method, name=name, response_time=elapsed * 1000,
             response_length=len(content), exception=failure, context=self.context(), response=answer,
             url=answer.url, start_time=started_at)
        run.book.record("operation", name, elapsed, ok)
        if status == 429:
            self._retry_after(answer.headers.get("Retry-After"))
        return item

    def _retry_after(self, header: str | None) -> None:
        loadtest = self.loadrun.loaded.config.loadtest
        if not loadtest.honour_retry_after or not header:
            return
        try:
            seconds = float(header)
        except ValueError:
            return
        gevent.sleep(min(max(0.0, seconds), loadtest.max_retry_after))


_NO_FIELDS = Fields()


class _Finished:
    """What a flow returned when it finished inside CRMUser._exchange."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class journey_timer:
    """Record a whole journey iteration as one Locust entry (request type ``journey``).

        with journey_timer(self, "sales_rep") as journey:
            if not self.call("search_contacts", q="smith").ok:
                journey.fail("search_contacts failed")
    """

    def __init__(self, user: CRMUser, name: str) -> None:
        self.user, self.name, self.error = user, name, ""

    def fail(self, message: str) -> None:
        self.error = self.error or message

    def __enter__(self) -> journey_timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None and not isinstance(exc[1], Exception):
            return  # GreenletExit and friends: the run is stopping, record nothing
        elapsed = time.perf_counter() - self.start
        failure = Exception(self.error) if self.error else (exc[1] if exc[0] else None)
        self.user.loadrun.book.record("journey", self.name, elapsed, failure is None)
        self.user.environment.events.request.fire(
            request_type="journey", name=self.name, response_time=elapsed * 1000,
            response_length=0, exception=failure, context={})
