"""The Postgres event store: optimistic appends to hash-chained streams, and a global order
that catch-up readers can follow without ever missing a late commit.

The two ideas that shape this module:

* Per stream, an append queues on the stream, locks its row in ``streams`` and extends its hash
  chain; that serialises writers of one stream and nothing else (``docs/eventstore.md``).
* Globally, events are ordered by ``(tx_id, global_position)`` and readers only return rows of
  transactions older than every transaction still running, so nothing can commit later *behind*
  a reader's checkpoint (``docs/adr/0001-global-order.md``).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from eventstore.chain import StoredEvent, StreamHead, check_stream
from eventstore.errors import (
    EventIdConflict,
    EventStoreError,
    InvalidAppend,
    PayloadTooLarge,
    WrongExpectedVersion,
)
from eventstore.hashing import (
    GENESIS_HASH,
    CanonicalFormError,
    EnvelopeParts,
    canonical_json,
    canonical_json_of_document,
    link_batch,
)
from eventstore.models import (
    MAX_STREAM_ID_LENGTH,
    AppendResult,
    ChainProblem,
    EventMetadata,
    NewEvent,
    Position,
    RecordedEvent,
    VerifyReport,
)
from eventstore.registry import EventRegistry
from observability.metrics import events_appended

DEFAULT_MAX_PAYLOAD_BYTES = 64 * 1024
#: Upper bound on one append; a batch is one transaction and one statement.
MAX_EVENTS_PER_APPEND = 1000

_EVENT_COLUMNS = (
    "global_position, tx_id, stream_id, version, event_id, type, schema_version, "
    # Cast to text: the pool may carry a json codec of its own; we parse ourselves.
    "payload::text AS payload, metadata::text AS metadata, recorded_at, prev_hash, hash"
)

# One round trip: queue on the stream, check (or create) its head, link the chain unless the
# client did, insert, move the head. See migrations/0032_append_linked_by_client.sql.
_APPEND = (
    "SELECT tx_id, global_position, version, hash "
    "FROM eventstore_append_v2($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
)

#: How many stream heads a store remembers for linking appends itself (about 100 bytes each).
_KNOWN_HEADS_LIMIT = 10_000

_FIND_IDS = """
SELECT event_id, stream_id, version, tx_id, global_position
FROM events WHERE event_id = ANY($1::uuid[])
"""

# The horizon: every transaction with an xid below the snapshot's xmin has finished, so no row
# can still appear below it. Taken once per statement (scalar subquery) so it is also a usable
# index bound.
_READ_ALL = f"""
SELECT {_EVENT_COLUMNS}
FROM events
WHERE (tx_id, global_position) > ($1::xid8, $2::bigint)
  AND tx_id < (SELECT pg_snapshot_xmin(pg_current_snapshot()))
ORDER BY tx_id, global_position
LIMIT $3
"""

_VERIFY_COLUMNS = (
    "stream_id, version, event_id, type, schema_version, payload::text AS payload, "
    "metadata::text AS metadata, occurred_at, prev_hash, hash, tx_id, global_position"
)


@dataclass(frozen=True, slots=True)
class _Batch:
    """An append, validated and serialised: everything but the hash links, which need the
    stream's head (known to the client, or else read by the database under the stream queue)."""

    stream_id: str
    expected_version: int
    event_ids: list[UUID]
    types: list[str]
    schema_versions: list[int]
    payloads: list[str]
    metadata: list[str]
    occurred_at: list[datetime]
    parts: list[EnvelopeParts]

    @property
    def versions(self) -> list[int]:
        return [self.expected_version + i for i in range(1, len(self.event_ids) + 1)]

    def arguments(self, known_head: str | None) -> tuple[Any, ...]:
        """The parameters of eventstore_append_v2(); with ``known_head`` (the hash of the
        event at the expected version, or the genesis hash) the batch comes linked."""
        hashes = None if known_head is None else link_batch(self.parts, known_head)
        return (
            self.stream_id, self.expected_version, self.event_ids, self.types,
            self.schema_versions, self.payloads, self.metadata, self.occurred_at,
            [part.tail for part in self.parts], known_head, hashes,
        )


