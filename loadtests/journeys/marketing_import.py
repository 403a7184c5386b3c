"""Marketing's bulk import: creates leads in batches (all marked, all deleted at the end)."""

from __future__ import annotations

from locust import task

from ..data import Faker
from ..driver import CONTACT, CRMUser, journey_timer

BATCH = 5


class MarketingImport(CRMUser):
    abstract = True
    journey = "marketing_import"
    calls = {"authenticate": frozenset(), "create_contact": CONTACT}
    creates = (0, BATCH)
    requests = BATCH

    def on_start(self) -> None:
        self.fake = Faker(self.marker, self.tags)
        self.call("authenticate")

    @task
    def import_a_batch(self) -> None:
        with journey_timer(self, "marketing_import") as journey:
            for _ in range(BATCH):
                created = self.call("create_contact", **self.fake.contact())
                if not created.ok:
                    journey.fail(created.message)
