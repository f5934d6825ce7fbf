"""Wrap domain events in the store's envelope: id, type, version, payload and metadata.

Pure and deterministic (event ids come from stream and version), so workflows call it
through the sandbox and activities that write on a workflow's behalf produce the very same
envelopes on every retry.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from domain.events import DomainEvent
from domain.ids import event_id_for
from eventstore import EventMetadata, NewEvent


def envelopes(
    stream_id: str,
    base_version: int,
    events: Sequence[DomainEvent],
    actors: Sequence[str],
    *,
    occurred_at: datetime,
    workflow_id: str | None = None,
    run_id: str | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> list[NewEvent]:
    """Events ``base_version + 1 ...`` of ``stream_id``; ``actors[i]`` caused ``events[i]``."""
    return [
        NewEvent(
            event_id=event_id_for(stream_id, base_version + offset),
            type=event.event_type,
            schema_version=event.schema_version,
            payload=event.model_dump(mode="json"),
            metadata=EventMetadata(
                actor=actor,
                occurred_at=occurred_at,
                workflow_id=workflow_id,
                run_id=run_id,
                correlation_id=correlation_id,
                causation_id=causation_id,
            ),
        )
        for offset, (event, actor) in enumerate(zip(events, actors, strict=True), start=1)
    ]
