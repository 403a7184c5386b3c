"""An integration's sync pull: pages through recently changed contacts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from locust import task

from ..driver import CRMUser, journey_timer

PAGES = 3


class IntegrationSync(CRMUser):
    abstract = True
    journey = "integration_sync"
    calls = {"authenticate": frozenset(),
             "list_contacts": frozenset({"page_size", "updated_since"})}
    requests = PAGES

    def on_start(self) -> None:
        self.call("authenticate")

    @task
    def pull_changes(self) -> None:
        since = (datetime.now(UTC) - timedelta(days=7)).isoformat(timespec="seconds").replace(
            "+00:00", "Z")
        with journey_timer(self, "integration_sync") as journey:
            pulled = self.call("list_contacts", max_pages=PAGES, page_size=50, updated_since=since)
            if not pulled.ok:
                journey.fail(pulled.message)
