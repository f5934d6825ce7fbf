"""Append domain events to the Postgres store.

The workflow decides the events *and their ids*; this activity only writes them. A retry (or a
worker that crashed after the commit but before reporting) re-sends the same ids at the same
versions, which the store answers with the original result: no duplicate, no loss.

A writer that asks for it (``adopt_own_events``) also gets back what an earlier attempt of
its own left in the stream when that differs from what it proposes now: a worker that died
after its append committed leaves events the retried workflow task did not decide, and the
workflow folds those and decides again on top of them (ADR 0005) instead of being refused.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.ids import event_id_for
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
    # When the stream already holds events after ``expected_version`` whose ids are the ones
    # this writer derives for those versions (``domain.ids.event_id_for``): an earlier attempt
    # of this same writer committed them. Return them (``adopted``) rather than refusing the
    # batch. Events with any other id are a foreign writer's and are still refused.
    adopt_own_events: bool = False


class StoredEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: str
    schema_version: int
    payload: dict[str, Any]
    # The update (or other cause) the event was recorded for: lets a writer that adopts an
    # earlier attempt's events see whether its command is among them.
    causation_id: str | None = None

    @classmethod
    def of(cls, record: RecordedEvent, registry: EventRegistry) -> StoredEvent:
        """The stored event upcast to its type's current schema: workflows never see an
        older shape, whatever version the store holds."""
        event = registry.decode(record)
        return cls(type=record.type, schema_version=registry.latest_version(record.type),
                   payload=event.model_dump(mode="json"),
                   causation_id=record.metadata.causation_id)


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
    # Only with ``adopt_own_events``: the stream holds other events after
    # ``expected_version`` than the ones proposed (more of them, or of other types), left by
    # an earlier attempt of this writer. ``stored`` is all of them; the proposed events were
    # not written and their notifications were not sent.
    adopted: bool = False


class ReadEventsInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    stream_id: str
    after_version: int


class StoreActivities:
    """``registry`` upcasts what is read back (see :meth:`StoredEvent.of`)."""

    def __init__(self, store: EventStore, registry: EventRegistry) -> None:
        self._store = store
        self._registry = registry

    @activity.defn(name="append_events")
    async def append_events(self, inp: AppendEventsInput) -> AppendEventsResult:
        try:
            result = await self._store.append(inp.stream_id, inp.expected_version, inp.events)
        except (EventIdConflict, WrongExpectedVersion) as exc:
            held = await self._own_events_after(inp) if inp.adopt_own_events else []
            if not held:
                raise _permanent(exc) from exc
            activity.logger.warning(
                "%s already holds %s event(s) of an earlier attempt after version %s; "
                "returning them instead of appending", inp.stream_id, len(held),
                inp.expected_version,
            )
            return _result(inp, held, self._registry)
        except _PERMANENT as exc:
            raise _permanent(exc) from exc
        activity.logger.debug(
            "appended %s event(s) to %s", len(inp.events), inp.stream_id
        )
        if not result.idempotent_replay:
            return AppendEventsResult(
                last_version=result.last_version,
                idempotent_replay=False,
                stored=[
                    StoredEvent(type=ev.type, schema_version=ev.schema_version,
                                payload=ev.payload, causation_id=ev.metadata.causation_id)
                    for ev in inp.events
                ],
            )
        # A retry of an append that committed: the first write stands. An adopting writer also
        # learns of anything its earlier attempt wrote beyond this batch.
        records = await self._store.read_stream(
            inp.stream_id, result.first_version,
            None if inp.adopt_own_events else result.last_version,
        )
        return _result(inp, records, self._registry)

    async def _own_events_after(self, inp: AppendEventsInput) -> list[RecordedEvent]:
        """The stream after ``expected_version`` if every event there is this writer's."""
        records = await self._store.read_stream(inp.stream_id, inp.expected_version + 1)
        if all(r.event_id == event_id_for(inp.stream_id, r.version) for r in records):
            return records
        return []

    @activity.defn(name="read_events")
    async def read_events(self, inp: ReadEventsInput) -> list[StoredEvent]:
        """Events after ``after_version``: what another activity appended for the workflow."""
        records = await self._store.read_stream(inp.stream_id, inp.after_version + 1)
        return [StoredEvent.of(r, self._registry) for r in records]


def _permanent(exc: Exception) -> ApplicationError:
    return ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True)


def _result(inp: AppendEventsInput, records: list[RecordedEvent],
            registry: EventRegistry) -> AppendEventsResult:
    """What the stream holds from ``expected_version + 1``, as an append result."""
    stored = [StoredEvent.of(r, registry) for r in records]
    differs = len(stored) != len(inp.events) or any(
        held.type != proposed.type for held, proposed in zip(stored, inp.events, strict=False)
    )
    return AppendEventsResult(
        last_version=inp.expected_version + len(stored),
        idempotent_replay=True,
        stored=stored,
        adopted=inp.adopt_own_events and differs,
    )
