"""``sebaya notifications list | retry``: what was delivered, what failed, send again
(docs/notifications.md)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from sebaya.cli.errors import fail as _fail

if TYPE_CHECKING:  # imported in the commands: `sebaya --help` must not load them
    from rich.console import Console

    from sebaya.bootstrap import Infrastructure

app = typer.Typer(
    no_args_is_help=True,
    help="List deliveries and retry the failed ones.",
    pretty_exceptions_show_locals=False,
)
T = TypeVar("T")


def _console() -> Console:
    from rich.console import Console

    return Console(highlight=False)


def _run(use: Callable[[Infrastructure], Awaitable[T]]) -> T:
    """``use`` on the composition root's infrastructure (Postgres only: no Temporal needed)."""
    from sebaya.bootstrap import open_infrastructure
    from sebaya.runtime import ServicesNotConfigured

    async def main() -> T:
        async with open_infrastructure(temporal=False, pool_max_size=4) as infra:
            return await use(infra)

    try:
        return asyncio.run(main())
    except ServicesNotConfigured as exc:
        raise _fail(str(exc)) from None


@app.command("list")
def list_(
    status: Annotated[list[str] | None, typer.Option(
        "--status", help="pending, sent, failed, dead, suppressed_erased or deferred "
        "(repeatable).")] = None,
    recipient: Annotated[str | None, typer.Option(help="Only this employee id.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Deliveries, newest first, with their status, attempts and last error."""
    from delivery.records import list_deliveries

    try:
        records = _run(lambda infra: list_deliveries(infra.pool, status or (), recipient,
                                                     limit))
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        for record in records:
            typer.echo(json.dumps(record.to_json()))
        return
    from rich.table import Table

    console = _console()
    table = Table(title=f"{len(records)} deliveries", title_justify="left")
    for column in ("key", "status", "channel", "tries", "last attempt", "error"):
        table.add_column(column, overflow="fold")
    for r in records:
        when = r.last_attempt_at or r.created_at
        table.add_row(r.idempotency_key, r.status, r.channel or "", str(r.attempts),
                      when.strftime("%Y-%m-%d %H:%M:%S"), r.last_error or "")
    console.print(table)


@app.command()
def retry(
    keys: Annotated[list[str] | None, typer.Argument(
        help="Delivery keys to send again (failed or dead).")] = None,
    all_failed: Annotated[bool, typer.Option(
        "--all-failed", help="Every failed delivery (not dead ones).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Send failed deliveries again through this deployment's channels. A key named here gets
    a fresh allowance of attempts, even when it is dead."""
    if bool(keys) == all_failed:
        raise _fail("name delivery keys or pass --all-failed (not both)")

    async def main(infra: Any) -> dict[str, int]:
        result = await infra.notifier.dispatcher.retry(keys if keys else None)
        return dict(result.__dict__)

    result = _run(main)
    if as_json:
        typer.echo(json.dumps(result))
        return
    console = _console()
    if keys and sum(result.values()) < len(keys):
        console.print(f"[yellow]{len(keys) - sum(result.values())} key(s) were not failed or "
                      "dead (or do not exist); left alone[/]")
    console.print(", ".join(f"{k}: {v}" for k, v in result.items() if v) or "nothing to retry")
    if result["failed"] or result["dead"]:
        raise typer.Exit(code=1)
