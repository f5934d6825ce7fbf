"""Bad input is refused with a clear error before the database is touched, and the registry
validates, normalises and upcasts payloads."""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import ClassVar

import asyncpg
import pytest
import pytest_asyncio
from pydantic import BaseModel, ConfigDict

from eventstore import (
    EventRegistry,
    EventStore,
    InvalidAppend,
    InvalidEventPayload,
    PayloadTooLarge,
    UnknownEventType,
    WrongExpectedVersion,
)
from eventstore.errors import UpcastError

from .eventstore_support import (
    T0,
    GoalSet,
    MeetingHeld,
    batch,
    event,
    meeting,
    metadata,
    row_counts,
)


@pytest_asyncio.fixture
async def offline_store(db_dsn: str, registry: EventRegistry) -> AsyncIterator[EventStore]:
    """A store whose pool is closed: any database access fails, so every refusal raised
    through it provably happened before touching the database."""
    pool = await asyncpg.create_pool(db_dsn, min_size=0, max_size=1)
    assert pool is not None
    await pool.close()
    yield EventStore(pool, registry)


async def test_unknown_event_type(typed_store: EventStore, offline_store: EventStore) -> None:
    for store in (typed_store, offline_store):
        with pytest.raises(UnknownEventType, match=r"'MentorTeleported'.*GoalSet, MeetingHeld"):
            await store.append("pairing-1", 0, [meeting(1), event("MentorTeleported")])
    assert await row_counts(typed_store.pool) == (0, 0)


async def test_invalid_payload_names_every_failing_field(
    typed_store: EventStore, offline_store: EventStore
) -> None:
    bad = meeting(
        1,
        duration_minutes=0,
        attendees=[{"employee_id": "E0012", "role": "mentor"},
                   {"employee_id": "nobody", "role": "mentee"}],
        mood="great",
    )
    for store in (typed_store, offline_store):
        with pytest.raises(InvalidEventPayload) as caught:
            await store.append("pairing-1", 0, [bad])
        message = str(caught.value)
        assert message.startswith("invalid MeetingHeld payload")
        paths = [path for path, _ in caught.value.errors]
        assert paths == ["duration_minutes", "attendees[1].employee_id", "mood"]
        assert "mood: Extra inputs are not permitted" in message
    await typed_store.append("pairing-1", 0, [meeting(1)])
    with pytest.raises(InvalidEventPayload, match="title"):
        await typed_store.append("pairing-1", 1, [
            meeting(2), event("GoalSet", {"pairing_id": "P1", "goal_id": "g1", "title": "x"}),
        ])
    assert await row_counts(typed_store.pool) == (1, 1)


async def test_old_schema_version_cannot_be_written(offline_store: EventStore) -> None:
    old = event("MeetingHeld", {"pairing_id": "P1"}, schema_version=1)
    with pytest.raises(InvalidEventPayload, match="written at schema version 2, not 1"):
        await offline_store.append("pairing-1", 0, [old])


@pytest.mark.parametrize(
    ("stream_id", "expected_version", "events", "message"),
    [
        ("pairing-1", -1, batch(1), "expected_version must be >= 0"),
        ("pairing-1", True, batch(1), "expected_version must be an int"),
        ("pairing-1", 0, [], "the events list is empty"),
        ("", 0, batch(1), "stream id must not be empty"),
        ("   ", 0, batch(1), "stream id must not be empty"),
        ("p" * 201, 0, batch(1), "201 characters long; at most 200"),
        ("pairing\n1", 0, batch(1), "control characters"),
    ],
)
async def test_malformed_appends(
    store: EventStore, offline_store: EventStore, stream_id: str, expected_version: int,
    events: list[object], message: str,
) -> None:
    for target in (store, offline_store):
        with pytest.raises(InvalidAppend, match=message):
            await target.append(stream_id, expected_version, events)
    assert await row_counts(store.pool) == (0, 0)


async def test_duplicate_ids_within_a_batch(store: EventStore) -> None:
    events = batch(3)
    events[2] = events[0]
    with pytest.raises(InvalidAppend, match=rf"{events[0].event_id} appears twice.*0 and 2"):
        await store.append("pairing-1", 0, events)
    assert await row_counts(store.pool) == (0, 0)


