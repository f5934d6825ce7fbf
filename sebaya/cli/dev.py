"""``sebaya dev up | status | down``: the embedded development stack (see sebaya.devstack)."""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:  # imported in the commands: `sebaya --help` must not load the stack
    from rich.console import Console
    from rich.table import Table

    from sebaya.devstack import DevStack, StackStatus, StopResult

app = typer.Typer(no_args_is_help=True, pretty_exceptions_show_locals=False)


@cache
def _console() -> Console:
    from rich.console import Console

    # Progress and tables go to stderr so `status --json` keeps stdout machine-readable.
    return Console(stderr=True, highlight=False)

_STATE_STYLE = {
    "running": "bold green",
    "external": "cyan",
    "stopped": "red",
    "not started": "dim",
}


def _stack() -> DevStack:
    from sebaya.devstack import DevStack
    from sebaya.settings import Settings

    # Fresh settings, not the cached ones: tests and scripts change the environment.
    return DevStack(Settings(), report=lambda msg: _console().print(f"[dim]•[/dim] {msg}"))


def _status_table(status: StackStatus) -> Table:
    from rich.table import Table

    table = Table(title=f"Sebaya dev stack — {status.state_dir}", title_justify="left")
    table.add_column("Service")
    table.add_column("State")
    table.add_column("PID", justify="right")
    # Fold, never truncate: the DSN and URLs are there to be copied.
    table.add_column("Where", overflow="fold")
    for svc in status.services:
        where = [
            part
            for part in (
                svc.address,
                svc.dsn if svc.dsn != svc.address else None,
                f"UI {svc.ui_url}" if svc.ui_url else None,
                f"task queue {svc.task_queue}" if svc.task_queue else None,
                svc.note,
            )
            if part
        ]
        state = svc.state
        table.add_row(
            svc.name, f"[{_STATE_STYLE[state]}]{state}[/]", str(svc.pid or ""), "\n".join(where)
        )
    table.caption = f"logs: {status.state_dir / 'logs'}"
    table.caption_justify = "left"
    return table


def _fail(exc: Exception) -> NoReturn:
    _console().print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code=1) from exc


@app.command()
def up(
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Start Postgres and Temporal only.")
    ] = False,
    temporal_port: Annotated[
        int | None, typer.Option(help="gRPC port for the Temporal dev server (default 7233).")
    ] = None,
    ui_port: Annotated[
        int | None, typer.Option(help="Port for the Temporal Web UI (default 8233).")
    ] = None,
    pg_port: Annotated[
        int | None, typer.Option(help="Port for the embedded PostgreSQL (default 5433).")
    ] = None,
) -> None:
    """Start Postgres, the Temporal dev server and the worker (whatever is not running yet)."""
    from sebaya.devstack import DevStackError

    stack = _stack()
    try:
        status = stack.up(
            worker=not no_worker, temporal_port=temporal_port, ui_port=ui_port, pg_port=pg_port
        )
    except DevStackError as exc:
        _console().print(
            f"[dim]Logs: {stack.logs_dir}; `sebaya dev down` stops what started.[/dim]"
        )
        _fail(exc)
    _console().print(_status_table(status))
    for warning in status.warnings:
        _console().print(f"[yellow]warning:[/] {warning}")
    temporal = status.service("temporal")
    if temporal.ui_url:
        _console().print(f"Temporal Web UI: [link={temporal.ui_url}]{temporal.ui_url}[/link]")
    pg = status.service("postgres")
    if pg.state == "running" and pg.dsn:
        _console().print(f"psql: [bold]psql {pg.dsn}[/bold]")


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Show what runs, where, and whether it is alive."""
    from sebaya.devstack import DevStackError, stack_json

    try:
        result = _stack().status()
    except DevStackError as exc:
        _fail(exc)
    if as_json:
        typer.echo(stack_json(result))
        return
    _console().print(_status_table(result))
    for warning in result.warnings:
        _console().print(f"[yellow]warning:[/] {warning}")


@app.command()
def down() -> None:
    """Stop exactly what `sebaya dev up` started for this state folder (data is kept)."""
    from sebaya.devstack import DevStackError

    stack = _stack()
    try:
        results: list[StopResult] = stack.down()
    except DevStackError as exc:
        _fail(exc)
    for res in results:
        pids = f" (pid {', '.join(map(str, res.pids))})" if res.pids else ""
        if res.outcome == "external":
            _console().print(f"{res.name}: external, left alone")
        else:
            _console().print(f"{res.name}: {res.outcome}{pids}")
    _console().print(f"[dim]Data kept in {stack.state_dir}; delete that folder to reset.[/dim]")


@app.command()
def mail(
    limit: Annotated[int, typer.Option(min=1, help="Show the newest this many.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List the messages the dev stack's mail catcher received (newest last)."""
    from delivery.catcher import read_messages

    stack = _stack()
    caught = read_messages(stack.mail_dir)[-limit:]
    if as_json:
        for m in caught:
            typer.echo(json.dumps({
                "subject": m.subject, "to": m.recipients, "received_at": m.received_at.isoformat(),
                "attachments": m.attachments, "delivery_key": m.delivery_key,
                "file": str(m.path)}))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Mail caught in {stack.mail_dir}", title_justify="left")
    for column in ("received", "to", "subject", "attachments", "file"):
        table.add_column(column, overflow="fold")
    for m in caught:
        table.add_row(m.received_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
                      ", ".join(m.recipients), m.subject, "\n".join(m.attachments), m.path.name)
    Console(highlight=False).print(table)  # the listing itself goes to stdout
    if not caught:
        _console().print("[dim]No mail yet. The worker sends here when SEBAYA_SMTP_HOST is unset "
                           "and `sebaya dev up` started the catcher.[/dim]")
