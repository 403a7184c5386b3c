"""The layout DESIGN.md draws, enforced: imports point one way, and the wheel is one package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COMPONENTS = ("probes", "loadtests", "alerts", "dashboards")


def imports_of(path: Path, package: str) -> set[str]:
    """Absolute module names a file imports (relative imports resolved against ``package``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names |= {f"{module}.{alias.name}" for alias in node.names}
    return names


def modules(folder: Path, package: str) -> list[tuple[Path, str]]:
    return [(p, package + "." + ".".join(p.relative_to(folder).with_suffix("").parts[:-1]).rstrip("."))
            for p in sorted(folder.rglob("*.py"))]


def test_the_core_imports_no_component_and_not_the_application_layer() -> None:
    core = [p for p in (REPO / "crmpulse").glob("*.py") if p.name != "__main__.py"]  # __main__: the app
    assert len(core) > 10
    for path in core:
        for name in imports_of(path, "crmpulse"):
            assert not name.startswith(tuple(f"crmpulse.{c}" for c in (*COMPONENTS, "app"))), \
                f"{path.name} imports {name}"
            assert name.split(".")[0] not in COMPONENTS, f"{path.name} imports {name}"


@pytest.mark.parametrize("component", COMPONENTS)
def test_a_component_imports_the_core_only_never_another_component(component: str) -> None:
    others = (*(f"crmpulse.{c}" for c in COMPONENTS if c != component), "crmpulse.app")
    for path, package in modules(REPO / component, f"crmpulse.{component}"):
        for name in imports_of(path, package):
            assert not name.startswith(others), f"{component}/{path.name} imports {name}"
            assert name.split(".")[0] not in COMPONENTS, f"{component}/{path.name} imports {name} " \
                "(use crmpulse.{component}...)"


def test_the_sandbox_imports_nothing_of_the_toolkit() -> None:
    for path, package in modules(REPO / "crmpulse" / "sandbox", "crmpulse.sandbox"):
        for name in imports_of(path, package):
            if name.startswith("crmpulse"):
                assert name.startswith("crmpulse.sandbox"), f"sandbox/{path.name} imports {name}"


@pytest.mark.parametrize("component", [*COMPONENTS, "deploy"])
def test_each_component_folder_is_reached_from_the_package_by_a_symlink(component: str) -> None:
    link = REPO / "crmpulse" / component
    assert link.is_symlink() and link.resolve() == (REPO / component).resolve()
