"""The projector's view of the event log: the store's global order, read lean.

:meth:`eventstore.EventStore.read_all_batch` builds a full :class:`~eventstore.RecordedEvent`
per row (metadata validated, payload parsed to a dict) and :meth:`EventRegistry.decode` then
copies and validates the dict again. A projector needs neither the metadata nor the dict: it
reads the same rows in the same order, below the same horizon (``docs/adr/0001-global-order.md``),
but only the columns it uses, and validates each payload's JSON text straight into the domain
model. ``tests/projections`` hold the two readers equal.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg
from pydantic import BaseModel

from eventstore import EventMetadata, EventRegistry, Position, RecordedEvent

# Identical ordering and horizon to eventstore.store._READ_ALL: (tx_id, global_position), and
# only transactions older than every transaction still running, so nothing can later commit
# behind the checkpoint.
_READ_BATCH = """
SELECT tx_id, global_position, stream_id, version, type, schema_version,
       payload::text AS payload, occurred_at
FROM events
WHERE (tx_id, global_position) > ($1::xid8, $2::bigint)
  AND tx_id < (SELECT pg_snapshot_xmin(pg_current_snapshot()))
ORDER BY tx_id, global_position
LIMIT $3
"""


#: ``SourceEvent.kind``: which read model a stream feeds (see ``domain/ids.py``).
OTHER, PAIRING, COHORT = 0, 1, 2
PAIRING_PREFIX = "pairing-"
COHORT_PREFIX = "cohort-"


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ is several times slower
class SourceEvent:
    """One event as a projector needs it: which stream and version, what it says, when it
    happened. ``key`` is the pairing or cohort id (the stream id without its prefix)."""

    stream_id: str
    version: int
    type: str
    occurred_at: datetime
    event: BaseModel
    kind: int
    key: str


def stream_kind(stream_id: str) -> tuple[int, str]:
    """(kind, key) of a stream id."""
    if stream_id.startswith(PAIRING_PREFIX):
        return PAIRING, stream_id[len(PAIRING_PREFIX):]
    if stream_id.startswith(COHORT_PREFIX):
        return COHORT, stream_id[len(COHORT_PREFIX):]
    return OTHER, stream_id


class EventDecoder:
    """Payload JSON text -> the domain model of its type.

    Events at their type's latest schema version are validated directly from the JSON text
    (the common case, and several times faster); older versions go through
    :meth:`EventRegistry.decode`, which upcasts them. Types the registry does not know decode
    to ``None``: they belong to no read model.

    Decoded events are frozen models, so equal payloads can share one instance: the pairings
    of a cohort share a calendar, and their ``MeetingScheduled``, ``ReminderSent`` and window
    events are byte-identical. A bounded cache of recent payload texts skips revalidating
    them.
    """

    CACHE_SIZE = 5_000  # payload texts kept per event type

    def __init__(self, registry: EventRegistry, models: Iterable[type[BaseModel]]) -> None:
        self._registry = registry
        self._known = set(registry.names())
        # type name -> (its latest schema version, model, recently decoded payload texts)
        self._direct: dict[str, tuple[int, type[BaseModel], dict[str, BaseModel]]] = {}
        for model in models:
            name = getattr(model, "event_type", None)
            version = getattr(model, "schema_version", 1)
            # Only when the registry agrees this class *is* the latest version of the type.
            if isinstance(name, str) and name in self._known \
                    and registry.latest_version(name) == version:
                self._direct[name] = (version, model, {})

    def decode(self, event_type: str, schema_version: int, payload_json: str) -> BaseModel | None:
        """The payload as its (latest) model, or ``None`` for an unregistered type."""
        direct = self._direct.get(event_type)
        if direct is not None and direct[0] == schema_version:
            cache = direct[2]
            decoded = cache.get(payload_json)
            if decoded is None:
                decoded = direct[1].model_validate_json(payload_json)
                if len(cache) >= self.CACHE_SIZE:
                    cache.clear()  # cheap, and recent texts come back within a batch
                cache[payload_json] = decoded
            return decoded
        if event_type not in self._known:
            return None
        # An older schema version: let the registry upcast it (rare, so the slow path).
        record = RecordedEvent.model_construct(
            global_position=0, tx_id=0, stream_id="", version=0,
            event_id=UUID(int=0), type=event_type, schema_version=schema_version,
            payload=json.loads(payload_json),
            metadata=EventMetadata.model_construct(actor="-", occurred_at=datetime.min),
            recorded_at=datetime.min, prev_hash="", hash="",
        )
        return self._registry.decode(record)


@dataclass(frozen=True, slots=True)
class SourceBatch:
    """What one read returned: the decoded events (unregistered types left out), how many rows
    were read, and the position of the last row read (the next checkpoint)."""

    events: list[SourceEvent]
    rows_read: int
    last_position: Position


async def read_batch(
    conn: asyncpg.Connection, after: Position, limit: int, decoder: EventDecoder
) -> SourceBatch:
    """Up to ``limit`` rows after ``after`` in global order, decoded."""
    rows = await conn.fetch(_READ_BATCH, after[0], after[1], limit)
    if not rows:
        return SourceBatch([], 0, after)
    decode = decoder.decode
    out: list[SourceEvent] = []
    append = out.append
    kinds: dict[str, tuple[int, str]] = {}  # a batch holds many events of each stream
    for _, _, stream_id, version, event_type, schema_version, payload, occurred_at in rows:
        event = decode(event_type, schema_version, payload)
        if event is not None:
            kind = kinds.get(stream_id)
            if kind is None:
                kind = kinds[stream_id] = stream_kind(stream_id)
            append(SourceEvent(stream_id, version, event_type, occurred_at, event, kind[0],
                               kind[1]))
    last = rows[-1]
    return SourceBatch(out, len(rows), Position(last[0], last[1]))
