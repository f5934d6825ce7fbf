"""A generic catch-up projection runner: follows the store's global order, hands each batch
to a :class:`Projection` and commits the projection's writes together with the checkpoint.

It knows nothing of mentoring: what to fold and which tables to write belong to the
projection (``projections/read_models.py`` for Sebaya's views). Like the ``eventsourcing``
library's projection runner, it reads the global order from the store, applies batches and
moves the checkpoint in the same transaction as each batch's writes; on top it catches up,
follows (``run``) and rebuilds.

Exactly-once effect. Each batch is one transaction that locks the checkpoint row, checks it is
still where the batch started, lets the projection write every row the batch changed and moves
the checkpoint past the batch. A crash, a cancellation or an error anywhere rolls all of it back
together, so on restart the runner re-reads exactly the events whose effects are not in the
views. A second runner of the same name waits on the checkpoint lock, then finds the checkpoint
moved: it writes nothing, tells the projection to drop what it cached and carries on from the
stored checkpoint.

Speed. Three things overlap: the next batch is read and decoded, the current one is folded in
memory, and the previous one is being written by the database. That is safe because a batch's
writes are fully rendered (:meth:`Projection.stage`) before its transaction starts and any
failure throws every cached row away. See ``docs/projections.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

import asyncpg
import structlog
from pydantic import BaseModel, ConfigDict

from eventstore import EventRegistry, Position
from projections.source import EventDecoder, SourceBatch, SourceEvent, read_batch

log = structlog.get_logger("sebaya.projections")


class ProjectionError(RuntimeError):
    """An event cannot be projected (unknown to the fold, out of order, or the views disagree
    with the checkpoint). The batch is rolled back; the runner stops at that event."""


class CheckpointMoved(RuntimeError):
    """Someone else (another runner, a rebuild) moved the checkpoint since this runner read
    it. Handled inside :meth:`ProjectionRunner.catch_up` by resyncing."""


@dataclass(frozen=True, slots=True)
class BatchInfo:
    """What the batch being committed contains (passed to the ``before_commit`` hook)."""

    number: int
    events: int
    after: Position
    last: Position


BeforeCommit = Callable[[BatchInfo], Awaitable[None]]

Staged = TypeVar("Staged")
_T = TypeVar("_T")


class Projection(Protocol[Staged]):
    """What a runner needs from the read models it maintains.

    Everything a projection caches is valid for one checkpoint only: the runner calls
    :meth:`forget` whenever that may no longer hold.
    """

    #: Event models decoded straight from their JSON (other registered types are upcast).
    event_types: Sequence[type[BaseModel]]
    #: Tables a rebuild empties, in the same transaction that resets the checkpoint.
    tables: Sequence[str]

    def forget(self) -> None:
        """Drop everything cached: the database is the truth again."""

    def start_empty(self) -> None:
        """The tables were just emptied: a row not in memory does not exist."""

    async def prepare(self, conn: asyncpg.Connection) -> None:
        """Once per connection that writes batches (e.g. create staging tables)."""

    def needs_rows(self, events: list[SourceEvent]) -> bool:
        """Whether folding ``events`` needs stored rows that are not in memory."""

    async def load(self, conn: asyncpg.Connection, events: list[SourceEvent],
                   decoder: EventDecoder) -> None:
        """Bring the stored rows ``events`` touch into memory (after the previous commit)."""

    def stage(self, events: list[SourceEvent]) -> Staged:
        """Fold ``events`` in memory and render every write they cause."""

    async def write(self, conn: asyncpg.Connection, staged: Staged) -> None:
        """Apply ``staged`` inside the batch's transaction."""

    def committed(self, staged: Staged) -> None:
        """``staged`` committed: cached rows it no longer needs may go."""

    async def caught_up(self, conn: asyncpg.Connection,
                        decoder: EventDecoder) -> Staged | None:
        """Nothing left to read: writes to make before idling (e.g. snapshots), if any."""


class ProjectionStatus(BaseModel):
    """Where a projector is against the head of the log (``sebaya projections status``)."""

    model_config = ConfigDict(frozen=True)

    name: str
    checkpoint: Position
    head: Position | None
    events_behind: int
    events_applied: int
    held_back: int
    """Events above the global horizon: written by transactions younger than one still
    running, so not yet readable by any follower."""
    checkpoint_updated_at: datetime | None
    oldest_unprojected_recorded_at: datetime | None
    rebuild_started_at: datetime | None
    rebuild_finished_at: datetime | None

    @property
    def rebuild_interrupted(self) -> bool:
        """A rebuild started and never finished: the views are partial until caught up."""
        started, finished = self.rebuild_started_at, self.rebuild_finished_at
        return started is not None and (finished is None or finished < started)


_READ_CHECKPOINT = (
    "SELECT tx_id, global_position FROM projection_checkpoints WHERE name = $1"
)
_LOCK_CHECKPOINT = _READ_CHECKPOINT + " FOR UPDATE"
# The exactly-once guard, kept even though the row is locked: the checkpoint moves only from
# where this batch started.
_MOVE_CHECKPOINT = """
UPDATE projection_checkpoints
SET tx_id = $4::xid8, global_position = $5, events_applied = events_applied + $6,
    updated_at = now()
WHERE name = $1 AND tx_id = $2::xid8 AND global_position = $3
"""


