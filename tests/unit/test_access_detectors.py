"""Personal-data detectors: what each finds, what none mistakes for personal data, and that
only counts and paths come out."""

from __future__ import annotations

import random

import pytest

from crmpulse.probes.detectors import Scanner, iban_ok, luhn_ok, normalize_path, path_allowed
from crmpulse.sandbox.seed import sensitive_values


@pytest.mark.parametrize(("text", "detector"), [
    ("4111 1111 1111 1111", "card_number"),
    ("4000-0566-5566-5556", "card_number"),
    ("378282246310005", "card_number"),            # 15-digit card, no grouping
    ("GB82 WEST 1234 5698 7654 32", "iban"),
    ("DE89370400440532013000", "iban"),
    ("123-45-6789", "national_id"),                # US SSN, dashed
    ("QQ 12 34 56 C", "national_id"),              # UK National Insurance number format
    ("12345678Z", "national_id"),                  # Spanish DNI with the right letter
    ("someone@crmpulse.example", "email"),
    ("+1-555-0142", "phone"),
    ("(555) 123-4567", "phone"),
    ("+442079460958", "phone"),
])
def test_each_detector_finds_its_kind_of_value(text: str, detector: str) -> None:
    assert dict(Scanner().text(f"note: {text} end")) == {detector: 1}


@pytest.mark.parametrize(("text", "detector"), [
    ("4111111111111112", "card_number"),           # fails the Luhn check
    ("GB82 WEST 1234 5698 7654 33", "iban"),       # fails mod 97
    ("12345678A", "national_id"),                  # a DNI with the wrong letter
    ("000-12-3456", "national_id"),                # SSN area 000 is never issued
])
def test_near_misses_are_not_the_value_they_imitate(text: str, detector: str) -> None:
    assert detector not in Scanner().text(text)


@pytest.mark.parametrize("text", [
    "4111111111111112", "12345678A",
    "2026-11-29T14:16:41.123Z", "29.11.2026", "14:16:41",
    "5a1d0000-0000-4000-8000-0000000e0001",        # a UUID
    "127.0.0.1", "v62.0", "1234.56", "12000", "1732890000",
    "003000000000001AAA",                          # a Salesforce id
    "crmpulse-sandbox-access-tenant_isolation",    # a marker
])
def test_ids_dates_amounts_and_markers_are_not_personal_data(text: str) -> None:
    assert dict(Scanner().text(text)) == {}


def test_the_sandboxs_sensitive_values_are_each_found_once_as_what_they_are() -> None:
    scanner = Scanner()
    for seed in range(50):
        values = sensitive_values(random.Random(seed))
        found = {field: dict(scanner.text(value)) for field, value in values.items()}
        assert found == {"tax_id": {"national_id": 1}, "card_number": {"card_number": 1},
                         "national_id": {"national_id": 1}, "iban": {"iban": 1}}, values


def test_a_span_is_claimed_once_so_a_tax_id_is_not_also_a_phone() -> None:
    assert dict(Scanner().text("900-71-1234")) == {"national_id": 1}
    assert dict(Scanner(("phone",)).text("900-71-1234")) == {"phone": 1}


def test_documents_report_counts_by_detector_and_normalized_path_never_values() -> None:
    record = {"email": "a@crmpulse.example", "card": "4111111111111111", "id": "con_1",
              "tags": ["+1-555-0199"], "nested": {"iban": "DE89370400440532013000"}}
    found = Scanner().document({"data": [record, record, {"email": None}]})
    assert dict(found) == {("email", "$.data[*].email"): 2, ("card_number", "$.data[*].card"): 2,
                           ("phone", "$.data[*].tags[*]"): 2, ("iban", "$.data[*].nested.iban"): 2}
    flat = repr(found)
    for value in ("a@crmpulse.example", "4111111111111111", "555-0199", "DE89"):
        assert value not in flat


def test_a_key_that_could_hold_a_value_is_not_written_into_a_path() -> None:
    found = Scanner().document({"by_email": {"someone@crmpulse.example": {"card": "4111111111111111"}}})
    assert dict(found) == {("card_number", "$.by_email[?].card"): 1}


def test_csv_columns_are_paths_and_a_header_that_holds_a_value_is_numbered() -> None:
    text = "id,email,someone@crmpulse.example\n1,a@crmpulse.example,4111111111111111\n"
    assert dict(Scanner().csv(text)) == {("email", "csv.email"): 1, ("card_number", "csv.column3"): 1}


def test_custom_patterns_count_under_their_own_name() -> None:
    scanner = Scanner(("email",), {"employee_id": r"\bEMP-\d{6}\b"})
    assert scanner.names == ("email", "employee_id")
    assert dict(scanner.text("EMP-123456 and EMP-654321")) == {"employee_id": 2}


def test_allowances_match_normalized_paths_and_any_depth() -> None:
    assert normalize_path("$.data[3].email") == "$.data[*].email"
    assert path_allowed("$.data[*].email", ["$.data[0].email"])
    assert path_allowed("$.data[*].email", ["$..email"])
    assert path_allowed("$.email", ["$..email"])
    assert not path_allowed("$.data[*].notes", ["$..email"])
    assert not path_allowed("$.data[*].email_backup", ["$..email"])


def test_checksums() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112") and not luhn_ok("x")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB00 WEST 1234 5698 7654 32")


def test_an_enormous_string_is_scanned_only_in_its_first_part() -> None:
    text = "x" * (64 * 1024) + " a@crmpulse.example"
    assert dict(Scanner().text(text)) == {}
