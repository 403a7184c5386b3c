"""What the docs show must work: example profiles load, documented commands exist."""

from __future__ import annotations

from pathlib import Path

from crmpulse import load_profile
from crmpulse.profile import REQUIRED_OPERATIONS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_worked_example_profile_is_valid_and_complete() -> None:
    profile = load_profile(str(DOCS / "examples" / "hubspot-style.yaml"))
    assert set(REQUIRED_OPERATIONS) <= set(profile.operations)
    request = profile.operation("create_contact").render(
        "https://api.example.com", {"first_name": "A", "last_name": "B", "email": "a@b.example"})
    assert request.json == {"properties": {"firstname": "A", "lastname": "B", "email": "a@b.example"}}


def test_every_operation_named_in_profiles_md_exists_in_the_sandbox_profile() -> None:
    text = (DOCS / "profiles.md").read_text()
    sandbox = load_profile("sandbox")
    for name in REQUIRED_OPERATIONS:
        assert f"`{name}`" in text, name
        assert name in sandbox.operations