class EventStore:
    """Append-only, hash-chained event streams in PostgreSQL.

    ``registry`` (optional) validates every appended event against the domain's models;
    without it a payload must merely be a JSON object. Every check on the input happens before
    the database is touched, so a refused append writes nothing.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        registry: EventRegistry | None = None,
        *,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        self._pool = pool
        self._registry = registry
        self._max_payload_bytes = max_payload_bytes
        self._owns_pool = False
        # stream id -> (version, hash) of an event this store appended or read. A hint only:
        # a committed event's hash never changes, and the database uses a hint only if it is
        # the stream's head at the expected version (else it links the batch itself). Wrong
        # only for an append inside a caller's transaction that then rolled back: harmless.
        self._known_heads: dict[str, tuple[int, str]] = {}

    @classmethod
    async def connect(
        cls,
        dsn: str,
        registry: EventRegistry | None = None,
        *,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        **pool_kwargs: Any,
    ) -> EventStore:
        """A store with a pool of its own (closed by :meth:`close`)."""
        pool = await asyncpg.create_pool(dsn, **pool_kwargs)
        store = cls(pool, registry, max_payload_bytes=max_payload_bytes)
        store._owns_pool = True
        return store

    async def close(self) -> None:
        """Close the pool if this store created it (a pool passed in belongs to the caller)."""
        if self._owns_pool:
            await self._pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    @property
    def registry(self) -> EventRegistry | None:
        return self._registry

    # --- writing -------------------------------------------------------------------------

    async def append(
        self,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        *,
        connection: asyncpg.Connection | None = None,
    ) -> AppendResult:
        """Append ``events`` to ``stream_id`` atomically, if the stream is at
        ``expected_version`` (0: the stream must not exist yet).

        A retry of an append that already succeeded (the same event ids at the same versions)
        returns the original result with ``idempotent_replay=True`` and writes nothing. The
        content is not compared: the first write stands, read it back if it matters.

        ``connection``: append inside the caller's transaction (e.g. together with an outbox
        row). The append must then be that transaction's first write, because a transaction's
        id, which orders it globally, is fixed by its first write; and the transaction must be
        READ COMMITTED.

        Raises :class:`WrongExpectedVersion`, :class:`EventIdConflict`, and before touching
        the database :class:`InvalidAppend`, :class:`PayloadTooLarge`,
        :class:`UnknownEventType`, :class:`InvalidEventPayload`.
        """
        batch = self._prepare(stream_id, expected_version, events)
        if connection is not None:
            if connection.is_in_transaction():
                assigned = await connection.fetchval("SELECT pg_current_xact_id_if_assigned()")
                if assigned is not None:
                    raise InvalidAppend(
                        "append must be the first write of the caller's transaction: its "
                        "transaction id (which orders the events globally) was fixed by an "
                        "earlier write, so these events could sort before older events of "
                        "the same stream"
                    )
                return await self._append(connection, batch, nested=True)
            return await self._append(connection, batch, nested=False)
        async with self._pool.acquire() as conn:
            return await self._append(conn, batch, nested=False)

    def _prepare(
        self, stream_id: str, expected_version: int, events: Sequence[NewEvent]
    ) -> _Batch:
        """Every check that needs no database, and the serialisation for insert and hash."""
        _check_stream_id(stream_id)
        if isinstance(expected_version, bool) or not isinstance(expected_version, int):
            raise InvalidAppend(f"expected_version must be an int, got {expected_version!r}")
        if expected_version < 0:
            raise InvalidAppend(
                f"expected_version must be >= 0 (0: the stream must not exist yet), "
                f"got {expected_version}"
            )
        if isinstance(events, NewEvent | str | bytes) or not isinstance(events, Sequence):
            raise InvalidAppend("events must be a sequence of NewEvent")
        if not events:
            raise InvalidAppend(f"nothing to append to {stream_id!r}: the events list is empty")
        if len(events) > MAX_EVENTS_PER_APPEND:
            raise InvalidAppend(
                f"{len(events)} events in one append; at most {MAX_EVENTS_PER_APPEND}"
            )
        first_index: dict[UUID, int] = {}
        for index, event in enumerate(events):
            if not isinstance(event, NewEvent):
                raise InvalidAppend(f"event {index} is a {type(event).__name__}, not a NewEvent")
            earlier = first_index.setdefault(event.event_id, index)
            if earlier != index:
                raise InvalidAppend(
                    f"event id {event.event_id} appears twice in the batch "
                    f"(events {earlier} and {index})"
                )

        ids: list[UUID] = []
        types: list[str] = []
        schema_versions: list[int] = []
        payloads: list[str] = []
        metadata: list[str] = []
        occurred_at: list[datetime] = []
        parts: list[EnvelopeParts] = []
        # A payload normalised by the registry is pydantic's JSON form: string keys only, which
        # is what the fast canonical encoder needs. Untyped payloads take the exact encoder.
        encode = canonical_json if self._registry is None else canonical_json_of_document
        for index, event in enumerate(events):
            payload = (event.payload if self._registry is None
                       else self._registry.normalised_payload(event))
            if "\x00" in event.type:
                raise InvalidAppend(f"event {index}: type contains U+0000")
            try:
                payload_json = encode(payload)
            except CanonicalFormError as exc:
                raise InvalidAppend(
                    f"event {index} ({event.type}): payload has no JSON form at "
                    f"{exc.path or '<root>'}: {exc.reason}"
                ) from None
            # len() is the UTF-8 size for ASCII text (isascii() is O(1) on str).
            size = (len(payload_json) if payload_json.isascii()
                    else len(payload_json.encode("utf-8")))
            if size > self._max_payload_bytes:
                raise PayloadTooLarge(index, event.type, size, self._max_payload_bytes)
            try:
                metadata_json = event.metadata.canonical_json()
            except CanonicalFormError as exc:
                raise InvalidAppend(
                    f"event {index} ({event.type}): metadata {exc.path}: {exc.reason}"
                ) from None
            version = expected_version + index + 1
            ids.append(event.event_id)
            types.append(event.type)
            schema_versions.append(event.schema_version)
            payloads.append(payload_json)
            metadata.append(metadata_json)
            occurred_at.append(event.metadata.occurred_at)
            parts.append(EnvelopeParts.build(
                event_id=event.event_id,
                stream_id=stream_id,
                version=version,
                event_type=event.type,
                schema_version=event.schema_version,
                payload_json=payload_json,
                metadata_json=metadata_json,
            ))
        return _Batch(stream_id, expected_version, ids, types, schema_versions, payloads,
                      metadata, occurred_at, parts)

    def _known_head(self, stream_id: str, version: int) -> str | None:
        """The hash of the stream's event at ``version``, if this store knows it."""
        if version == 0:
            return GENESIS_HASH
        known = self._known_heads.get(stream_id)
        return known[1] if known is not None and known[0] == version else None

    def _remember_head(self, stream_id: str, version: int, event_hash: str) -> None:
        if len(self._known_heads) >= _KNOWN_HEADS_LIMIT and stream_id not in self._known_heads:
            self._known_heads.clear()  # crude, but a miss only costs linking in the database
        self._known_heads[stream_id] = (version, event_hash)

    async def _append(
        self, conn: asyncpg.Connection, batch: _Batch, *, nested: bool
    ) -> AppendResult:
        arguments = batch.arguments(self._known_head(batch.stream_id, batch.expected_version))
        for attempt in range(2):
            try:
                if nested:
                    # A savepoint, so a refused insert does not abort the caller's transaction.
                    async with conn.transaction():
                        rows = await conn.fetch(_APPEND, *arguments)
                else:
                    # A single statement is its own transaction: no BEGIN/COMMIT round trips.
                    rows = await conn.fetch(_APPEND, *arguments)
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name == "events_event_id_key":
                    return await self._resolve(conn, batch)
                raise EventStoreError(
                    f"stream {batch.stream_id!r}: the streams table is behind its events "
                    f"({exc.constraint_name}); something wrote events without the stream "
                    "lock. Run verify()."
                ) from exc
            if rows:
                # Counted once per fresh append (a retry resolved below is not); inside a
                # caller's transaction that later rolls back this overcounts, which is rare.
                for event_type, count in Counter(batch.types).items():
                    events_appended(event_type, count)
                rows = sorted(rows, key=lambda r: r["version"])
                positions = [Position(r["tx_id"], r["global_position"]) for r in rows]
                self._remember_head(batch.stream_id, rows[-1]["version"], rows[-1]["hash"])
                # Built from database integers: nothing to validate.
                return AppendResult.model_construct(
                    stream_id=batch.stream_id,
                    first_version=batch.expected_version + 1,
                    last_version=batch.expected_version + len(batch.event_ids),
                    positions=positions,
                    idempotent_replay=False,
                )
            try:
                return await self._resolve(conn, batch)
            except WrongExpectedVersion as exc:
                # The stream was created between the lock statement's snapshot and now,
                # exactly at the expected version: not a lost race, so try once more.
                if attempt or exc.actual_version != batch.expected_version:
                    raise
        raise AssertionError("unreachable")

    async def _resolve(self, conn: asyncpg.Connection, batch: _Batch) -> AppendResult:
        """The append was refused by a version or an id. Decide whether it was a retry of an
        append that already succeeded (return its original result), a conflict
        (EventIdConflict) or a lost race (WrongExpectedVersion)."""
        stored = {
            UUID(bytes=row["event_id"].bytes): row
            for row in await conn.fetch(_FIND_IDS, batch.event_ids)
        }
        if not stored:
            actual = await self._version_on(conn, batch.stream_id)
            raise WrongExpectedVersion(batch.stream_id, batch.expected_version, actual)

        # Checked in order of how informative the message is: a misplaced id first.
        for index, (event_id, version) in enumerate(
            zip(batch.event_ids, batch.versions, strict=True)
        ):
            row = stored.get(event_id)
            if row is not None and (row["stream_id"] != batch.stream_id
                                    or row["version"] != version):
                raise EventIdConflict(
                    f"event {event_id} (index {index}) is already stored as "
                    f"{row['stream_id']!r} version {row['version']}; this append would put "
                    f"it at {batch.stream_id!r} version {version}",
                    event_id=event_id,
                )
        for index, event_id in enumerate(batch.event_ids):
            row = stored.get(event_id)
            if row is None:
                raise EventIdConflict(
                    f"{len(stored)} of this batch's event ids are already stored in "
                    f"{batch.stream_id!r} but event {event_id} (index {index}) is not: the "
                    "batch differs from the one originally appended",
                    event_id=event_id,
                )
        # Every id is where this append would put it: a retry of an append that committed.
        # Content is deliberately not compared. A Temporal workflow task that is retried stamps
        # a different workflow.now() into the events it re-proposes, so a genuine retry can
        # differ in occurred_at; the first write stands and the caller reads back what is
        # stored (see activities/store.py).
        ordered = [stored[event_id] for event_id in batch.event_ids]
        return AppendResult(
            stream_id=batch.stream_id,
            first_version=batch.expected_version + 1,
            last_version=batch.expected_version + len(batch.event_ids),
            positions=[Position(r["tx_id"], r["global_position"]) for r in ordered],
            idempotent_replay=True,
        )

    # --- reading one stream --------------------------------------------------------------

    async def stream_version(self, stream_id: str) -> int:
        """The version of the stream's last event; 0 if the stream does not exist."""
        async with self._pool.acquire() as conn:
            return await self._version_on(conn, stream_id)

    async def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        """The stream's events with ``from_version <= version <= to_version``, in order.

        Not held back by the global horizon: a stream's versions are gap-free at every commit,
        so a writer reads its own appends at once."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND version >= $2 "
                "AND ($3::bigint IS NULL OR version <= $3) ORDER BY version",
                stream_id, from_version, to_version,
            )
        if rows:
            # The usual next step is an append at the last version read: it can come linked.
            self._remember_head(stream_id, rows[-1]["version"], rows[-1]["hash"])
        return [_recorded(row) for row in rows]

    async def read_stream_as_of(self, stream_id: str, as_of: datetime) -> list[RecordedEvent]:
        """The stream's events whose domain time (``metadata.occurred_at``) is at or before
        ``as_of``, in version order. Domain time need not grow with version (a meeting may be
        logged late), so the result can skip versions."""
        if as_of.tzinfo is None or as_of.utcoffset() is None:
            raise ValueError("as_of must be timezone-aware")
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE stream_id = $1 "
                "AND occurred_at <= $2 ORDER BY version",
                stream_id, as_of,
            )
        return [_recorded(row) for row in rows]

    async def list_streams(self, prefix: str | None = None) -> list[str]:
        """Ids of existing streams (optionally starting with ``prefix``), in byte order."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT stream_id FROM streams WHERE version > 0 "
                "AND ($1::text IS NULL OR starts_with(stream_id, $1)) ORDER BY stream_id",
                prefix,
            )
        return [row["stream_id"] for row in rows]

    # --- reading everything, in global order ---------------------------------------------

    async def read_all_batch(
        self, after: Position | None, limit: int
    ) -> list[RecordedEvent]:
        """Up to ``limit`` events after ``after`` in global order, only from transactions that
        can no longer be followed by anything sorting before them. Pass the last event's
        :attr:`~RecordedEvent.position` back as ``after`` (a catch-up projector stores it as
        its checkpoint)."""
        if limit < 1:
            raise ValueError("limit must be >= 1")
        position = after if after is not None else Position.start()
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(_READ_ALL, position[0], position[1], limit)
        return [_recorded(row) for row in rows]

    async def read_all(
        self, after: Position | None = None, batch_size: int = 1000
    ) -> AsyncIterator[list[RecordedEvent]]:
        """Batches of events in global order after ``after``, until caught up."""
        position = after if after is not None else Position.start()
        while True:
            batch = await self.read_all_batch(position, batch_size)
            if batch:
                yield batch
                position = batch[-1].position
            if len(batch) < batch_size:
                return

    # --- verification --------------------------------------------------------------------

    async def verify(self, stream_ids: Sequence[str] | None = None) -> VerifyReport:
        """Recompute the hash chains of ``stream_ids`` (all streams if ``None``) and check
        versions, links, heads and global order; see :class:`ChainProblem` kinds."""
        wanted = None if stream_ids is None else list(dict.fromkeys(stream_ids))
        problems: list[ChainProblem] = []
        streams_checked = 0
        events_checked = 0
        async with self._pool.acquire() as conn:
            # One snapshot for heads and events, or concurrent appends would look like
            # truncation.
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                if wanted is None:
                    head_rows = await conn.fetch("SELECT stream_id, version, head_hash "
                                                 "FROM streams")
                    cursor = conn.cursor(f"SELECT {_VERIFY_COLUMNS} FROM events "
                                         "ORDER BY stream_id, version", prefetch=2000)
                else:
                    head_rows = await conn.fetch("SELECT stream_id, version, head_hash FROM "
                                                 "streams WHERE stream_id = ANY($1)", wanted)
                    cursor = conn.cursor(f"SELECT {_VERIFY_COLUMNS} FROM events WHERE "
                                         "stream_id = ANY($1) ORDER BY stream_id, version",
                                         wanted, prefetch=2000)
                heads = {r["stream_id"]: StreamHead(r["version"], r["head_hash"])
                         for r in head_rows}
                current: str | None = None
                rows: list[StoredEvent] = []
                async for record in cursor:
                    row = _stored(record)
                    if row.stream_id != current:
                        if current is not None:
                            problems += check_stream(current, rows, heads.pop(current, None))
                            streams_checked += 1
                        current, rows = row.stream_id, []
                    rows.append(row)
                    events_checked += 1
                if current is not None:
                    problems += check_stream(current, rows, heads.pop(current, None))
                    streams_checked += 1
        for stream_id, head in sorted(heads.items()):  # streams without any event row
            problems += check_stream(stream_id, [], head)
            streams_checked += 1
        return VerifyReport(problems=problems, streams_checked=streams_checked,
                            events_checked=events_checked)

    @staticmethod
    async def _version_on(conn: asyncpg.Connection, stream_id: str) -> int:
        version = await conn.fetchval("SELECT version FROM streams WHERE stream_id = $1",
                                      stream_id)
        return int(version) if version is not None else 0


