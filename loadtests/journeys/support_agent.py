"""A support agent: searches a customer, reads the record, updates it."""

from __future__ import annotations

from locust import task

from ..data import Faker
from ..driver import CONTACT, CRMUser, journey_timer


class SupportAgent(CRMUser):
    abstract = True
    journey = "support_agent"
    calls = {"authenticate": frozenset(), "create_contact": CONTACT,
             "search_contacts": frozenset({"q"}), "get_contact": frozenset({"id"}),
             "update_contact": frozenset({"id", "title"})}
    creates = (1, 0)
    requests = 3

    def on_start(self) -> None:
        self.fake = Faker(self.marker, self.tags)
        self.call("authenticate")
        # Agents update a record this run created, never a real customer's.
        created = self.call("create_contact", **self.fake.contact())
        self.own_id = created.values.get("id") if created.ok else None

    @task
    def handle_a_ticket(self) -> None:
        with journey_timer(self, "support_agent") as journey:
            found = self.call("search_contacts", q=self.fake.last_name())
            if not found.ok:
                journey.fail(found.message)
                return
            contact_id = found.values.get("first_id")
            if contact_id:
                read = self.call("get_contact", id=contact_id)
                if not read.ok:
                    journey.fail(read.message)
            if self.own_id:
                updated = self.call("update_contact", id=self.own_id, title=self.fake.title())
                if not updated.ok:
                    journey.fail(updated.message)
