"""The ``sebaya`` command. Each concern registers its own Typer sub-app in its own module.

Rule for every module in sebaya/cli/: **no heavy imports at module level** (numpy, scipy,
temporalio, asyncpg, sebaya.devstack, sebaya.runtime, domain.matching, ...). Import them inside
the command that needs them, so ``sebaya --help`` and ``sebaya <sub> --help`` answer at once.
On top of that, a sub-app's module is imported only when its sub-command runs (or its own
help is asked for): ``sebaya --help`` lists the sub-commands from the ``_SUBAPPS`` table
alone. tests/test_cli_imports.py checks both.
"""

from __future__ import annotations

import importlib
import importlib.util

import typer
from typer import _click as click  # typer vendors click (no separate package)
from typer.core import TyperCommand, TyperGroup
from typer.models import TyperInfo

# module name -> (sub-command name, help). Each module exposes ``app: typer.Typer``; a module
# that is not there yet is simply not offered.
_SUBAPPS = {
    "sebaya.cli.dev": ("dev", "Start, inspect and stop the embedded stack."),
    "sebaya.cli.cohort": ("cohort", "Validate, match, start and watch program cohorts."),
    "sebaya.cli.pairing": ("pairing", "Act on one pairing (goals, meetings, reviews, exit)."),
    "sebaya.cli.audit": ("audit", "Replay and verify the domain record."),
    "sebaya.cli.projections": ("projections", "Rebuild and follow the read models."),
    "sebaya.cli.notifications": ("notifications", "List deliveries and retry failed ones."),
}


def _offered() -> dict[str, tuple[str, str]]:
    """sub-command name -> (module, help), for the modules that exist (found, not imported)."""
    return {
        name: (module, help_)
        for module, (name, help_) in _SUBAPPS.items()
        if importlib.util.find_spec(module) is not None
    }


class _LazyGroup(TyperGroup):
    """Loads a sub-app's module the first time its sub-command is looked up for running."""

    _listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        eager = super().list_commands(ctx)
        return [*(n for n in _offered() if n not in eager), *eager]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        offered = _offered()
        if found is not None or cmd_name not in offered:
            return found
        module, help_ = offered[cmd_name]
        if self._listing:
            # The root help only shows the name and one line: the table has both.
            return TyperCommand(cmd_name, help=help_, short_help=help_)
        # What ``app.add_typer(sub.app, name=..., help=...)`` would have built.
        command = typer.main.get_group_from_info(
            TyperInfo(importlib.import_module(module).app, name=cmd_name, help=help_),
            pretty_exceptions_short=app.pretty_exceptions_short,
            suggest_commands=app.suggest_commands,
            rich_markup_mode=app.rich_markup_mode,
        )
        self.add_command(command, cmd_name)
        return command

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="sebaya",
    cls=_LazyGroup,
    help="Peer-mentoring programs as durable, event-sourced workflows.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _root() -> None:
    """Peer-mentoring programs as durable, event-sourced workflows."""


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
