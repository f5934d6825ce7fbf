"""The catch-up projector: follows the store's global order and keeps the read models current.

Exactly-once effect. Each batch is one transaction that locks this projector's checkpoint row,
checks it is still where the batch started, writes every view row the batch changed and moves
the checkpoint past the batch. A crash, a cancellation or an error anywhere rolls all of it back
together, so on restart the projector re-reads exactly the events whose effects are not in the
views. A second projector of the same name waits on the checkpoint lock, then finds the
checkpoint moved: it writes nothing, drops what it cached and carries on from the stored
checkpoint.

Speed (``bench/replay.py``). Three things overlap: the next batch is read and decoded, the
current one is folded in memory, and the previous one is being written by the database. That
is safe because a batch's rows are fully rendered before its transaction starts and any failure
throws every cached row away. Pairing states stay folded in memory between batches (a bounded
LRU), so an event costs a fold, not a read-modify-write; each changed row is written once per
batch through ``COPY`` into a staging table and set-based ``INSERT``/``UPDATE``. The folded
state's snapshot (``pairing_snapshots``), which a restart resumes from, is written when a
pairing closes, once it trails by ``snapshot_every`` events, on eviction and when the projector
is caught up; in between, a restart refolds the few missing events from the store.
See ``docs/projections.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import structlog
from pydantic import BaseModel, ConfigDict

from domain import events as e
from domain.cohort_events import COHORT_EVENTS
from domain.events import PAIRING_EVENTS
from domain.pairing import PairingState, evolve
from eventstore import EventStore, Position
from projections.cohort import (
    COHORT_COLUMNS,
    COHORT_JSON_COLUMNS,
    PARTICIPANT_COLUMNS,
    CohortRow,
    ParticipantKey,
    ParticipantRow,
    apply_cohort_event,
    participant_keys,
)
from projections.pairing import (
    MUTABLE_COLUMNS,
    PAIRING_COLUMNS,
    RowMemo,
    cross_functional_of,
    mutable_values,
    pairing_constants,
)
from projections.source import (
    COHORT,
    PAIRING,
    PAIRING_PREFIX,
    EventDecoder,
    SourceBatch,
    SourceEvent,
    read_batch,
)

DEFAULT_NAME = "read_models"

log = structlog.get_logger("sebaya.projections")

# Pairing events after which the pairing's phase may differ (the cohort's counts move).
_PHASE_EVENTS = (e.PairingMatched, e.GoalsSet, e.FinalEvaluationOpened, e.PairingCompleted,
                 e.PairingExited)
_CLOSING = {e.PairingCompleted: "completed_at", e.PairingExited: "exited_at"}


class ProjectionError(RuntimeError):
    """An event cannot be projected (unknown to the fold, out of order, or the views disagree
    with the checkpoint). The batch is rolled back; the projector stops at that event."""


class CheckpointMoved(RuntimeError):
    """Someone else (another projector, a rebuild) moved the checkpoint since this projector
    read it. Handled inside :meth:`Projector.catch_up` by resyncing."""


@dataclass(frozen=True, slots=True)
class BatchInfo:
    """What the batch being committed contains (passed to the ``before_commit`` hook)."""

    number: int
    events: int
    after: Position
    last: Position


BeforeCommit = Callable[[BatchInfo], Awaitable[None]]


@dataclass(slots=True)
class _PairingEntry:
    state: PairingState
    cross_functional: bool | None
    last_event_at: datetime
    row_staged: bool  # a row exists, or is staged in a batch not yet committed
    snapshot_version: int  # version of the last snapshot written or staged
    memo: RowMemo = field(default_factory=RowMemo)


@dataclass(slots=True)
class _Staged:
    """A batch folded and rendered, ready to write: nothing in here changes afterwards."""

    info: BatchInfo
    new_pairings: list[tuple[Any, ...]]
    changed_pairings: list[tuple[Any, ...]]
    snapshots: list[tuple[str, int, str]]
    participants: list[tuple[Any, ...]]
    cohorts: list[tuple[Any, ...]]
    evict: list[tuple[str, int]]  # pairing id, version it must still be at to be dropped


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


_NEW_STAGE = "projection_pairing_new"
_CHANGED_STAGE = "projection_pairing_changed"
_SNAPSHOT_STAGE = "projection_snapshot_stage"
_PARTICIPANT_STAGE = "projection_participant_stage"
_COHORT_STAGE = "projection_cohort_stage"
# Rows already stored only need what can change.
_CHANGED_COLUMNS = ["pairing_id", *MUTABLE_COLUMNS]
_SNAPSHOT_COLUMNS = ["pairing_id", "version", "state"]

_PREPARE = f"""
CREATE TEMP TABLE IF NOT EXISTS {_NEW_STAGE} ON COMMIT DELETE ROWS AS
    SELECT {", ".join(PAIRING_COLUMNS)} FROM pairing_view WITH NO DATA;
