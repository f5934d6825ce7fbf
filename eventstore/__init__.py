"""Sebaya's event store: append-only, hash-chained event streams in PostgreSQL with a global
order that catch-up readers can follow safely. See ``docs/eventstore.md``."""

from eventstore.errors import (
    EventIdConflict,
    EventStoreError,
    InvalidAppend,
    InvalidEvent,
    InvalidEventPayload,
    MigrationError,
    PayloadTooLarge,
    UnknownEventType,
    UpcastError,
    WrongExpectedVersion,
)
from eventstore.migrate import migrate
from eventstore.models import (
    AppendResult,
    ChainProblem,
    EventMetadata,
    NewEvent,
    Position,
    RecordedEvent,
    VerifyReport,
)
from eventstore.registry import EventRegistry
from eventstore.store import EventStore

__all__ = [
    "AppendResult",
    "ChainProblem",
    "EventIdConflict",
    "EventMetadata",
    "EventRegistry",
    "EventStore",
    "EventStoreError",
    "InvalidAppend",
    "InvalidEvent",
    "InvalidEventPayload",
    "MigrationError",
    "NewEvent",
    "PayloadTooLarge",
    "Position",
    "RecordedEvent",
    "UnknownEventType",
    "UpcastError",
    "VerifyReport",
    "WrongExpectedVersion",
    "migrate",
]
