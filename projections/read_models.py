"""Sebaya's read models as one :class:`~projections.runner.Projection`: the writers of
``pairing_view``, ``pairing_snapshots``, ``cohort_view`` and ``participant_view``.

Pairing states stay folded in memory between batches (a bounded LRU), so an event costs a
fold, not a read-modify-write; each changed row is written once per batch through ``COPY`` into
a staging table and set-based ``INSERT``/``UPDATE``. The folded state's snapshot
(``pairing_snapshots``), which a restart resumes from, is written when a pairing closes, once it
trails by ``snapshot_every`` events, on eviction and when the runner is caught up; in between,
a restart refolds the few missing events from the store. What a row holds is computed in
``projections/pairing.py`` and ``projections/cohort.py``; see ``docs/projections.md``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel

from domain import events as e
from domain.cohort_events import COHORT_EVENTS
from domain.events import PAIRING_EVENTS
from domain.pairing import PairingState
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
from projections.pairing_fold import PairingFold
from projections.runner import ProjectionError
from projections.source import COHORT, PAIRING, PAIRING_PREFIX, EventDecoder, SourceEvent

# Pairing events after which the pairing's phase may differ (the cohort's counts move).
_PHASE_EVENTS = (e.PairingMatched, e.GoalsSet, e.FinalEvaluationOpened, e.PairingCompleted,
                 e.PairingExited)
_CLOSING = {e.PairingCompleted: "completed_at", e.PairingExited: "exited_at"}


@dataclass(slots=True)
class _PairingEntry:
    state: PairingFold
    cross_functional: bool | None
    last_event_at: datetime
    row_staged: bool  # a row exists, or is staged in a batch not yet committed
    snapshot_version: int  # version of the last snapshot written or staged
    memo: RowMemo = field(default_factory=RowMemo)


@dataclass(slots=True)
class ReadModelWrites:
    """A batch folded and rendered, ready to write: nothing in here changes afterwards."""

    new_pairings: list[tuple[Any, ...]]
    changed_pairings: list[tuple[Any, ...]]
    snapshots: list[tuple[str, int, str]]
    participants: list[tuple[Any, ...]]
    cohorts: list[tuple[Any, ...]]
    evict: list[tuple[str, int]]  # pairing id, version it must still be at to be dropped


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

class ReadModels:
    """The read models' writers and their in-memory rows (a :class:`Projection`).

    ``cache_size``: open pairings kept folded in memory. ``snapshot_every``: at most this many
    events between state snapshots of a pairing.
    """

    event_types: Sequence[type[BaseModel]] = (*PAIRING_EVENTS, *COHORT_EVENTS)
    tables: Sequence[str] = ("pairing_view", "pairing_snapshots", "cohort_view",
                             "participant_view")

    def __init__(self, *, cache_size: int = 20_000, snapshot_every: int = 64) -> None:
        if min(cache_size, snapshot_every) < 1:
            raise ValueError("cache_size and snapshot_every must be >= 1")
        self._cache_size = cache_size
        self._snapshot_every = snapshot_every
        self._pairings: OrderedDict[str, _PairingEntry] = OrderedDict()
        self._cohorts: dict[str, CohortRow] = {}
        self._participants: OrderedDict[ParticipantKey, ParticipantRow] = OrderedDict()
        # True while the caches hold every row of the table (from a rebuild's empty views
        # until the first eviction): a miss is then a new row and needs no query.
        self._cohorts_complete = False
        self._participants_complete = False

    def forget(self) -> None:
        self._pairings.clear()
        self._cohorts.clear()
        self._participants.clear()
        self._cohorts_complete = self._participants_complete = False

    def start_empty(self) -> None:
        self._cohorts_complete = self._participants_complete = True

    async def prepare(self, conn: asyncpg.Connection) -> None:
        await conn.execute(_PREPARE)

    async def write(self, conn: asyncpg.Connection, staged: ReadModelWrites) -> None:
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
            await conn.execute("".join(statements))

    def committed(self, staged: ReadModelWrites) -> None:
        for pairing_id, version in staged.evict:
            entry = self._pairings.get(pairing_id)
            # Only if no later batch folded into it meanwhile.
            if entry is not None and entry.state.version == version:
                del self._pairings[pairing_id]

    async def caught_up(self, conn: asyncpg.Connection,
                        decoder: EventDecoder) -> ReadModelWrites | None:
        """Make every pairing's stored snapshot current, so a restart resumes without
        refolding anything (and two projections of one log store the same rows)."""
        # Pairings whose snapshot trails and that are not in memory (e.g. folded by a
        # projector that stopped before it could flush): fold them from the store first.
        lagging = {row[0]: row[1] for row in await conn.fetch(
            "SELECT p.pairing_id, p.stream_version FROM pairing_view p "
            "LEFT JOIN pairing_snapshots s USING (pairing_id) "
            "WHERE s.version IS DISTINCT FROM p.stream_version")
            if row[0] not in self._pairings}
        if lagging:
            await self._load_pairings(conn, list(lagging),
                                      {pid: version + 1 for pid, version in lagging.items()},
                                      decoder)
        dirty = [entry for entry in self._pairings.values()
                 if entry.snapshot_version < entry.state.version]
        if not dirty:
            return None
        snapshots = [self._snapshot(entry) for entry in dirty]
        # Closed ones were only loaded to be snapshotted.
        done = [(pid, entry.state.version) for pid in lagging
                if (entry := self._pairings.get(pid)) is not None and entry.state.is_closed]
        return ReadModelWrites([], [], snapshots, [], [], done)

    # --- loading what a batch needs ---------------------------------------------------------

    def needs_rows(self, events: list[SourceEvent]) -> bool:
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

    async def load(self, conn: asyncpg.Connection, events: list[SourceEvent],
                   decoder: EventDecoder) -> None:
        """Bring every row the batch touches into memory: one query per table for misses."""
        first_version: dict[str, int] = {}
        for ev in events:
            if ev.kind == PAIRING and ev.key not in self._pairings \
                    and ev.key not in first_version:
                first_version[ev.key] = ev.version
        to_load = [pid for pid, version in first_version.items() if version > 1]
        if to_load:
            await self._load_pairings(conn, to_load, first_version, decoder)

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
                             first_version: dict[str, int], decoder: EventDecoder) -> None:
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
                # committed meanwhile (the runner checks before reporting this).
                held = "no row" if row is None else f"version {row['stream_version']}"
                raise ProjectionError(
                    f"{stream}: the view holds {held} but the next event is version "
                    f"{needed + 1}: the views disagree with the checkpoint; run "
                    "`sebaya projections rebuild`")
            if row["state"] is None:  # no snapshot yet: fold from the start
                state, snapshot_version = PairingFold(), 0
            else:
                state = PairingFold(PairingState.model_validate_json(row["state"]))
                snapshot_version = row["state_version"]
            if snapshot_version < needed:
                # The snapshot trails the row: refold the missing events from the store.
                await _refold(conn, decoder, stream, state, snapshot_version + 1, needed)
            self._pairings[pid] = _PairingEntry(
                state=state, cross_functional=row["cross_functional"],
                last_event_at=row["last_event_at"], row_staged=True,
                snapshot_version=snapshot_version)

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

    def stage(self, events: list[SourceEvent]) -> ReadModelWrites:
        """Fold the batch into the cached rows and render everything it changed."""
        touched, cohorts, people = self._fold(events)
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
        return ReadModelWrites(
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
        return (state.pairing_id, state.version, state.to_state().model_dump_json())

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
                        PairingFold(), cross_functional_of(event.explanation),
                        ev.occurred_at, row_staged=False, snapshot_version=0)
                state = entry.state
                if ev.version != state.version + 1:
                    raise ProjectionError(
                        f"{ev.stream_id}: event version {ev.version} does not follow the "
                        f"projected version {state.version}")
                phase_before = state.phase
                try:
                    state.apply(event)  # type: ignore[arg-type]
                except Exception as exc:
                    # The state may be half-changed: the runner drops every cached row.
                    raise ProjectionError(f"{ev.stream_id} version {ev.version} ({ev.type}) "
                                          f"cannot be folded: {exc!r}") from exc
                entry.last_event_at = ev.occurred_at
                touched[pid] = entry
                if state.phase is not phase_before:
                    old = None if ev.version == 1 else phase_before.value
                    cohort = cohorts[state.cohort_id] = self._cohort(state.cohort_id)
                    cohort.count_pairing(old, state.phase.value)
                    cid = state.cohort_id
                    if old is None:
                        started = state.started_at or ev.occurred_at
                        participant((cid, state.mentor_id), "mentor").joined(pid, started)
                        participant((cid, state.mentee_id), "mentee").joined(pid, started)
                    elif (attr := _CLOSING.get(type(event))) is not None:
                        ended = getattr(event, attr)
                        participant((cid, state.mentor_id), "mentor").ended(pid, ended)
                        participant((cid, state.mentee_id), "mentee").ended(pid, ended)
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


async def _refold(conn: asyncpg.Connection, decoder: EventDecoder, stream: str,
                  state: PairingFold, first: int, last: int) -> None:
    rows = await conn.fetch(
        "SELECT version, type, schema_version, payload::text FROM events "
        "WHERE stream_id = $1 AND version BETWEEN $2 AND $3 ORDER BY version",
        stream, first, last)
    if len(rows) != last - first + 1:
        raise ProjectionError(f"{stream}: versions {first}..{last} are not all in the store")
    for row in rows:
        event = decoder.decode(row[1], row[2], row[3])
        if not isinstance(event, e.DomainEvent):
            raise ProjectionError(f"{stream} version {row[0]}: {row[1]} is not a "
                                  "pairing event")
        state.apply(event)