async def test_oversize_payload_names_event_and_size(
    typed_store: EventStore, store: EventStore
) -> None:
    huge_notes = "x" * (64 * 1024)
    events = [meeting(1), meeting(2, notes=huge_notes)]
    with pytest.raises(PayloadTooLarge) as caught:
        await typed_store.append("pairing-1", 0, events)
    assert caught.value.event_index == 1
    assert caught.value.size > 64 * 1024
    assert f"event 1 (MeetingHeld): payload is {caught.value.size} bytes" in str(caught.value)

    small = EventStore(store.pool, max_payload_bytes=100)
    with pytest.raises(PayloadTooLarge, match="over the limit of 100 bytes"):
        await small.append("pairing-2", 0, [event(payload={"text": "é" * 60})])  # 120 bytes
    assert await row_counts(store.pool) == (0, 0)


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({"score": math.nan}, "score"),
        ({"a": {"b": [1, math.inf]}}, r"a\.b\[1\]"),
        ({"text": "nul\x00byte"}, "text: U\\+0000"),
        ({"when": T0}, "when: datetime is not a JSON value"),
        ({"bad": "\ud800"}, "not valid Unicode"),
        ({"keys": {1: "x"}}, "keys: object key 1 is not a string"),
    ],
)
async def test_payload_without_json_form(
    store: EventStore, payload: dict[str, object], where: str
) -> None:
    with pytest.raises(InvalidAppend, match=where):
        await store.append("pairing-1", 0, [event(payload=payload)])
    assert await row_counts(store.pool) == (0, 0)


async def test_untyped_store_still_refuses_a_wrong_version_after_valid_input(
    store: EventStore,
) -> None:
    await store.append("pairing-1", 0, batch(1))
    with pytest.raises(WrongExpectedVersion):
        await store.append("pairing-1", 0, batch(1))


async def test_registry_normalises_payloads(typed_store: EventStore) -> None:
    new = meeting(1)
    await typed_store.append("pairing-1", 0, [new])
    [recorded] = await typed_store.read_stream("pairing-1")
    # Defaults are filled in and the datetime written in pydantic's JSON form.
    assert recorded.payload["notes"] == ""
    assert recorded.payload["held_at"] == "2025-03-10T09:00:00Z"
    assert typed_store.registry is not None
    decoded = typed_store.registry.decode(recorded)
    assert isinstance(decoded, MeetingHeld)
    assert decoded.held_at == datetime.fromisoformat(new.payload["held_at"])


async def test_upcasting_an_old_schema_version(store: EventStore, registry: EventRegistry) -> None:
    # Written by an older deployment, before MeetingHeld v2 existed (no registry then).
    v1 = event(
        "MeetingHeld",
        {"pairing_id": "P1", "meeting_number": 1, "held_at": "2025-03-10T09:00:00Z",
         "minutes": 45, "topics": ["career"]},
        schema_version=1,
    )
    await store.append("pairing-1", 0, [v1])
    [recorded] = await store.read_stream("pairing-1")
    assert recorded.schema_version == 1

    decoded = registry.decode(recorded)
    assert isinstance(decoded, MeetingHeld)
    assert decoded.duration_minutes == 45
    assert decoded.attendees == []
    assert "minutes" in recorded.payload  # the stored event itself is untouched

    no_upcaster = EventRegistry()
    no_upcaster.register(MeetingHeld)
    with pytest.raises(UpcastError, match="no upcaster registered from MeetingHeld v1 to v2"):
        no_upcaster.decode(recorded)

    too_new = recorded.model_copy(update={"schema_version": 3})
    with pytest.raises(UnknownEventType, match="newer than this code knows"):
        registry.decode(too_new)


def test_registry_refuses_models_that_accept_unknown_fields() -> None:
    class Lenient(BaseModel):
        event_type: ClassVar[str] = "Lenient"

    class NoName(BaseModel):
        model_config = ConfigDict(extra="forbid")

    registry = EventRegistry()
    with pytest.raises(TypeError, match="extra='forbid'"):
        registry.register(Lenient)
    with pytest.raises(TypeError, match="no event_type"):
        registry.register(NoName)
    registry.register(NoName, name="Named", version=3)
    assert registry.names() == ["Named"]
    assert registry.latest_version("Named") == 3
    registry.register(GoalSet)
    with pytest.raises(ValueError, match="already registered as GoalSet"):
        registry.register(NoName, name="GoalSet", version=1)
    with pytest.raises(UnknownEventType, match="unknown event type 'Nope'"):
        registry.latest_version("Nope")


def test_to_new_event_uses_registered_name_and_version(registry: EventRegistry) -> None:
    goal = GoalSet(pairing_id="P1", goal_id="g1", title="Lead a design review")
    new = registry.to_new_event(goal, event_id=uuid.uuid4(), metadata=metadata())
    assert (new.type, new.schema_version) == ("GoalSet", 1)
    assert registry.validate(new).payload == goal.model_dump(mode="json")