@contextlib.contextmanager
def _fewer_gc_passes() -> Iterator[None]:
    """Catching up allocates millions of short-lived objects while thousands of folded
    states stay alive; the default thresholds then re-scan those states over and over
    (a third of the CPU in ``bench/replay.py``). Folded rows and decoded events form no
    reference cycles, so refcounting frees them anyway: collect rarely while catching up."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], 100_000), max(before[1], 50), max(before[2], 100))
    try:
        yield
    finally:
        gc.set_threshold(*before)


class ProjectionRunner(Generic[Staged]):
    """Keeps ``projection`` current with the store behind ``pool``, under checkpoint ``name``.

    ``registry`` decodes the stored events. ``batch_size``: rows read (and committed) per
    transaction when following the log; ``rebuild_batch_size`` when rebuilding.
    ``before_commit``: awaited inside each batch's transaction just before the checkpoint
    moves (tests use it to crash a batch at its worst moment).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        registry: EventRegistry,
        projection: Projection[Staged],
        *,
        name: str,
        batch_size: int = 20_000,
        rebuild_batch_size: int = 100_000,
        before_commit: BeforeCommit | None = None,
    ) -> None:
        if min(batch_size, rebuild_batch_size) < 1:
            raise ValueError("batch sizes must be >= 1")
        self._pool = pool
        self._projection = projection
        self._decoder = EventDecoder(registry, projection.event_types)
        self.name = name
        self._batch_size = batch_size
        self._rebuild_batch_size = rebuild_batch_size
        self._limit = batch_size
        self._before_commit = before_commit
        self._batches = 0
        # One catch-up at a time per instance: the projection's caches belong to one position.
        self._busy = asyncio.Lock()
        # What this process believes the checkpoint is; everything cached is valid for it.
        self._position: Position | None = None

    async def catch_up(self) -> int:
        """Project every event readable now; return how many rows of the log were read."""
        await self._ensure_checkpoint()
        async with self._busy:
            return await self._catch_up_locked()

    async def run(self, poll_interval: float = 0.5,
                  stop_event: asyncio.Event | None = None) -> None:
        """Follow the log until ``stop_event`` is set (or the task is cancelled), polling every
        ``poll_interval`` seconds once caught up."""
        stop = stop_event or asyncio.Event()
        while not stop.is_set():
            read = await self.catch_up()
            if read:
                log.info("projected", projection=self.name, events=read)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=poll_interval)

    async def rebuild(self) -> int:
        """Empty the views and reset the checkpoint in one transaction, then catch up from the
        first event. If interrupted, :meth:`catch_up` (or ``projections run``) resumes from the
        last committed batch."""
        await self._ensure_checkpoint()
        async with self._busy:
            async with self._pool.acquire() as conn, conn.transaction():
                # Lock first: a runner writing a batch finishes it before we truncate.
                await conn.execute(_LOCK_CHECKPOINT, self.name)
                await conn.execute(f"TRUNCATE {', '.join(self._projection.tables)}")
                await conn.execute(
                    "UPDATE projection_checkpoints SET tx_id = '0'::xid8, global_position = 0, "
                    "events_applied = 0, rebuild_started_at = clock_timestamp(), "
                    "updated_at = now() WHERE name = $1", self.name)
            self._forget()
            self._position = Position.start()
            self._projection.start_empty()
            self._limit = self._rebuild_batch_size
            try:
                read = await self._catch_up_locked()
            finally:
                self._limit = self._batch_size
        await self._pool.execute(
            "UPDATE projection_checkpoints SET rebuild_finished_at = clock_timestamp() "
            "WHERE name = $1", self.name)
        return read

    # --- the pipeline -----------------------------------------------------------------------

    async def _catch_up_locked(self) -> int:
        total = 0
        with _fewer_gc_passes():
            while True:
                try:
                    async for read in self._catch_up_once():
                        total += read
                    return total
                except CheckpointMoved as moved:
                    log.warning("checkpoint moved by someone else; resyncing",
                                projection=self.name, detail=str(moved))
                    self._forget()

    def _forget(self) -> None:
        self._position = None
        self._projection.forget()

    async def _ensure_checkpoint(self) -> None:
        await self._pool.execute(
            "INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING",
            self.name)

    async def _catch_up_once(self) -> AsyncIterator[int]:
        projection, decoder = self._projection, self._decoder
        async with self._pool.acquire() as reader, self._pool.acquire() as writer:
            await projection.prepare(writer)
            row = await writer.fetchrow(_READ_CHECKPOINT, self.name)
            assert row is not None
            position = Position(row[0], row[1])
            if position != self._position:
                self._forget()
                self._position = position
            limit = self._limit
            reading: asyncio.Task[SourceBatch] | None = asyncio.create_task(
                read_batch(reader, position, limit, decoder))
            writing: asyncio.Task[None] | None = None
            try:
                while reading is not None:
                    batch = await reading
                    reading = None
                    if batch.rows_read == 0:
                        break
                    if batch.rows_read == limit:
                        # Read and decode the next batch while this one is folded and the
                        # previous one written.
                        reading = asyncio.create_task(
                            read_batch(reader, batch.last_position, limit, decoder))
                    if projection.needs_rows(batch.events):
                        # Rows must be read after the previous batch's commit.
                        if writing is not None:
                            await writing
                            writing = None
                        await self._guarded(writer, projection.load(writer, batch.events,
                                                                    decoder))
                    try:
                        self._batches += 1
                        info = BatchInfo(self._batches, batch.rows_read, position,
                                         batch.last_position)
                        staged = projection.stage(batch.events)
                    except ProjectionError:
                        if writing is not None:
                            await writing
                            writing = None
                        await self._check_not_moved(writer)
                        raise
                    if writing is not None:
                        await writing
                    writing = asyncio.create_task(self._commit(writer, info, staged))
                    position = batch.last_position
                    yield batch.rows_read
                if writing is not None:
                    await writing
                    writing = None
                final = await self._guarded(writer, projection.caught_up(writer, decoder))
                if final is not None:
                    await self._commit(writer, BatchInfo(self._batches, 0, position, position),
                                       final)
            except BaseException:
                # Whatever was folded in memory may be ahead of what committed.
                self._forget()
                raise
            finally:
                for task in (reading, writing):
                    if task is not None and not task.done():
                        task.cancel()
                    if task is not None:
                        await asyncio.gather(task, return_exceptions=True)

    async def _guarded(self, conn: asyncpg.Connection, loading: Awaitable[_T]) -> _T:
        """Await ``loading`` (which reads rows outside any batch transaction). Rows read after
        another runner committed look inconsistent with our checkpoint: that is a moved
        checkpoint, not a broken view."""
        try:
            return await loading
        except ProjectionError:
            await self._check_not_moved(conn)
            raise

    async def _commit(self, conn: asyncpg.Connection, info: BatchInfo, staged: Staged) -> None:
        async with conn.transaction():
            # Lock the checkpoint before writing anything: a second runner of this name
            # waits here until our batch commits, then finds the checkpoint moved and writes
            # nothing (instead of colliding with our rows first).
            row = await conn.fetchrow(_LOCK_CHECKPOINT, self.name)
            if row is None or Position(row[0], row[1]) != info.after:
                raise CheckpointMoved(f"checkpoint is at {tuple(row) if row else None}, this "
                                      f"batch starts after {tuple(info.after)}")
            # No need to wait for this commit to reach disk: views and checkpoint commit
            # together, so a commit lost in a crash is a batch the runner simply redoes.
            await conn.execute("SET LOCAL synchronous_commit TO off")
            await self._projection.write(conn, staged)
            if self._before_commit is not None:
                await self._before_commit(info)
            moved = await conn.execute(
                _MOVE_CHECKPOINT, self.name, info.after[0], info.after[1],
                info.last[0], info.last[1], info.events)
            if moved != "UPDATE 1":
                raise CheckpointMoved(f"batch after {tuple(info.after)} not applied")
        self._position = info.last
        self._projection.committed(staged)

    async def _check_not_moved(self, conn: asyncpg.Connection) -> None:
        row = await conn.fetchrow(_READ_CHECKPOINT, self.name)
        if row is None or Position(row[0], row[1]) != self._position:
            raise CheckpointMoved("checkpoint moved while rows were being read")



