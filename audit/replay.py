"""Rebuild a pairing's state from its events alone, optionally as of a date, and hold the
other two places that claim to know it (the read model, the live workflow) against it.

Two clocks. *Domain time* (``metadata.occurred_at``) is when something happened in the
program (virtual time in simulations); *recorded time* (``recorded_at``) is when the store
wrote it. "As of 1 May, domain time" answers "what state was the pairing in on 1 May";
"as of 1 May, recorded time" answers "what did Sebaya's record say on 1 May" (a meeting
logged late appears in the first and not in the second).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel, ConfigDict
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from audit.history import PairingNotFound, require_registry
from domain import events as e
from domain.ids import pairing_stream, pairing_workflow_id
from domain.pairing import PairingState, evolve
from eventstore import EventStore, RecordedEvent
from projections.pairing import (
    JSON_COLUMNS,
    PAIRING_COLUMNS,
    cross_functional_of,
    pairing_record,
)

TimeBasis = Literal["domain", "recorded"]


class FieldDifference(BaseModel):
    """One field whose value differs from the replayed state's."""

    model_config = ConfigDict(frozen=True)

    field: str
    replayed: Any
    other: Any


class Comparison(BaseModel):
    """The replayed state held against one other source."""

    model_config = ConfigDict(frozen=True)

    source: Literal["read_model", "workflow"]
    available: bool
    note: str | None = None
    differences: list[FieldDifference] = []


class ReplayResult(BaseModel):
    """``sebaya audit replay``: the folded state and how the other sources compare."""

    model_config = ConfigDict(frozen=True)

    pairing_id: str
    stream_id: str
    as_of: datetime | None
    basis: TimeBasis
    events_applied: int
    last_version: int
    skipped_versions: list[int]
    """Versions left out although later versions are in: only possible when domain time does
    not grow with version. The fold then is an approximation; the list says where."""
    state: PairingState
    comparisons: list[Comparison]

    @property
    def consistent(self) -> bool:
        return not any(c.differences for c in self.comparisons)


async def replayed_state(
    store: EventStore, pairing_id: str, *, as_of: datetime | None = None,
    basis: TimeBasis = "domain",
) -> tuple[PairingState, list[RecordedEvent]]:
    """The pairing's state folded from its stored events (those at or before ``as_of`` in
    the chosen time basis), with the events folded. Raises :class:`PairingNotFound`."""
    stream = pairing_stream(pairing_id)
    if as_of is None:
        records = await store.read_stream(stream)
    elif basis == "domain":
        records = await store.read_stream_as_of(stream, as_of)
    else:
        if as_of.tzinfo is None:
            raise ValueError("as_of must be timezone-aware")
        records = [r for r in await store.read_stream(stream) if r.recorded_at <= as_of]
    if not records and as_of is None:
        raise PairingNotFound(pairing_id)
    registry = require_registry(store)
    state = PairingState()
    for record in records:
        event = registry.decode(record)
        if not isinstance(event, e.DomainEvent):
            raise TypeError(f"{stream} version {record.version} is a {record.type}, "
                            "not a pairing event")
        state = evolve(state, event)
    return state, records


async def compare_with_read_model(
    pool: asyncpg.Pool, state: PairingState, records: list[RecordedEvent]
) -> Comparison:
    """Every ``pairing_view`` column against the value the projector would write for the
    replayed state."""
    if state.started_at is None:
        return Comparison(source="read_model", available=False,
                          note="the pairing has no match event: nothing to project")
    columns = ", ".join(f"{c}::text AS {c}" if c in JSON_COLUMNS else c
                        for c in PAIRING_COLUMNS)
    row = await pool.fetchrow(f"SELECT {columns} FROM pairing_view WHERE pairing_id = $1",
                              state.pairing_id)
    if row is None:
        return Comparison(source="read_model", available=True,
                          note="no pairing_view row: the projector has not seen this pairing",
                          differences=[FieldDifference(field="pairing_view", replayed="row",
                                                       other=None)])
    matched = next(r for r in records if r.type == e.PairingMatched.event_type)
    expected = pairing_record(
        state, cross_functional=cross_functional_of(matched.payload.get("explanation", {})),
        last_event_at=records[-1].metadata.occurred_at)
    stored = {c: json.loads(row[c]) if c in JSON_COLUMNS else row[c] for c in PAIRING_COLUMNS}
    differences = [FieldDifference(field=c, replayed=expected[c], other=stored[c])
                   for c in PAIRING_COLUMNS if expected[c] != stored[c]]
    note = None
    if stored["stream_version"] != expected["stream_version"]:
        note = (f"the read model is at version {stored['stream_version']}, the stream at "
                f"{expected['stream_version']}: the projector lags (or is not running)")
    return Comparison(source="read_model", available=True, note=note, differences=differences)


async def compare_with_workflow(client: Client, state: PairingState) -> Comparison:
    """The running workflow's ``state`` query against the replayed state, field by field.
    Not available when the workflow has finished (its record is then the store alone)."""
    handle = client.get_workflow_handle(pairing_workflow_id(state.pairing_id))
    try:
        description = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return Comparison(source="workflow", available=False,
                              note="no such workflow in this namespace")
        raise
    if description.status != WorkflowExecutionStatus.RUNNING:
        status = description.status.name if description.status else "unknown"
        return Comparison(source="workflow", available=False,
                          note=f"workflow is {status.lower()}: nothing running to compare")
    live: PairingState = await handle.query("state", result_type=PairingState)
    replayed = state.model_dump(mode="json")
    other = live.model_dump(mode="json")
    differences = [FieldDifference(field=name, replayed=replayed[name], other=other.get(name))
                   for name in replayed if replayed[name] != other.get(name)]
    note = None
    if live.version != state.version:
        note = (f"the workflow is at version {live.version}, the stream at {state.version}: "
                "an append may be in flight, or the two disagree")
    return Comparison(source="workflow", available=True, note=note, differences=differences)


async def replay_pairing(
    store: EventStore,
    pairing_id: str,
    *,
    as_of: datetime | None = None,
    basis: TimeBasis = "domain",
    client: Client | None = None,
    compare: bool = True,
) -> ReplayResult:
    """Fold the pairing's events; without ``as_of`` (and with ``compare``) also compare with
    the read model and, given a Temporal ``client``, with the running workflow."""
    state, records = await replayed_state(store, pairing_id, as_of=as_of, basis=basis)
    versions = [r.version for r in records]
    last = versions[-1] if versions else 0
    skipped = sorted(set(range(1, last + 1)) - set(versions))
    comparisons: list[Comparison] = []
    if compare and as_of is None:
        comparisons.append(await compare_with_read_model(store.pool, state, records))
        if client is not None:
            comparisons.append(await compare_with_workflow(client, state))
    return ReplayResult(
        pairing_id=pairing_id, stream_id=pairing_stream(pairing_id), as_of=as_of,
        basis=basis, events_applied=len(records), last_version=last,
        skipped_versions=skipped, state=state, comparisons=comparisons,
    )
