"""Realistic, obviously synthetic CRM records for ``crmpulse sandbox --seed N``.

Names look like a real customer base so journeys exercise realistic payload sizes
and search terms, but every email and website lives under the reserved ``.example``
domain, so seeded data can never be mistaken for (or mailed as) real customers.
The same N always gives the same records with the same ids, so ``POST /admin/reset``
brings back exactly the records a test saw at start.

Contacts also hold sensitive personal data that no API returns unless a fault knob
exposes it, all synthetic and from ranges no real person holds: a US-style tax id in
the 9XX ITIN form, a payment card number that passes the Luhn check in the 400000
test range card networks publish for testing, a UK National Insurance number with
the QQ prefix HMRC uses for examples (never issued), and an IBAN of the made-up bank
code SBOX whose check digits are valid.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from .store import TABLES

__all__ = ["LEAD_STATUSES", "STAGES", "luhn_ok", "seed", "sensitive_values"]

FIRST = ["Ava", "Liam", "Mia", "Noah", "Emma", "Lucas", "Sofia", "Mateo", "Olivia", "Elijah",
         "Amara", "Kenji", "Priya", "Tomasz", "Ingrid", "Diego", "Chloe", "Yusuf", "Hana", "Omar",
         "Grace", "Leon", "Zara", "Felix", "Aisha", "Ravi", "Elena", "Jonas", "Nora", "Malik"]
LAST = ["Smith", "Garcia", "Müller", "Kowalski", "Tanaka", "Okafor", "Rossi", "Dubois",
        "Johansson", "Patel", "Nguyen", "Silva", "Cohen", "Kim", "Haddad", "Novak", "O'Brien",
        "Fischer", "Lopez", "Andersen", "Ivanova", "Mensah", "Costa", "Brown", "Yilmaz"]
COMPANY_A = ["Northwind", "Bluepeak", "Cedar", "Lumen", "Quarry", "Harbor", "Summit", "Vertex",
             "Atlas", "Maple", "Orbit", "Pioneer", "Granite", "Silverline", "Evergreen", "Keystone"]
COMPANY_B = ["Logistics", "Foods", "Analytics", "Health", "Retail", "Energy", "Capital",
             "Labs", "Travel", "Manufacturing", "Media", "Security", "Software", "Outdoor"]
INDUSTRIES = ["retail", "manufacturing", "healthcare", "finance", "software", "logistics",
              "energy", "media", "travel", "education"]
TITLES = ["Head of Procurement", "CFO", "IT Manager", "Operations Lead", "VP Sales",
          "Office Manager", "Buyer", "CTO", "Marketing Director", "Account Payable Clerk"]
COUNTRIES = ["US", "DE", "FR", "GB", "JP", "BR", "IN", "NG", "SE", "PL", "CA", "AU"]
STAGES = ["prospecting", "qualification", "proposal", "negotiation", "closed_won", "closed_lost"]
KINDS = ["call", "email", "meeting", "note", "task"]
LEAD_STATUSES = ["new", "working", "qualified", "disqualified"]
LEAD_SOURCES = ["web", "event", "referral", "partner", "cold_call"]


def _luhn_digit(digits: str) -> str:
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = int(char) * (2 if i % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str((10 - total % 10) % 10)


def luhn_ok(number: str) -> bool:
    return number.isascii() and number.isdigit() and len(number) > 1 \
        and _luhn_digit(number[:-1]) == number[-1]


def _iban(country: str, bban: str) -> str:
    """An IBAN with valid check digits (ISO 13616 mod 97) for this country and BBAN."""
    rearranged = bban + country + "00"
    number = int("".join(str(int(c, 36)) for c in rearranged))
    return f"{country}{98 - number % 97:02d}{bban}"


def sensitive_values(rng: random.Random) -> dict[str, str]:
    """Card number, national id and IBAN for one synthetic contact (see the module docstring)."""
    card = "400000" + "".join(str(rng.randint(0, 9)) for _ in range(9))
    return {
        "tax_id": f"9{rng.randint(0, 99):02d}-{rng.randint(70, 99)}-{rng.randint(0, 9999):04d}",
        "card_number": card + _luhn_digit(card),
        "national_id": f"QQ{rng.randint(0, 999999):06d}{rng.choice('ABCD')}",
        "iban": _iban("GB", f"SBOX{rng.randint(0, 999999):06d}{rng.randint(0, 99999999):08d}"),
    }


def _slug(text: str) -> str:
    return "".join(c for c in text.lower().replace(" ", "-") if c.isalnum() or c == "-")


def seed(store: Any, contacts: int, rng: random.Random | None = None, tenant: str | None = None,
         owners: list[str] | None = None) -> None:
    """Insert ``contacts`` contacts plus proportional accounts, deals, activities and leads.

    Records belong to ``tenant``; every fifth is owned by the second of ``owners`` (the
    restricted user, so it has records of its own), the rest by the first.
    """
    rng = rng or random.Random(1)
    ids = random.Random(2)  # its own stream, so adding a kind of record leaves the others be
    private = random.Random(3)  # sensitive values: their own stream too
    owners = owners or []
    made = 0

    def insert(table: str, values: dict[str, Any]) -> dict[str, Any]:
        nonlocal made
        if owners:
            values["owner_id"] = owners[1] if made % 5 == 4 and len(owners) > 1 else owners[0]
        if tenant:
            values["tenant_id"] = tenant
        if table == "contacts":
            values.update({k: v for k, v in sensitive_values(private).items() if k != "tax_id"})
        made += 1
        record: dict[str, Any] = store.insert(
            table, values, record_id=f"{TABLES[table]}_{ids.getrandbits(64):016x}")
        return record

    accounts = []
    for i in range(max(1, contacts // 10)):
        name = f"{rng.choice(COMPANY_A)} {rng.choice(COMPANY_B)}"
        if i >= len(COMPANY_A) * len(COMPANY_B) // 2:
            name += f" {i}"
        accounts.append(insert("accounts", {
            "name": name, "industry": rng.choice(INDUSTRIES),
            "website": f"https://{_slug(name)}.example", "country": rng.choice(COUNTRIES)}))
    for i in range(contacts):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        account = rng.choice(accounts)
        domain = account["website"].removeprefix("https://")
        contact = insert("contacts", {
            "first_name": first, "last_name": last,
            "email": f"{_slug(first)}.{_slug(last)}{i}@{domain}",
            "phone": f"+1-555-01{rng.randint(0, 99):02d}", "title": rng.choice(TITLES),
            "account_id": account["id"], "tags": [], "custom": {},
            "tax_id": f"9{rng.randint(0, 99):02d}-{rng.randint(70, 99)}-{rng.randint(0, 9999):04d}"})
        if i % 3 == 0:
            deal = insert("deals", {
                "name": f"{account['name']} renewal", "amount": float(rng.randint(5, 500) * 100),
                "currency": "USD", "stage": rng.choice(STAGES), "account_id": account["id"],
                "contact_id": contact["id"], "tags": [],
                "close_date": (date(2026, 1, 1) + timedelta(days=rng.randint(0, 364))).isoformat()})
            insert("activities", {
                "kind": rng.choice(KINDS), "subject": f"Follow-up on {deal['name']}",
                "contact_id": contact["id"], "deal_id": deal["id"], "notes": "", "tags": [],
                "occurred_at": f"2026-{rng.randint(1, 11):02d}-{rng.randint(1, 28):02d}T10:00:00Z"})
    for i in range(max(3, contacts // 10) if contacts else 0):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        company = f"{rng.choice(COMPANY_A)} {rng.choice(COMPANY_B)}"
        insert("leads", {
            "first_name": first, "last_name": last, "company": company,
            "email": f"{_slug(first)}.{_slug(last)}.lead{i}@{_slug(company)}.example",
            "status": LEAD_STATUSES[i % len(LEAD_STATUSES)], "source": rng.choice(LEAD_SOURCES),
            "tags": []})
