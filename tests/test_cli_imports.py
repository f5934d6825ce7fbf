"""`sebaya --help` and `sebaya version` answer at once: the CLI package loads no heavy module.

The rule, for every module in sebaya/cli/: **no heavy imports at module level** (HEAVY below);
import them inside the command that needs them. On top of that, sebaya/cli/__init__.py imports
a sub-app's module only when its sub-command runs, listing sub-commands from its ``_SUBAPPS``
table. These tests measure what gets imported, not time (the machine's load varies); with
nothing heavy loaded, `sebaya --help` takes about 0.3 s of CPU here instead of about 2 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sebaya.cli import _SUBAPPS

CLI_DIR = Path(__file__).resolve().parents[1] / "sebaya" / "cli"

# Top-level packages (or exact modules) that cost tens to hundreds of milliseconds each, or
# pull in the whole service stack. (Not pydantic: Typer itself uses it to convert arguments.)
HEAVY = (
    "numpy", "scipy", "temporalio", "asyncpg", "yaml",
    "sebaya.devstack", "sebaya.runtime", "sebaya.simulation", "sebaya.operations",
    "domain.matching", "workflows", "activities", "eventstore", "projections", "worker",
)  # fmt: skip

_PROBE = """
import json, sys
{body}
print(json.dumps(sorted(sys.modules)))
"""


def _modules_after(body: str) -> tuple[set[str], str]:
    """Run ``body`` in a fresh interpreter; (modules it loaded, what it printed before)."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(body=body)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    *printed, last = done.stdout.rstrip("\n").split("\n")
    return set(json.loads(last)), "\n".join(printed)


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def _run_cli(*args: str) -> str:
    return (
        "from sebaya.cli import app\n"
        f"try:\n    app({list(args)!r}, prog_name='sebaya')\n"
        "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
    )


def test_importing_the_cli_loads_nothing_heavy() -> None:
    modules, _ = _modules_after("import sebaya.cli")
    assert _heavy(modules) == []
    assert not {m for m in _SUBAPPS if m in modules}  # sub-apps load when they run


def test_help_lists_every_sub_command_without_loading_them() -> None:
    modules, printed = _modules_after(_run_cli("--help"))
    assert _heavy(modules) == []
    offered = [name for module, (name, _) in _SUBAPPS.items()
               if (CLI_DIR / f"{module.rsplit('.', 1)[1]}.py").exists()]
    assert {"dev", "cohort", "audit", "projections"} <= set(offered)
    for name in [*offered, "demo", "version"]:
        assert f" {name} " in printed, f"`sebaya --help` does not list {name}:\n{printed}"
    for _, (name, help_) in _SUBAPPS.items():
        if name in offered:
            assert help_[:40] in printed


def test_version_loads_nothing_heavy() -> None:
    modules, printed = _modules_after(_run_cli("version"))
    assert printed.strip()
    assert _heavy(modules) == []


@pytest.mark.parametrize(
    "module",
    sorted(f"sebaya.cli.{p.stem}" for p in CLI_DIR.glob("*.py") if p.stem != "__init__"),
)
def test_no_heavy_imports_at_module_level_in_sebaya_cli(module: str) -> None:
    modules, _ = _modules_after(f"import {module}")
    assert _heavy(modules) == [], f"{module} imports heavy modules at module level"


@pytest.mark.parametrize("sub", ["dev", "cohort"])
def test_a_sub_commands_help_loads_only_its_own_module(sub: str) -> None:
    modules, printed = _modules_after(_run_cli(sub, "--help"))
    assert f"sebaya {sub}" in printed
    assert _heavy(modules) == []


def test_a_sub_command_still_runs_through_the_lazy_table(tmp_path: Path) -> None:
    examples = CLI_DIR.parents[1] / "examples"
    modules, printed = _modules_after(_run_cli(
        "cohort", "validate", str(examples / "program.yaml"), str(examples / "people.csv")))
    assert "60 people" in printed
    assert "domain.matching" not in modules  # validating needs no matcher