async def projection_status(pool: asyncpg.Pool, name: str) -> ProjectionStatus:
    """The checkpoint of projection ``name`` against the head of the log."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT tx_id, global_position, events_applied, updated_at, rebuild_started_at, "
            "rebuild_finished_at FROM projection_checkpoints WHERE name = $1", name)
        checkpoint = Position(row[0], row[1]) if row is not None else Position.start()
        head_row = await conn.fetchrow(
            "SELECT tx_id, global_position FROM events "
            "WHERE tx_id < (SELECT pg_snapshot_xmin(pg_current_snapshot())) "
            "ORDER BY tx_id DESC, global_position DESC LIMIT 1")
        behind = await conn.fetchrow(
            "SELECT count(*) AS n, min(recorded_at) AS oldest FROM events "
            "WHERE (tx_id, global_position) > ($1::xid8, $2::bigint) "
            "AND tx_id < (SELECT pg_snapshot_xmin(pg_current_snapshot()))",
            checkpoint[0], checkpoint[1])
        held = await conn.fetchval(
            "SELECT count(*) FROM events "
            "WHERE tx_id >= (SELECT pg_snapshot_xmin(pg_current_snapshot()))")
    return ProjectionStatus(
        name=name,
        checkpoint=checkpoint,
        head=Position(head_row[0], head_row[1]) if head_row is not None else None,
        events_behind=behind["n"],
        events_applied=row["events_applied"] if row is not None else 0,
        held_back=held,
        checkpoint_updated_at=row["updated_at"] if row is not None else None,
        oldest_unprojected_recorded_at=behind["oldest"],
        rebuild_started_at=row["rebuild_started_at"] if row is not None else None,
        rebuild_finished_at=row["rebuild_finished_at"] if row is not None else None,
    )
