"""A sales rep: logs in, lists and searches contacts, opens an account, moves a deal, logs a call."""

from __future__ import annotations

from locust import task

from ..data import Faker
from ..driver import ACTIVITY, DEAL, CRMUser, journey_timer


class SalesRep(CRMUser):
    abstract = True  # made concrete by the locustfile; its weight comes from the config
    journey = "sales_rep"
    calls = {"authenticate": frozenset(), "list_accounts": frozenset({"page_size"}),
             "create_deal": DEAL, "list_contacts": frozenset({"page_size"}),
             "search_contacts": frozenset({"q"}), "get_account": frozenset({"id"}),
             "update_deal": frozenset({"id", "stage"}), "log_activity": ACTIVITY}
    optional = frozenset({"get_account", "update_deal"})
    creates = (1, 1)
    requests = 5

    def on_start(self) -> None:
        self.fake = Faker(self.marker, self.tags)
        self.call("authenticate")
        accounts = self.call("list_accounts", page_size=20)
        self.account_ids = [a["id"] for a in accounts.items or [] if isinstance(a, dict) and "id" in a]
        deal = self.call("create_deal", **self.fake.deal(**(
            {"account_id": self.account_ids[0]} if self.account_ids else {})))
        self.deal_id = deal.values.get("id") if deal.ok else None

    @task
    def work_the_pipeline(self) -> None:
        with journey_timer(self, "sales_rep") as journey:
            listed = self.call("list_contacts", page_size=25)
            if not listed.ok:
                journey.fail(listed.message)
            found = self.call("search_contacts", q=self.fake.last_name())
            if not found.ok:
                journey.fail(found.message)
                return
            if self.account_ids and self.has("get_account"):
                account = self.call("get_account", id=self.fake.rng.choice(self.account_ids))
                if not account.ok:
                    journey.fail(account.message)
            if self.deal_id and self.has("update_deal"):
                moved = self.call("update_deal", id=self.deal_id, stage=self.fake.stage())
                if not moved.ok:
                    journey.fail(moved.message)
            contact_id = found.values.get("first_id")
            logged = self.call("log_activity", **self.fake.activity(
                **({"contact_id": contact_id} if contact_id else {})))
            if not logged.ok:
                journey.fail(logged.message)
