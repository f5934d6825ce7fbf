"""verify() finds tampering done by a superuser who switched the append-only triggers off:
edited, deleted, forged and swapped rows, each named by stream and version."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg
import pytest

from eventstore import EventStore
from eventstore.chain import StoredEvent, StreamHead, check_stream
from eventstore.hashing import canonical_json, event_hash

from .eventstore_support import batch, metadata

Attack = Callable[[asyncpg.Connection], Awaitable[object]]


@asynccontextmanager
async def attacker(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A superuser session with triggers (the append-only guard) disabled."""
    async with pool.acquire() as conn:
        await conn.execute("SET session_replication_role = replica")
        try:
            yield conn
        finally:
            await conn.execute("RESET session_replication_role")


async def seed(store: EventStore) -> None:
    await store.append("pairing-A", 0, batch(3))
    await store.append("pairing-A", 3, batch(2))  # versions 1..5 over two transactions
    await store.append("pairing-B", 0, batch(3))
    await store.append("pairing-C", 0, batch(2))


async def forge_next(conn: asyncpg.Connection, stream: str, *, version: int) -> None:
    """What an attacker who knows the hash algorithm inserts: a row that chains correctly to
    the current last row, without going through the store (so the stream head is not moved).
    """
    prev = await conn.fetchval(
        "SELECT hash FROM events WHERE stream_id = $1 AND version = $2", stream, version - 1
    ) or "0" * 64
    event_id = uuid.uuid4()
    document = metadata(actor="ops:mallory").to_document()
    payload = {"n": "forged"}
    digest = event_hash(event_id=event_id, stream_id=stream, version=version,
                        event_type="Noted", schema_version=1, payload=payload,
                        metadata=document, prev_hash=prev)
    await conn.execute(
        "INSERT INTO events (stream_id, version, event_id, type, schema_version, payload, "
        "metadata, occurred_at, prev_hash, hash) "
        "VALUES ($1, $2, $3, 'Noted', 1, $4::jsonb, $5::jsonb, $6, $7, $8)",
        stream, version, event_id, canonical_json(payload), canonical_json(document),
        metadata().occurred_at, prev, digest,
    )


async def edit_payload(conn: asyncpg.Connection) -> None:
    await conn.execute("UPDATE events SET payload = '{\"n\": 999}' "
                       "WHERE stream_id = 'pairing-A' AND version = 2")


async def edit_metadata(conn: asyncpg.Connection) -> None:
    await conn.execute("UPDATE events SET metadata = metadata || '{\"actor\": \"ops:mallory\"}' "
                       "WHERE stream_id = 'pairing-A' AND version = 4")


async def edit_type(conn: asyncpg.Connection) -> None:
    await conn.execute("UPDATE events SET type = 'Erased' "
                       "WHERE stream_id = 'pairing-A' AND version = 1")


async def edit_and_rehash(conn: asyncpg.Connection) -> None:
    # A smarter attacker also recomputes the edited row's own hash; the chain still breaks at
    # the next row, whose prev_hash is the original.
    row = await conn.fetchrow("SELECT * FROM events WHERE stream_id = 'pairing-A' AND version = 2")
    assert row is not None
    payload = {"n": 999}
    digest = event_hash(event_id=row["event_id"], stream_id="pairing-A", version=2,
                        event_type=row["type"], schema_version=row["schema_version"],
                        payload=payload, metadata=json.loads(row["metadata"]),
                        prev_hash=row["prev_hash"])
    await conn.execute("UPDATE events SET payload = $1::jsonb, hash = $2 "
                       "WHERE stream_id = 'pairing-A' AND version = 2",
                       canonical_json(payload), digest)


async def delete_middle(conn: asyncpg.Connection) -> None:
    await conn.execute("DELETE FROM events WHERE stream_id = 'pairing-A' AND version = 3")


async def delete_last(conn: asyncpg.Connection) -> None:
    await conn.execute("DELETE FROM events WHERE stream_id = 'pairing-A' AND version = 5")


async def forge_appended(conn: asyncpg.Connection) -> None:
    await forge_next(conn, "pairing-A", version=6)


async def forge_new_stream(conn: asyncpg.Connection) -> None:
    await forge_next(conn, "pairing-ghost", version=1)


async def forge_garbage(conn: asyncpg.Connection) -> None:
    await conn.execute("DELETE FROM events WHERE stream_id = 'pairing-A' AND version = 5")
    await forge_next(conn, "pairing-A", version=5)  # chains fine, but to a different head


async def swap_versions(conn: asyncpg.Connection) -> None:
    # Through a spare version: the primary key is checked row by row.
    await conn.execute("UPDATE events SET version = 1000 "
                       "WHERE stream_id = 'pairing-A' AND version = 2")
    await conn.execute("UPDATE events SET version = 2 "
                       "WHERE stream_id = 'pairing-A' AND version = 3")
    await conn.execute("UPDATE events SET version = 3 "
                       "WHERE stream_id = 'pairing-A' AND version = 1000")


