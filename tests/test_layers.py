"""Dependencies point down: each top-level package imports only the layers below it.

The table is the layer diagram of ``docs/architecture.md``; a new top-level package must be
given its place here, and an import that points up (or sideways where the diagram has no
arrow) fails. Imports inside functions count too: hiding one in a function does not change
which layer depends on which.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_LOW = {"domain", "eventstore", "observability"}
# package -> the internal packages it may import
ALLOWED: dict[str, set[str]] = {
    "domain": set(),
    "observability": set(),
    "eventstore": {"observability"},
    "contracts": {"domain"},
    "adapters": {"domain", "eventstore"},
    "intake": {"domain"},
    "delivery": {"domain", "adapters", "observability"},
    "activities": _LOW | {"adapters", "contracts", "delivery"},
    "workflows": _LOW | {"activities", "contracts", "delivery"},
    "projections": _LOW,
    "audit": _LOW | {"projections", "workflows"},
}
# Entry points wire everything below them; nothing imports them but each other.
ENTRY_POINTS = {"sebaya", "worker", "web"}
# Scripts that run our code; they may import entry points and below, never the tests.
SCRIPTS = {"bench", "examples"}
SKIP = {"tests", ".venv", "build", "docs", ".git", ".sebaya"}


def _top_level_units() -> dict[str, list[Path]]:
    units: dict[str, list[Path]] = {}
    for path in ROOT.iterdir():
        if path.name in SKIP or path.name.startswith("."):
            continue
        if path.is_dir() and any(path.rglob("*.py")):
            units[path.name] = sorted(path.rglob("*.py"))
        elif path.suffix == ".py":
            units[path.stem] = [path]
    return units


UNITS = _top_level_units()
INTERNAL = set(UNITS) | {"tests"}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & INTERNAL


def test_every_top_level_package_has_a_layer() -> None:
    unknown = set(UNITS) - set(ALLOWED) - ENTRY_POINTS - SCRIPTS
    assert not unknown, f"give these a place in ALLOWED (and the diagram): {sorted(unknown)}"


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_imports_point_down(unit: str) -> None:
    if unit in ENTRY_POINTS:
        allowed = INTERNAL - {"tests", *SCRIPTS}
    elif unit in SCRIPTS:
        allowed = INTERNAL - {"tests"}
    else:
        allowed = ALLOWED.get(unit, set()) | {unit}
    wrong = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in UNITS[unit]
        for name in _imports(path) - allowed - {unit}
    }
    assert not wrong, sorted(wrong)


@pytest.mark.parametrize("unit", sorted(u for u in UNITS if u not in SCRIPTS))
def test_every_module_imports(unit: str) -> None:
    """A module that does not import (a name moved, a cycle) fails here, not in production;
    mypy cannot tell, as it ignores imports it cannot resolve."""
    import importlib
    import pkgutil

    top = importlib.import_module(unit)
    for info in pkgutil.walk_packages(getattr(top, "__path__", []), f"{unit}."):
        importlib.import_module(info.name)
