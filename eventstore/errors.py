"""The store's errors, split so callers can tell a race they may retry after reloading
(:class:`WrongExpectedVersion`) from input that will never be accepted (the ``ValueError``
family) and from a store whose contents disagree with themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID


class EventStoreError(Exception):
    """Base class of every error raised by :mod:`eventstore`."""


class WrongExpectedVersion(EventStoreError):
    """The stream moved on (or does not exist) since the caller read it; nothing was written.

    The caller should reload the stream, re-decide and append again at ``actual_version``.
    """

    def __init__(self, stream_id: str, expected_version: int, actual_version: int) -> None:
        self.stream_id = stream_id
        self.expected_version = expected_version
        self.actual_version = actual_version
        super().__init__(
            f"stream {stream_id!r} is at version {actual_version}, "
            f"not at the expected version {expected_version}"
        )

    def __reduce__(self) -> tuple[type[WrongExpectedVersion], tuple[str, int, int]]:
        # Keeps the error picklable (process pools, some test runners) despite the custom init.
        return (type(self), (self.stream_id, self.expected_version, self.actual_version))


class EventIdConflict(EventStoreError):
    """An event id in the batch is already stored somewhere that makes this append neither new
    nor a retry: in another stream, at another version, or only part of the batch is stored."""

    def __init__(self, message: str, *, event_id: UUID | None = None) -> None:
        self.event_id = event_id
        super().__init__(message)

    def __reduce__(self) -> tuple[type[EventIdConflict], tuple[str], dict[str, UUID | None]]:
        return (type(self), (str(self),), {"event_id": self.event_id})


class InvalidAppend(EventStoreError, ValueError):
    """The append request itself is malformed (stream id, expected version, batch shape).
    Raised before the database is touched."""


class PayloadTooLarge(InvalidAppend):
    """One event's canonical payload exceeds the store's per-event limit."""

    def __init__(self, event_index: int, event_type: str, size: int, limit: int) -> None:
        self.event_index = event_index
        self.event_type = event_type
        self.size = size
        self.limit = limit
        super().__init__(
            f"event {event_index} ({event_type}): payload is {size} bytes as canonical JSON, "
            f"over the limit of {limit} bytes"
        )

    def __reduce__(self) -> tuple[type[PayloadTooLarge], tuple[int, str, int, int]]:
        return (type(self), (self.event_index, self.event_type, self.size, self.limit))


class InvalidEvent(EventStoreError, ValueError):
    """An event does not match the registered schema of its type."""


class UnknownEventType(InvalidEvent):
    """The event's type (or its schema version) is not in the registry."""

    def __init__(self, event_type: str, detail: str | None = None) -> None:
        self.event_type = event_type
        self.detail = detail
        super().__init__(detail or f"unknown event type {event_type!r}")

    def __reduce__(self) -> tuple[type[UnknownEventType], tuple[str, str | None]]:
        return (type(self), (self.event_type, self.detail))


class InvalidEventPayload(InvalidEvent):
    """The payload failed validation; ``errors`` holds ``(field path, message)`` pairs."""

    def __init__(self, event_type: str, errors: Sequence[tuple[str, str]]) -> None:
        self.event_type = event_type
        self.errors = list(errors)
        listed = "; ".join(f"{path or '<payload>'}: {message}" for path, message in self.errors)
        super().__init__(f"invalid {event_type} payload: {listed}")

    def __reduce__(
        self,
    ) -> tuple[type[InvalidEventPayload], tuple[str, list[tuple[str, str]]]]:
        return (type(self), (self.event_type, self.errors))


class UpcastError(EventStoreError):
    """A stored event cannot be brought to the current schema version (missing or failing
    upcaster): a deployment problem, not bad data."""


class MigrationError(EventStoreError):
    """The database's applied migrations disagree with the migration files."""