CREATE TEMP TABLE IF NOT EXISTS {_CHANGED_STAGE} ON COMMIT DELETE ROWS AS
    SELECT {", ".join(_CHANGED_COLUMNS)} FROM pairing_view WITH NO DATA;
CREATE TEMP TABLE IF NOT EXISTS {_SNAPSHOT_STAGE} ON COMMIT DELETE ROWS AS
    SELECT {", ".join(_SNAPSHOT_COLUMNS)} FROM pairing_snapshots WITH NO DATA;
CREATE TEMP TABLE IF NOT EXISTS {_PARTICIPANT_STAGE} ON COMMIT DELETE ROWS AS
    SELECT {", ".join(PARTICIPANT_COLUMNS)} FROM participant_view WITH NO DATA;
CREATE TEMP TABLE IF NOT EXISTS {_COHORT_STAGE} ON COMMIT DELETE ROWS AS
    SELECT {", ".join(COHORT_COLUMNS)} FROM cohort_view WITH NO DATA;
"""

# Set-based writes from the staging tables, sent together in one round trip.
_INSERT_PAIRINGS = f"""
INSERT INTO pairing_view ({", ".join(PAIRING_COLUMNS)})
SELECT {", ".join(PAIRING_COLUMNS)} FROM {_NEW_STAGE};
"""
_UPDATE_PAIRINGS = f"""
UPDATE pairing_view AS p SET
    {", ".join(f"{c} = s.{c}" for c in MUTABLE_COLUMNS)},
    updated_at = now()
FROM {_CHANGED_STAGE} AS s
WHERE p.pairing_id = s.pairing_id;
"""
_WRITE_SNAPSHOTS = f"""
INSERT INTO pairing_snapshots ({", ".join(_SNAPSHOT_COLUMNS)})
SELECT {", ".join(_SNAPSHOT_COLUMNS)} FROM {_SNAPSHOT_STAGE}
ON CONFLICT (pairing_id) DO UPDATE SET
    version = EXCLUDED.version, state = EXCLUDED.state, updated_at = now();
"""
_WRITE_PARTICIPANTS = f"""
INSERT INTO participant_view ({", ".join(PARTICIPANT_COLUMNS)})
SELECT {", ".join(PARTICIPANT_COLUMNS)} FROM {_PARTICIPANT_STAGE}
ON CONFLICT (cohort_id, employee_id) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in PARTICIPANT_COLUMNS[2:])},
    updated_at = now();
"""
_WRITE_COHORTS = f"""
INSERT INTO cohort_view ({", ".join(COHORT_COLUMNS)})
SELECT {", ".join(COHORT_COLUMNS)} FROM {_COHORT_STAGE}
ON CONFLICT (cohort_id) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in COHORT_COLUMNS[1:])},
    updated_at = now();
