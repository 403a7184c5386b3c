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


def test_the_prometheus_scrape_config_in_probes_md_passes_promtool(tmp_path: Path) -> None:
    import re
    import subprocess

    text = (DOCS / "probes.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "scrape_configs" in b)
    (tmp_path / "prometheus.yml").write_text(block)
    run = subprocess.run(["promtool", "check", "config", str(tmp_path / "prometheus.yml")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


REPO = DOCS.parent


def markdown_files() -> list[Path]:
    return [REPO / "README.md", *sorted(DOCS.rglob("*.md")), *sorted((REPO / "alerts").rglob("*.md")),
            *sorted((REPO / "deploy").rglob("*.md"))]


def test_every_relative_link_in_the_docs_points_at_a_file_that_exists() -> None:
    import re

    broken = []
    for page in markdown_files():
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:|#", target):
                continue  # absolute URLs and anchors in the same page
            path = (page.parent / target.split("#", 1)[0]).resolve()
            if not path.exists():
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert broken == []


def test_every_docs_page_named_in_code_or_docs_exists() -> None:
    import re

    named = set()
    sources = [*REPO.glob("crmpulse/**/*.py"), *(p for d in ("probes", "loadtests", "alerts", "dashboards")
                                                  for p in REPO.glob(f"{d}/**/*.py")),
               *REPO.glob("crmpulse/**/*.yaml"), *markdown_files(),
               *REPO.glob("bench/*.py"), *REPO.glob("deploy/**/*.y*ml")]
    for source in sources:
        if ".venv" in source.parts:
            continue
        for name in re.findall(r"(?<![/\w.])docs/[A-Za-z0-9_./-]+\.md\b", source.read_text(errors="replace")):
            named.add((name, source.relative_to(REPO).as_posix()))
    missing = [f"{where}: {name}" for name, where in sorted(named) if not (REPO / name).exists()]
    assert named and missing == []
