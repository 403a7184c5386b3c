"""Locust's side of the operations engine: a User that runs profile operations.

The request logic (credentials, token refresh, retry on 401, pagination, cleanup
bookkeeping) is the core's ``Session`` flow, the same one the probes run; this module
only sends what the flow yields with Locust's FastHttpUser client, so every request is
in Locust's statistics under its **operation name**, and marks each one a success or a
failure with the flow's specific message (``create_contact: expected status 201, got 500``).

Before each request a user takes a token from the process's pacer (the target's
``safety.max_rps`` cap, and the open-model rate when a shape sets one). A ``429``
counts as a failure whose message starts with ``throttled``; with
``honour_retry_after`` the user then waits the ``Retry-After`` it was given.
"""

from __future__ import annotations

import random
import time
from typing import Any
from urllib.parse import urlencode

import gevent
from locust import FastHttpUser, between

from crmpulse import TransportError
from crmpulse.client import Flow, Reply, Session, Sleep
from crmpulse.profile import OperationResult, RenderedRequest

from .context import context

__all__ = ["CRMUser", "journey_timer"]


class CRMUser(FastHttpUser):
    """Base class of every journey: ``self.call("search_contacts", q="smith")``."""

    abstract = True
    wait_time = between(0.5, 1.5)

    def __init__(self, environment: Any) -> None:
        ctx = context()
        self.host = ctx.loaded.target.base_url
        super().__init__(environment)
        self.ctx = ctx
        # allowed_hosts: every request, whatever URL a response or variable produced, is
        # checked against the safety rail before it is sent (crmpulse.client.Session)
        self.session = Session(ctx.loaded.target, ctx.loaded.profile, force_authenticate=False,
                               allowed_hosts=ctx.loaded.target.safety.allowed_hosts)
        ctx.sessions.append(self.session)
        think = ctx.loaded.config.loadtest.think_time
        self.wait_time = lambda: random.uniform(think * 0.5, think * 1.5)  # type: ignore[method-assign]

    @property
    def marker(self) -> str:
        return self.ctx.marker

    def has(self, operation: str) -> bool:
        return operation in self.ctx.loaded.profile.operations

    def call(self, operation: str, max_pages: int = 1, **variables: Any) -> OperationResult:
        """Run one operation; never raises (a transport failure is a failed result)."""
        try:
            result: OperationResult = self.drive(self.session.call(operation, variables, max_pages))
        except TransportError as exc:
            return OperationResult(operation=operation, ok=False, reason=exc.reason, message=str(exc))
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
        except StopIteration as stop:
            return stop.value

    def _exchange(self, flow: Flow, request: RenderedRequest) -> Any:
        self.ctx.pacer.acquire()
        url = request.url
        if request.params:
            url += ("&" if "?" in url else "?") + urlencode(request.params, doseq=True)
        kwargs: dict[str, Any] = {"headers": request.headers, "name": request.operation,
                                  "catch_response": True, "allow_redirects": False}
        if request.json is not None:
            kwargs["json"] = request.json
        elif request.form is not None:
            kwargs["data"] = urlencode(request.form)
            kwargs["headers"] = {**request.headers,
                                 "Content-Type": "application/x-www-form-urlencoded"}
        elif request.content is not None:
            kwargs["data"] = request.content
        start = time.perf_counter()
        with self.client.request(request.method, url, **kwargs) as response:
            status = response.status_code or 0
            if status == 0:  # connection error: Locust already recorded it
                error = TransportError(str(response.error or "connection failed"), "connect")
                response.failure(str(error))
                return flow.throw(error)
            # the headers object is passed as is: copying it into a dict costs on every request
            reply = Reply(status, response.headers or {}, response.content or b"",
                          time.perf_counter() - start)
            # The flow judges the reply and moves on; its StopIteration must not cross the
            # `with`, or Locust would not record this request.
            finished: StopIteration | None = None
            item = None
            try:
                item = flow.send(reply)
            except StopIteration as stop:
                finished = stop
            ok, message = self.session.verdict
            if status == 429:
                response.failure(f"throttled (429) on {request.operation}")
                self._retry_after(response.headers.get("Retry-After"))
            elif ok:
                response.success()
            else:
                response.failure(message)
        if finished is not None:
            raise finished
        return item

    def _retry_after(self, header: str | None) -> None:
        loadtest = self.ctx.loaded.config.loadtest
        if not loadtest.honour_retry_after or not header:
            return
        try:
            seconds = float(header)
        except ValueError:
            return
        gevent.sleep(min(max(0.0, seconds), loadtest.max_retry_after))


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
        self.user.environment.events.request.fire(
            request_type="journey", name=self.name,
            response_time=(time.perf_counter() - self.start) * 1000, response_length=0,
            exception=Exception(self.error) if self.error else (exc[1] if exc[0] else None),
            context={})
