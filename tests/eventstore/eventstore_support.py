"""Shared helpers of the event store tests: a small domain of event models and builders
(a plain module rather than conftest, so tests can import it)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from eventstore import EventMetadata, EventRegistry, NewEvent

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


class Attendee(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    employee_id: str = Field(pattern=r"^E\d{4}$")
    role: str


class MeetingHeld(BaseModel):
    """Version 2: v1 called the duration ``minutes`` and had no attendees."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    event_type: ClassVar[str] = "MeetingHeld"
    schema_version: ClassVar[int] = 2

    pairing_id: str
    meeting_number: int = Field(ge=1)
    held_at: datetime
    duration_minutes: int = Field(ge=1, le=480)
    topics: list[str]
    attendees: list[Attendee] = []
    notes: str = ""


class GoalSet(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    event_type: ClassVar[str] = "GoalSet"
    schema_version: ClassVar[int] = 1

    pairing_id: str
    goal_id: str
    title: str = Field(min_length=3)


def upcast_meeting_v1(payload: dict[str, Any]) -> dict[str, Any]:
    payload["duration_minutes"] = payload.pop("minutes")
    payload.setdefault("attendees", [])
    return payload


def domain_registry() -> EventRegistry:
    registry = EventRegistry()
    registry.register(MeetingHeld)
    registry.register(GoalSet)
    registry.register_upcaster("MeetingHeld", 1, upcast_meeting_v1)
    return registry


def metadata(occurred_at: datetime = T0, actor: str = "system", **extra: str) -> EventMetadata:
    return EventMetadata(actor=actor, occurred_at=occurred_at, **extra)


def event(
    event_type: str = "Noted",
    payload: dict[str, Any] | None = None,
    *,
    event_id: uuid.UUID | None = None,
    occurred_at: datetime = T0,
    schema_version: int = 1,
    actor: str = "system",
) -> NewEvent:
    return NewEvent(
        event_id=event_id or uuid.uuid4(),
        type=event_type,
        schema_version=schema_version,
        payload=payload if payload is not None else {"n": 1},
        metadata=metadata(occurred_at, actor, workflow_id="pairing-P1"),
    )


def meeting(number: int, *, pairing_id: str = "P1", event_id: uuid.UUID | None = None,
            **overrides: Any) -> NewEvent:
    held_at = T0 + timedelta(weeks=number)
    payload: dict[str, Any] = {
        "pairing_id": pairing_id,
        "meeting_number": number,
        "held_at": held_at.isoformat(),
        "duration_minutes": 60,
        "topics": ["career", "feedback"],
        "attendees": [{"employee_id": "E0012", "role": "mentor"},
                      {"employee_id": "E0345", "role": "mentee"}],
    }
    payload.update(overrides)
    return NewEvent(
        event_id=event_id or uuid.uuid4(),
        type="MeetingHeld",
        schema_version=2,
        payload=payload,
        metadata=metadata(held_at, "employee:E0012", workflow_id=f"pairing-{pairing_id}"),
    )


def batch(n: int, **kwargs: Any) -> list[NewEvent]:
    return [event(payload={"n": i}, **kwargs) for i in range(n)]


async def row_counts(pool: asyncpg.Pool) -> tuple[int, int]:
    """(events, streams) row counts."""
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM events) AS e, (SELECT count(*) FROM streams) AS s"
    )
    assert row is not None
    return row["e"], row["s"]
