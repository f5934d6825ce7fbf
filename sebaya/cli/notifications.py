"""``sebaya notifications list | retry``: what was delivered, what failed, send again
(docs/notifications.md)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import asyncpg
import typer
from rich.console import Console
from rich.table import Table

from sebaya.cli.audit import _fail, _services
from sebaya.runtime import ServicesNotConfigured, connect_pool
from sebaya.settings import Settings

app = typer.Typer(
    no_args_is_help=True,
    help="List deliveries and retry the failed ones.",
    pretty_exceptions_show_locals=False,
)
console = Console(highlight=False)
T = TypeVar("T")


def _run(use: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
    async def main() -> T:
        pool = await connect_pool(_services(), min_size=1, max_size=4)
        try:
            return await use(pool)
        finally:
            await pool.close()

    try:
        return asyncio.run(main())
    except ServicesNotConfigured as exc:
        raise _fail(str(exc)) from None


@app.command("list")
def list_(
    status: Annotated[list[str] | None, typer.Option(
        "--status", help="pending, sent, failed, dead or suppressed_erased (repeatable).")] = None,
    recipient: Annotated[str | None, typer.Option(help="Only this employee id.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Deliveries, newest first, with their status, attempts and last error."""
    from delivery.records import list_deliveries

    try:
        records = _run(lambda pool: list_deliveries(pool, status or (), recipient, limit))
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        for record in records:
            typer.echo(json.dumps(record.to_json()))
        return
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
    from activities import build_notifier

    async def main(pool: asyncpg.Pool) -> dict[str, int]:
        notifier = build_notifier(pool, Settings())
        try:
            result = await notifier.dispatcher.retry(keys if keys else None)
        finally:
            await notifier.aclose()
        return dict(result.__dict__)

    result = _run(main)
    if as_json:
        typer.echo(json.dumps(result))
        return
    if keys and sum(result.values()) < len(keys):
        console.print(f"[yellow]{len(keys) - sum(result.values())} key(s) were not failed or "
                      "dead (or do not exist); left alone[/]")
    console.print(", ".join(f"{k}: {v}" for k, v in result.items() if v) or "nothing to retry")
    if result["failed"] or result["dead"]:
        raise typer.Exit(code=1)