async def move_occurred_at(conn: asyncpg.Connection) -> None:
    await conn.execute("UPDATE events SET occurred_at = occurred_at - interval '30 days' "
                       "WHERE stream_id = 'pairing-A' AND version = 4")


async def rewind_head(conn: asyncpg.Connection) -> None:
    await conn.execute("UPDATE streams SET version = 4 WHERE stream_id = 'pairing-A'")


@pytest.mark.parametrize(
    ("attack", "expected"),
    [
        (edit_payload, {("pairing-A", 2, "hash_mismatch")}),
        (edit_metadata, {("pairing-A", 4, "hash_mismatch")}),
        (edit_type, {("pairing-A", 1, "hash_mismatch")}),
        (edit_and_rehash, {("pairing-A", 3, "prev_hash_mismatch")}),
        (delete_middle, {("pairing-A", 4, "version_gap"), ("pairing-A", 4, "prev_hash_mismatch")}),
        (delete_last, {("pairing-A", 5, "head_mismatch")}),
        (forge_appended, {("pairing-A", 6, "head_mismatch")}),
        (forge_new_stream, {("pairing-ghost", 1, "missing_stream_row")}),
        (forge_garbage, {("pairing-A", 5, "head_mismatch")}),
        (swap_versions, {
            ("pairing-A", 2, "hash_mismatch"), ("pairing-A", 2, "prev_hash_mismatch"),
            ("pairing-A", 3, "hash_mismatch"), ("pairing-A", 3, "prev_hash_mismatch"),
            ("pairing-A", 3, "position_order"), ("pairing-A", 4, "prev_hash_mismatch"),
        }),
        (move_occurred_at, {("pairing-A", 4, "occurred_at_mismatch")}),
        (rewind_head, {("pairing-A", 5, "head_mismatch")}),
    ],
    ids=lambda value: getattr(value, "__name__", ""),
)
async def test_verify_detects_tampering(
    store: EventStore, db_pool: asyncpg.Pool, attack: Attack,
    expected: set[tuple[str, int, str]],
) -> None:
    await seed(store)
    clean = await store.verify()
    assert clean.ok, clean.problems
    assert (clean.streams_checked, clean.events_checked) == (3, 10)

    async with attacker(db_pool) as conn:
        await attack(conn)

    report = await store.verify()
    assert not report.ok
    found = {(p.stream_id, p.version, p.kind) for p in report.problems}
    assert found == expected, report.problems
    assert all(p.detail for p in report.problems)
    # Scoped verification sees the same, and untouched streams stay clean.
    scoped = await store.verify([p.stream_id for p in report.problems])
    assert scoped.problems == report.problems
    assert (await store.verify(["pairing-B", "pairing-C"])).ok


async def test_verify_report_wording(store: EventStore, db_pool: asyncpg.Pool) -> None:
    await seed(store)
    async with attacker(db_pool) as conn:
        await delete_middle(conn)
        await edit_payload(conn)
    problems = {(p.version, p.kind): p.detail for p in (await store.verify()).problems}
    assert "the row was edited" in problems[(2, "hash_mismatch")]
    assert "expected version 3, found 4: version 3 is missing" in problems[(4, "version_gap")]


async def test_triggers_stay_on_for_everyone_else(store: EventStore,
                                                  db_pool: asyncpg.Pool) -> None:
    await seed(store)
    with pytest.raises(asyncpg.RestrictViolationError, match="append-only: UPDATE refused"):
        await db_pool.execute("UPDATE events SET payload = '{}' WHERE version = 1")
    assert (await store.verify()).ok


async def test_offline_check_of_an_export(store: EventStore) -> None:
    """What the offline bundle verifier does: rows exported once, checked with no database."""
    await seed(store)
    exported = [
        StoredEvent(
            stream_id=e.stream_id, version=e.version, event_id=str(e.event_id),
            event_type=e.type, schema_version=e.schema_version, payload=e.payload,
            metadata=e.metadata.to_document(), prev_hash=e.prev_hash, hash=e.hash,
            occurred_at=e.metadata.occurred_at, position=e.position,
        )
        for e in await store.read_stream("pairing-A")
    ]
    head = StreamHead(version=exported[-1].version, head_hash=exported[-1].hash)
    assert check_stream("pairing-A", exported, head) == []

    exported[1] = dataclasses.replace(exported[1], payload={"n": "edited"})
    problems = check_stream("pairing-A", exported, head)
    assert [(p.version, p.kind) for p in problems] == [(2, "hash_mismatch")]
