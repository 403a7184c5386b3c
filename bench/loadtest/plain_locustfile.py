"""The peer: a plain Locust FastHttpUser doing what the crmpulse support_agent journey does."""

from locust import FastHttpUser, constant, task


class PlainSupportAgent(FastHttpUser):
    wait_time = constant(0)

    @task
    def handle_a_ticket(self) -> None:
        self.client.get("/api/v1/search/contacts?q=smith", name="search_contacts")
        self.client.get("/api/v1/contacts/c1", name="get_contact")
        self.client.request("PATCH", "/api/v1/contacts/c1", json={"title": "Buyer"},
                            name="update_contact")