"""
_LOCK_CHECKPOINT = (
    "SELECT tx_id, global_position FROM projection_checkpoints WHERE name = $1 FOR UPDATE"
)
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
    (a third of the CPU in ``bench/replay.py``). Nothing the fold builds forms reference
    cycles, so refcounting frees it all anyway: collect rarely while catching up."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], 100_000), max(before[1], 50), max(before[2], 100))
    try:
        yield
    finally:
        gc.set_threshold(*before)


class Projector:
    """Maintains ``pairing_view``, ``cohort_view`` and ``participant_view`` from the store.

    ``store``: the event store to follow; it must carry the event registry the composition
    root built (events are decoded, and older schema versions upcast, through it).
    ``batch_size``: rows read (and committed) per transaction when following the log;
    ``rebuild_batch_size`` when rebuilding (larger batches write each pairing's row fewer
    times; memory grows by about 3 KB per event in a batch). ``cache_size``: open pairings
    kept folded in memory. ``snapshot_every``: at most this many events between state snapshots
    of a pairing. ``before_commit``: awaited inside each batch's transaction just before the
    checkpoint moves (tests use it to crash a batch at its worst moment).
    """

    def __init__(
        self,
        store: EventStore,
        *,
        name: str = DEFAULT_NAME,
        batch_size: int = 20_000,
        rebuild_batch_size: int = 100_000,
        cache_size: int = 20_000,
        snapshot_every: int = 64,
        before_commit: BeforeCommit | None = None,
    ) -> None:
        if min(batch_size, rebuild_batch_size, cache_size, snapshot_every) < 1:
            raise ValueError("batch sizes, cache_size and snapshot_every must be >= 1")
        if store.registry is None:
            raise ValueError("the projector needs an EventStore opened with the event registry")
        self._store = store
        self._pool = store.pool
        self._decoder = EventDecoder(store.registry,
                                     (*PAIRING_EVENTS, *COHORT_EVENTS))
        self.name = name
        self._batch_size = batch_size
        self._rebuild_batch_size = rebuild_batch_size
        self._limit = batch_size
        self._cache_size = cache_size
        self._snapshot_every = snapshot_every
        self._before_commit = before_commit
        self._batches = 0
        # One catch-up at a time per instance: the caches belong to one position.
        self._busy = asyncio.Lock()
        # What this process believes the checkpoint is; everything cached is valid for it.
        self._position: Position | None = None
        self._pairings: OrderedDict[str, _PairingEntry] = OrderedDict()
        self._cohorts: dict[str, CohortRow] = {}
        self._participants: OrderedDict[ParticipantKey, ParticipantRow] = OrderedDict()
        # True while the caches hold every row of the table (from a rebuild's empty views
        # until the first eviction): a miss is then a new row and needs no query.
        self._cohorts_complete = False
        self._participants_complete = False

    # --- public API -------------------------------------------------------------------------

    async def catch_up(self) -> int:
        """Project every event readable now; return how many rows of the log were read."""
        await self._ensure_checkpoint()
        async with self._busy:
            return await self._catch_up_locked()

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
                # Lock first: a projector writing a batch finishes it before we truncate.
                await conn.execute(_LOCK_CHECKPOINT, self.name)
                await conn.execute("TRUNCATE pairing_view, pairing_snapshots, cohort_view, "
                                   "participant_view")
                await conn.execute(
                    "UPDATE projection_checkpoints SET tx_id = '0'::xid8, global_position = 0, "
                    "events_applied = 0, rebuild_started_at = clock_timestamp(), "
                    "updated_at = now() WHERE name = $1", self.name)
            self._forget()
            self._position = Position.start()
            self._cohorts_complete = self._participants_complete = True
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

    def _forget(self) -> None:
        """Drop everything cached: the database is the truth again."""
        self._position = None
        self._pairings.clear()
        self._cohorts.clear()
        self._participants.clear()
        self._cohorts_complete = self._participants_complete = False

    async def _ensure_checkpoint(self) -> None:
        await self._pool.execute(
            "INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING",
            self.name)

    async def _catch_up_once(self) -> AsyncIterator[int]:
        async with self._pool.acquire() as reader, self._pool.acquire() as writer:
            await writer.execute(_PREPARE)
            row = await writer.fetchrow(
                "SELECT tx_id, global_position FROM projection_checkpoints WHERE name = $1",
                self.name)
            assert row is not None
            position = Position(row[0], row[1])
            if position != self._position:
                self._forget()
                self._position = position
            limit = self._limit
            reading: asyncio.Task[SourceBatch] | None = asyncio.create_task(
                read_batch(reader, position, limit, self._decoder))
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
                            read_batch(reader, batch.last_position, limit, self._decoder))
                    if self._needs_rows(batch.events):
                        # Rows must be read after the previous batch's commit.
                        if writing is not None:
                            await writing
                            writing = None
                        await self._load(writer, batch.events)
                    try:
                        staged = self._stage(position, batch)
                    except ProjectionError:
                        # Rows cached from a read made after another projector committed
                        # look inconsistent: that is a moved checkpoint, not a broken view.
                        if writing is not None:
                            await writing
                            writing = None
                        await self._check_not_moved(writer)
                        raise
                    if writing is not None:
                        await writing
                    writing = asyncio.create_task(self._commit(writer, staged))
                    position = batch.last_position
                    yield batch.rows_read
                if writing is not None:
                    await writing
                    writing = None
                await self._flush_snapshots(writer)
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

    async def _commit(self, conn: asyncpg.Connection, staged: _Staged) -> None:
        info = staged.info
        async with conn.transaction():
            # Lock the checkpoint before writing anything: a second projector of this name
            # waits here until our batch commits, then finds the checkpoint moved and writes
            # nothing (instead of colliding with our rows first).
            row = await conn.fetchrow(_LOCK_CHECKPOINT, self.name)
            if row is None or Position(row[0], row[1]) != info.after:
                raise CheckpointMoved(f"checkpoint is at {tuple(row) if row else None}, this "
                                      f"batch starts after {tuple(info.after)}")
            await self._write_rows(conn, staged)
            if self._before_commit is not None:
                await self._before_commit(info)
            moved = await conn.execute(
                _MOVE_CHECKPOINT, self.name, info.after[0], info.after[1],
                info.last[0], info.last[1], info.events)
            if moved != "UPDATE 1":
                raise CheckpointMoved(f"batch after {tuple(info.after)} not applied")
        self._position = info.last
        for pairing_id, version in staged.evict:
            entry = self._pairings.get(pairing_id)
            # Only if no later batch folded into it meanwhile.
            if entry is not None and entry.state.version == version:
                del self._pairings[pairing_id]

    async def _write_rows(self, conn: asyncpg.Connection, staged: _Staged) -> None:
        statements = []
        for stage, columns, records, statement in (
            (_NEW_STAGE, PAIRING_COLUMNS, staged.new_pairings, _INSERT_PAIRINGS),
            (_CHANGED_STAGE, _CHANGED_COLUMNS, staged.changed_pairings, _UPDATE_PAIRINGS),
            (_SNAPSHOT_STAGE, _SNAPSHOT_COLUMNS, staged.snapshots, _WRITE_SNAPSHOTS),
            (_PARTICIPANT_STAGE, PARTICIPANT_COLUMNS, staged.participants,
             _WRITE_PARTICIPANTS),
            (_COHORT_STAGE, COHORT_COLUMNS, staged.cohorts, _WRITE_COHORTS),
        ):
            if records:
                await conn.copy_records_to_table(stage, records=records, columns=list(columns))
                statements.append(statement)
        if statements:
            # No need to wait for this commit to reach disk: views and checkpoint commit
            # together, so a commit lost in a crash is a batch the projector simply redoes.
            await conn.execute("SET LOCAL synchronous_commit TO off;" + "".join(statements))

    async def _flush_snapshots(self, conn: asyncpg.Connection) -> None:
        """Caught up: make every pairing's stored snapshot current, so a restart resumes
        without refolding anything (and two projections of one log store the same rows)."""
        position = self._position
        if position is None:
            return
        # Pairings whose snapshot trails and that are not in memory (e.g. folded by a
        # projector that stopped before it could flush): fold them from the store first.
        lagging = {row[0]: row[1] for row in await conn.fetch(
            "SELECT p.pairing_id, p.stream_version FROM pairing_view p "
            "LEFT JOIN pairing_snapshots s USING (pairing_id) "
            "WHERE s.version IS DISTINCT FROM p.stream_version")
            if row[0] not in self._pairings}
        if lagging:
            await self._load_pairings(conn, list(lagging),
                                      {pid: version + 1 for pid, version in lagging.items()})
        dirty = [entry for entry in self._pairings.values()
                 if entry.snapshot_version < entry.state.version]
        if not dirty:
            return
        snapshots = [self._snapshot(entry) for entry in dirty]
        staged = _Staged(BatchInfo(self._batches, 0, position, position), [], [], snapshots,
                         [], [], [])
        await self._commit(conn, staged)
        for pid in lagging:  # they were only loaded to be snapshotted
            entry = self._pairings.get(pid)
            if entry is not None and entry.state.is_closed:
                del self._pairings[pid]

    # --- loading what a batch needs ---------------------------------------------------------

    def _needs_rows(self, events: list[SourceEvent]) -> bool:
        """Whether folding ``events`` needs rows that are not cached (but may be stored)."""
        pairings = self._pairings
        complete = self._cohorts_complete and self._participants_complete
        new: set[str] = set()
        people: tuple[ParticipantKey, ...]
        for ev in events:
            kind = ev.kind
            if kind == PAIRING:
                key = ev.key
                if key in pairings:
                    if complete or not isinstance(ev.event, _PHASE_EVENTS):
                        continue
                    s = pairings[key].state
                    cid, people = s.cohort_id, ((s.cohort_id, s.mentor_id),
                                                (s.cohort_id, s.mentee_id))
                elif ev.version == 1:
                    new.add(key)
                    event = ev.event
                    if complete or not isinstance(event, e.PairingMatched):
                        continue  # (the fold refuses a stream not starting with a match)
                    cid, people = event.cohort_id, ((event.cohort_id, event.mentor_id),
                                                    (event.cohort_id, event.mentee_id))
                elif key in new:
                    continue  # its rows were checked at its PairingMatched
                else:
                    return True  # evicted: its row (and snapshot) must be read
            elif kind == COHORT:
                if complete:
                    continue
                cid = ev.key
                people = tuple(key for key, _ in participant_keys(ev.event, cid))
            else:
                continue
            if not self._cohorts_complete and cid not in self._cohorts:
                return True
            if not self._participants_complete and any(
                    key not in self._participants for key in people):
                return True
        return False

    async def _load(self, conn: asyncpg.Connection, events: list[SourceEvent]) -> None:
        """Bring every row the batch touches into memory: one query per table for misses."""
        first_version: dict[str, int] = {}
        for ev in events:
            if ev.kind == PAIRING and ev.key not in self._pairings \
                    and ev.key not in first_version:
                first_version[ev.key] = ev.version
        to_load = [pid for pid, version in first_version.items() if version > 1]
        if to_load:
            await self._load_pairings(conn, to_load, first_version)

        cohorts: set[str] = set()
        people: set[ParticipantKey] = set()
        for ev in events:
            event = ev.event
            if ev.kind == PAIRING:
                if isinstance(event, e.PairingMatched):
                    cohorts.add(event.cohort_id)
                    people.add((event.cohort_id, event.mentor_id))
                    people.add((event.cohort_id, event.mentee_id))
                elif isinstance(event, _PHASE_EVENTS):
                    entry = self._pairings.get(ev.key)
                    if entry is not None:
                        s = entry.state
                        cohorts.add(s.cohort_id)
                        people.add((s.cohort_id, s.mentor_id))
                        people.add((s.cohort_id, s.mentee_id))
            elif ev.kind == COHORT:
                cohorts.add(ev.key)
                people.update(key for key, _ in participant_keys(event, ev.key))
        missing_cohorts = [c for c in cohorts if c not in self._cohorts]
        if missing_cohorts and not self._cohorts_complete:
            rows = await conn.fetch(
                f"SELECT {_select(COHORT_COLUMNS, COHORT_JSON_COLUMNS)} FROM cohort_view "
                "WHERE cohort_id = ANY($1::text[])", missing_cohorts)
            for row in rows:
                self._cohorts[row["cohort_id"]] = CohortRow.from_record(row)
        missing_people = [k for k in people if k not in self._participants]
        if missing_people and not self._participants_complete:
            rows = await conn.fetch(
                f"SELECT {_select(PARTICIPANT_COLUMNS, {'pairing_ids'})} FROM participant_view "
                "WHERE (cohort_id, employee_id) IN "
                "(SELECT * FROM unnest($1::text[], $2::text[]))",
                [k[0] for k in missing_people], [k[1] for k in missing_people])
            for row in rows:
                self._participants[(row["cohort_id"], row["employee_id"])] = (
                    ParticipantRow.from_record(row))

    async def _load_pairings(self, conn: asyncpg.Connection, pairing_ids: list[str],
                             first_version: dict[str, int]) -> None:
        rows = await conn.fetch(
            "SELECT p.pairing_id, s.state::text AS state, s.version AS state_version, "
            "p.stream_version, p.cross_functional, p.last_event_at "
            "FROM pairing_view p LEFT JOIN pairing_snapshots s USING (pairing_id) "
            "WHERE p.pairing_id = ANY($1::text[])", pairing_ids)
        found = {row["pairing_id"]: row for row in rows}
        for pid in pairing_ids:
            needed = first_version[pid] - 1  # the state just before the batch's first event
            row = found.get(pid)
            stream = PAIRING_PREFIX + pid
            if row is None or row["stream_version"] != needed:
                # Rows are read outside the batch's transaction: another projector may have
                # committed meanwhile. Only if it did not are the views really inconsistent.
                await self._check_not_moved(conn)
                held = "no row" if row is None else f"version {row['stream_version']}"
                raise ProjectionError(
                    f"{stream}: the view holds {held} but the next event is version "
                    f"{needed + 1}: the views disagree with the checkpoint; run "
                    "`sebaya projections rebuild`")
            if row["state"] is None:  # no snapshot yet: fold from the start
                state, snapshot_version = PairingState(), 0
            else:
                state = PairingState.model_validate_json(row["state"])
                snapshot_version = row["state_version"]
            if snapshot_version < needed:
                # The snapshot trails the row: refold the missing events from the store.
                state = await self._refold(conn, stream, state, snapshot_version + 1, needed)
            self._pairings[pid] = _PairingEntry(
                state=state, cross_functional=row["cross_functional"],
                last_event_at=row["last_event_at"], row_staged=True,
                snapshot_version=snapshot_version)

    async def _check_not_moved(self, conn: asyncpg.Connection) -> None:
        row = await conn.fetchrow(
            "SELECT tx_id, global_position FROM projection_checkpoints WHERE name = $1",
            self.name)
        if row is None or Position(row[0], row[1]) != self._position:
            raise CheckpointMoved("checkpoint moved while rows were being read")

    async def _refold(self, conn: asyncpg.Connection, stream: str, state: PairingState,
                      first: int, last: int) -> PairingState:
        rows = await conn.fetch(
            "SELECT version, type, schema_version, payload::text FROM events "
            "WHERE stream_id = $1 AND version BETWEEN $2 AND $3 ORDER BY version",
            stream, first, last)
        if len(rows) != last - first + 1:
            raise ProjectionError(f"{stream}: versions {first}..{last} are not all in the store")
        for row in rows:
            event = self._decoder.decode(row[1], row[2], row[3])
            if not isinstance(event, e.DomainEvent):
                raise ProjectionError(f"{stream} version {row[0]}: {row[1]} is not a "
                                      "pairing event")
            state = evolve(state, event)
        return state

    # --- folding and rendering ---------------------------------------------------------------

    def _cohort(self, cohort_id: str) -> CohortRow:
        row = self._cohorts.get(cohort_id)
        if row is None:
            row = self._cohorts[cohort_id] = CohortRow(cohort_id)
        return row

    def _participant(self, key: ParticipantKey, role: str) -> ParticipantRow:
        row = self._participants.get(key)
        if row is None:
            row = self._participants[key] = ParticipantRow(key[0], key[1], role or "unknown")
        elif role and row.role == "unknown":
            row.role = role
        return row

    def _stage(self, after: Position, batch: SourceBatch) -> _Staged:
        """Fold the batch into the cached rows and render everything it changed."""
        self._batches += 1
        touched, cohorts, people = self._fold(batch.events)
        new: list[tuple[Any, ...]] = []
        changed: list[tuple[Any, ...]] = []
        snapshots: list[tuple[str, int, str]] = []
        every = self._snapshot_every
        for entry in touched:
            state = entry.state
            values = mutable_values(state, last_event_at=entry.last_event_at, memo=entry.memo)
            if entry.row_staged:
                changed.append((state.pairing_id, *values))
            else:
                entry.row_staged = True
                memo = entry.memo
                if memo.constants is None:
                    memo.constants = pairing_constants(
                        state, cross_functional=entry.cross_functional)
                new.append((*memo.constants, *values))
            if state.version - entry.snapshot_version >= every or state.is_closed:
                snapshots.append(self._snapshot(entry))
        # Closed pairings leave the cache once their final snapshot (rendered just now) is
        # written; the least recently used ones leave with a snapshot written first.
        closed = [entry.state.pairing_id for entry in touched if entry.state.is_closed]
        lru = self._overflow(touched, len(closed))
        for pid in lru:
            entry = self._pairings[pid]
            if entry.snapshot_version < entry.state.version:
                snapshots.append(self._snapshot(entry))
        if len(self._participants) > self._cache_size * 4:
            # Participant rows are always written whole: evicting them costs nothing now.
            for _ in range(len(self._participants) - self._cache_size * 4):
                self._participants.popitem(last=False)
            self._participants_complete = False
        return _Staged(
            BatchInfo(self._batches, batch.rows_read, after, batch.last_position),
            new,
            changed,
            snapshots,
            [p.values() for p in people],
            [c.values() for c in cohorts],
            [(pid, self._pairings[pid].state.version) for pid in (*closed, *lru)],
        )

    @staticmethod
    def _snapshot(entry: _PairingEntry) -> tuple[str, int, str]:
        state = entry.state
        entry.snapshot_version = state.version
        return (state.pairing_id, state.version, state.model_dump_json())

    def _fold(
        self, events: list[SourceEvent]
    ) -> tuple[list[_PairingEntry], list[CohortRow], list[ParticipantRow]]:
        pairings = self._pairings
        touched: dict[str, _PairingEntry] = {}
        cohorts: dict[str, CohortRow] = {}
        people: dict[ParticipantKey, ParticipantRow] = {}

        def participant(key: ParticipantKey, role: str) -> ParticipantRow:
            row = people[key] = self._participant(key, role)
            return row

        for ev in events:
            event = ev.event
            if ev.kind == PAIRING:
                pid = ev.key
                entry = pairings.get(pid)
                if entry is None:
                    if ev.version != 1 or not isinstance(event, e.PairingMatched):
                        raise ProjectionError(f"{ev.stream_id} version {ev.version}: a pairing "
                                              "stream must start with PairingMatched")
                    entry = pairings[pid] = _PairingEntry(
                        PairingState(), cross_functional_of(event.explanation),
                        ev.occurred_at, row_staged=False, snapshot_version=0)
                state = entry.state
                if ev.version != state.version + 1:
                    raise ProjectionError(
                        f"{ev.stream_id}: event version {ev.version} does not follow the "
                        f"projected version {state.version}")
                try:
                    new_state = evolve(state, event)  # type: ignore[arg-type]
                except Exception as exc:
                    raise ProjectionError(f"{ev.stream_id} version {ev.version} ({ev.type}) "
                                          f"cannot be folded: {exc!r}") from exc
                entry.state = new_state
                entry.last_event_at = ev.occurred_at
                touched[pid] = entry
                if new_state.phase is not state.phase:
                    old = None if state.version == 0 else state.phase.value
                    cohort = cohorts[new_state.cohort_id] = self._cohort(new_state.cohort_id)
                    cohort.count_pairing(old, new_state.phase.value)
                    cid = new_state.cohort_id
                    if old is None:
                        started = new_state.started_at or ev.occurred_at
                        participant((cid, new_state.mentor_id), "mentor").joined(pid, started)
                        participant((cid, new_state.mentee_id), "mentee").joined(pid, started)
                    elif (attr := _CLOSING.get(type(event))) is not None:
                        ended = getattr(event, attr)
                        participant((cid, new_state.mentor_id), "mentor").ended(pid, ended)
                        participant((cid, new_state.mentee_id), "mentee").ended(pid, ended)
            elif ev.kind == COHORT:
                cohort = cohorts[ev.key] = self._cohort(ev.key)
                if ev.version != cohort.stream_version + 1:
                    raise ProjectionError(
                        f"{ev.stream_id}: event version {ev.version} does not follow the "
                        f"projected version {cohort.stream_version}")
                try:
                    apply_cohort_event(cohort, event, ev.occurred_at, participant)
                except TypeError as exc:
                    raise ProjectionError(f"{ev.stream_id} version {ev.version}: {exc}") from exc
                cohort.stream_version = ev.version

        for pid in touched:
            pairings.move_to_end(pid)
        for key in people:
            self._participants.move_to_end(key)
        return list(touched.values()), list(cohorts.values()), list(people.values())

    def _overflow(self, touched: list[_PairingEntry], leaving: int) -> list[str]:
        """Least recently used pairings (not touched by this batch) to drop, so that the
        cache holds at most ``cache_size`` once ``leaving`` others are gone."""
        excess = len(self._pairings) - leaving - self._cache_size
        if excess <= 0:
            return []
        now = {entry.state.pairing_id for entry in touched}
        out: list[str] = []
        for pid in self._pairings:  # least recently used first
            if len(out) >= excess:
                break
            if pid not in now:
                out.append(pid)
        return out


def _select(columns: Iterable[str], json_columns: Iterable[str]) -> str:
    # jsonb as text: the pool may carry a json codec of its own; we parse ourselves.
    as_text = set(json_columns)
    return ", ".join(f"{c}::text AS {c}" if c in as_text else c for c in columns)


async def projection_status(pool: asyncpg.Pool, name: str = DEFAULT_NAME) -> ProjectionStatus:
    """The checkpoint of projector ``name`` against the head of the log."""
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


__all__ = [
    "DEFAULT_NAME",
    "BatchInfo",
    "CheckpointMoved",
    "ProjectionError",
    "ProjectionStatus",
    "Projector",
    "projection_status",
]
