"""``sebaya projections``: rebuild, follow and inspect the read models (docs/projections.md)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from sebaya.cli.errors import fail as _fail

if TYPE_CHECKING:  # imported in the commands: `sebaya --help` must not load them
    from eventstore import EventStore

app = typer.Typer(
    no_args_is_help=True,
    help="Rebuild and follow the read models.",
    pretty_exceptions_show_locals=False,
)

T = TypeVar("T")
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


async def _with_store(use: Callable[[EventStore], Awaitable[T]]) -> T:
    """``use`` on the event store, opened at the composition root (Postgres only)."""
    from eventstore import EventStore
    from sebaya.bootstrap import open_infrastructure

    async with open_infrastructure(temporal=False, pool_min_size=2, pool_max_size=4) as infra:
        return await use(EventStore(infra.pool, infra.registry))


def _run(main: Callable[[], Awaitable[T]]) -> T:
    from sebaya.runtime import ServicesNotConfigured

    try:
        return asyncio.run(main())  # type: ignore[arg-type]
    except ServicesNotConfigured as exc:
        raise _fail(str(exc)) from None


@app.command("rebuild")
def rebuild(as_json: JsonOption = False) -> None:
    """Empty the views and project every event again. If interrupted, `run` or `catch-up`
    resumes from the last committed batch."""
    from projections import Projector

    async def main() -> tuple[int, float]:
        started = time.perf_counter()
        read = await _with_store(lambda store: Projector(store).rebuild())
        return read, time.perf_counter() - started

    read, seconds = _run(main)
    rate = read / seconds if seconds else 0.0
    if as_json:
        typer.echo(f'{{"events": {read}, "seconds": {seconds:.3f}, "events_per_s": {rate:.1f}}}')
    else:
        typer.echo(f"rebuilt the read models from {read} event(s) in {seconds:.1f}s "
                   f"({rate:,.0f} events/s)")


@app.command("catch-up")
def catch_up() -> None:
    """Project every event not projected yet, then stop."""
    from projections import Projector

    read = _run(lambda: _with_store(lambda store: Projector(store).catch_up()))
    typer.echo(f"projected {read} event(s)")


@app.command("run")
def run(
    poll: Annotated[float, typer.Option(help="Seconds between polls once caught up.")] = 0.5,
) -> None:
    """Follow the log and keep the read models current until Ctrl-C (or SIGTERM); the batch
    in flight is finished or rolled back, never half-applied."""
    from projections import Projector

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            # Not on the main thread (embedded use): Ctrl-C then cancels, which also rolls
            # back the batch in flight.
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)

        async def follow(store: EventStore) -> None:
            typer.echo("following the event log; Ctrl-C stops")
            await Projector(store).run(poll_interval=poll, stop_event=stop)

        await _with_store(follow)

    _run(main)
    typer.echo("stopped")


@app.command("status")
def status(as_json: JsonOption = False) -> None:
    """Where the projector is: checkpoint, head of the log, events behind, lag."""
    from projections import projection_status

    async def main() -> Any:
        return await _with_store(lambda store: projection_status(store.pool))

    result = _run(main)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    typer.echo(f"projector {result.name}: checkpoint {tuple(result.checkpoint)}, head "
               f"{tuple(result.head) if result.head else '-'}; {result.events_applied} event(s) "
               f"applied, {result.events_behind} behind")
    if result.oldest_unprojected_recorded_at is not None:
        lag = datetime.now(UTC) - result.oldest_unprojected_recorded_at
        typer.echo(f"  oldest unprojected event recorded {lag.total_seconds():.1f}s ago")
    if result.held_back:
        typer.echo(f"  {result.held_back} event(s) above the global horizon (a transaction "
                   "older than them is still running)")
    if result.rebuild_interrupted:
        typer.echo("  a rebuild was interrupted: views are partial until `run` or `catch-up` "
                   "finishes")
