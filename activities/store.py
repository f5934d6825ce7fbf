"""Append domain events to the Postgres store.

The workflow decides the events *and their ids*; this activity only writes them. A retry (or a
worker that crashed after the commit but before reporting) re-sends the same ids at the same
versions, which the store answers with the original result: no duplicate, no loss.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from temporalio import activity
from temporalio.exceptions import ApplicationError

from eventstore import (
    EventIdConflict,
    EventRegistry,
    EventStore,
    InvalidAppend,
    InvalidEventPayload,
    NewEvent,
    PayloadTooLarge,
    RecordedEvent,
    UnknownEventType,
    WrongExpectedVersion,
)

# Refusals that a retry cannot fix: the workflow must see them at once.
_PERMANENT = (
    WrongExpectedVersion,
    EventIdConflict,
    InvalidAppend,
    InvalidEventPayload,
    PayloadTooLarge,
    UnknownEventType,
)


class AppendEventsInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    stream_id: str
    expected_version: int
    events: list[NewEvent]


class StoredEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: str
    schema_version: int
    payload: dict[str, Any]


class AppendEventsResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    last_version: int
    idempotent_replay: bool
    # What the stream now holds at those versions. The workflow folds *these*, not the events
    # it decided: ``workflow.now()`` can differ between the first execution and a replay (a
    # workflow task that only heartbeated a running local activity is merged on replay), and
    # a retried append keeps the original. Folding the activity's result, which history
    # records, keeps the workflow's state equal to the stream on every replay.
    stored: list[StoredEvent]


class ReadEventsInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    stream_id: str
    after_version: int


class StoreActivities:
    """``registry`` upcasts what is read back: workflows only ever see the current schema
    of each event type, whatever version the store holds."""

    def __init__(self, store: EventStore, registry: EventRegistry) -> None:
        self._store = store
        self._registry = registry

    def _current(self, record: RecordedEvent) -> StoredEvent:
        event = self._registry.decode(record)  # upcast to the type's latest version
        return StoredEvent(type=record.type, schema_version=self._registry.latest_version(
            record.type), payload=event.model_dump(mode="json"))

    @activity.defn(name="append_events")
    async def append_events(self, inp: AppendEventsInput) -> AppendEventsResult:
        try:
            result = await self._store.append(inp.stream_id, inp.expected_version, inp.events)
        except _PERMANENT as exc:
            raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True) from exc
        activity.logger.debug(
            "appended %s event(s) to %s", len(inp.events), inp.stream_id
        )
        if result.idempotent_replay:
            records = await self._store.read_stream(
                inp.stream_id, result.first_version, result.last_version
            )
            stored = [self._current(r) for r in records]
        else:
            stored = [
                StoredEvent(type=ev.type, schema_version=ev.schema_version, payload=ev.payload)
                for ev in inp.events
            ]
        return AppendEventsResult(
            last_version=result.last_version,
            idempotent_replay=result.idempotent_replay,
            stored=stored,
        )

    @activity.defn(name="read_events")
    async def read_events(self, inp: ReadEventsInput) -> list[StoredEvent]:
        """Events after ``after_version``: what another activity appended for the workflow."""
        records = await self._store.read_stream(inp.stream_id, inp.after_version + 1)
        return [self._current(r) for r in records]