_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def _check_stream_id(stream_id: object) -> None:
    if not isinstance(stream_id, str):
        raise InvalidAppend(f"stream id must be a str, got {type(stream_id).__name__}")
    if not stream_id.strip():
        raise InvalidAppend("stream id must not be empty")
    if len(stream_id) > MAX_STREAM_ID_LENGTH:
        raise InvalidAppend(
            f"stream id is {len(stream_id)} characters long; at most {MAX_STREAM_ID_LENGTH}"
        )
    if _CONTROL_CHARACTERS.search(stream_id):
        raise InvalidAppend(f"stream id {stream_id!r} contains control characters")


def _recorded(row: asyncpg.Record) -> RecordedEvent:
    # Columns arrive typed by the database, so the envelope is constructed without
    # re-validation (reads are hot); the metadata, a JSON document, is still validated.
    return RecordedEvent.model_construct(
        global_position=row["global_position"],
        tx_id=row["tx_id"],
        stream_id=row["stream_id"],
        version=row["version"],
        event_id=UUID(bytes=row["event_id"].bytes),
        type=row["type"],
        schema_version=row["schema_version"],
        payload=json.loads(row["payload"]),
        metadata=EventMetadata.model_validate_json(row["metadata"]),
        recorded_at=row["recorded_at"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


def _stored(row: asyncpg.Record) -> StoredEvent:
    return StoredEvent(
        stream_id=row["stream_id"],
        version=row["version"],
        event_id=str(row["event_id"]),
        event_type=row["type"],
        schema_version=row["schema_version"],
        payload=json.loads(row["payload"]),
        metadata=json.loads(row["metadata"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
        occurred_at=row["occurred_at"],
        position=Position(row["tx_id"], row["global_position"]),
    )
