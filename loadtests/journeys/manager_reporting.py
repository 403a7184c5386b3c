"""A manager's reporting: heavy aggregate and list queries."""

from __future__ import annotations

from locust import task

from ..driver import CRMUser, journey_timer


class ManagerReporting(CRMUser):
    abstract = True
    journey = "manager_reporting"
    calls = {"authenticate": frozenset(), "pipeline_report": frozenset(),
             "list_deals": frozenset({"page_size"}), "list_accounts": frozenset({"page_size"})}
    optional = frozenset({"pipeline_report", "list_deals"})
    requests = 5

    def on_start(self) -> None:
        self.call("authenticate")

    @task
    def review_the_pipeline(self) -> None:
        with journey_timer(self, "manager_reporting") as journey:
            if self.has("pipeline_report"):
                report = self.call("pipeline_report")
                if not report.ok:
                    journey.fail(report.message)
            if self.has("list_deals"):
                deals = self.call("list_deals", max_pages=2, page_size=100)
                if not deals.ok:
                    journey.fail(deals.message)
            accounts = self.call("list_accounts", max_pages=2, page_size=100)
            if not accounts.ok:
                journey.fail(accounts.message)
