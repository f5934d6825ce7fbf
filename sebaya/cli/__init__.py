"""The ``sebaya`` command. Each concern registers its own Typer sub-app in its own module."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="sebaya",
    help="Peer-mentoring programs as durable, event-sourced workflows.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)



@app.callback()
def _root() -> None:
    """Peer-mentoring programs as durable, event-sourced workflows."""


# module name -> (sub-command name, help). Each module exposes ``app: typer.Typer``; a module
# that is not there yet is simply not offered.
_SUBAPPS = {
    "sebaya.cli.dev": ("dev", "Start, inspect and stop the embedded stack."),
    "sebaya.cli.cohort": ("cohort", "Validate, match, start and watch program cohorts."),
    "sebaya.cli.pairing": ("pairing", "Act on one pairing (goals, meetings, reviews, exit)."),
    "sebaya.cli.audit": ("audit", "Replay and verify the domain record."),
    "sebaya.cli.projections": ("projections", "Rebuild and follow the read models."),
    "sebaya.cli.serve": ("serve", "Run the web service (pages and the /api/v1 API)."),
    "sebaya.cli.tokens": ("tokens", "Create, list and revoke API tokens for staff."),
    "sebaya.cli.notifications": ("notifications", "List deliveries and retry failed ones."),
}

for _module, (_name, _help) in _SUBAPPS.items():
    try:
        _sub = importlib.import_module(_module)
    except ModuleNotFoundError as exc:  # only tolerate the module itself being absent
        if exc.name != _module:
            raise
        continue
    app.add_typer(_sub.app, name=_name, help=_help)

try:
    from sebaya.cli.demo import demo as _demo

    app.command("demo", help="Run a whole sample cohort in virtual time and print its report.")(
        _demo
    )
except ModuleNotFoundError as exc:
    if exc.name != "sebaya.cli.demo":
        raise


@app.command("version")
def version() -> None:
    """Print the installed Sebaya version."""
    from importlib.metadata import version as _version

    typer.echo(_version("sebaya"))


def main() -> None:
    app()
