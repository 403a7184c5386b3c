"""Synthetic, realistic CRM data for load tests, marked with the run's marker.

Names and titles look like a real customer base (so payloads and search terms are
realistic), emails use the reserved ``crmpulse.example`` domain and embed the run
marker, and every record carries the run's marker and the target's load-test family
tag (:mod:`crmpulse.markers`), so the end-of-run sweep finds all of them, ``crmpulse
sweep`` finds what any earlier run left, and nothing can be mistaken for a real customer.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

__all__ = ["Faker"]

FIRST = ["Ava", "Liam", "Mia", "Noah", "Emma", "Lucas", "Sofia", "Mateo", "Olivia", "Elijah",
         "Amara", "Kenji", "Priya", "Tomasz", "Ingrid", "Diego", "Chloe", "Yusuf", "Hana", "Omar"]
LAST = ["Smith", "Garcia", "Muller", "Kowalski", "Tanaka", "Okafor", "Rossi", "Dubois",
        "Johansson", "Patel", "Nguyen", "Silva", "Cohen", "Kim", "Haddad", "Novak"]
TITLES = ["Head of Procurement", "CFO", "IT Manager", "Operations Lead", "VP Sales", "Buyer"]
SUBJECTS = ["Renewal call", "Pricing follow-up", "Quarterly review", "Demo scheduled",
            "Contract questions", "Onboarding check-in"]
STAGES = ["qualification", "proposal", "negotiation"]
_counter = itertools.count()
MAX_LOCAL = 63  # characters before "@crmpulse.example": 80 in all, Salesforce's Email limit


class Faker:
    def __init__(self, marker: str, tags: list[str] | None = None, seed: int | None = None) -> None:
        self.marker = marker
        self.tags = tags or [marker]
        self.rng = random.Random(seed)

    def last_name(self) -> str:
        return self.rng.choice(LAST)

    def title(self) -> str:
        return self.rng.choice(TITLES)

    def contact(self) -> dict[str, Any]:
        first, last = self.rng.choice(FIRST), self.rng.choice(LAST)
        n = next(_counter)
        return {"first_name": first, "last_name": last, "title": self.rng.choice(TITLES),
                "email": self.email(first, last, n), "tags": list(self.tags)}

    def email(self, first: str, last: str, n: int) -> str:
        """An address CRMs accept: at most MAX_LOCAL characters before the @.

        Salesforce refuses an Email longer than 80 characters (the domain takes 17) and
        RFC 5321 a local part over 64; when the name and the marker do not fit, the name
        goes first, then the marker (the record's tags still carry it).
        """
        for local in (f"{first.lower()}.{last.lower()}.{n}.{self.marker}", f"c{n}.{self.marker}"):
            if len(local) <= MAX_LOCAL:
                return f"{local}@crmpulse.example"
        return f"{first.lower()}.{last.lower()}.{n}@crmpulse.example"

    def deal(self, **extra: Any) -> dict[str, Any]:
        return {"name": f"{self.rng.choice(LAST)} renewal", "amount": self.rng.randint(5, 500) * 100,
                "stage": "prospecting", "tags": list(self.tags), **extra}

    def activity(self, **extra: Any) -> dict[str, Any]:
        return {"kind": self.rng.choice(["call", "email", "meeting", "note"]),
                "subject": self.rng.choice(SUBJECTS), "tags": list(self.tags), **extra}

    def stage(self) -> str:
        return self.rng.choice(STAGES)
