"""Who links the hash chain: the client when it knows the stream's head, the database when it
does not or knows it wrong, the old eventstore_append() of a process not yet upgraded. Every
mix must give the chain ``verify()`` (and so ``sebaya audit verify``) accepts, and the same
hashes ``eventstore.hashing.event_hash`` computes."""

from __future__ import annotations

import asyncpg

from eventstore import EventStore
from eventstore.hashing import GENESIS_HASH, EnvelopeParts, canonical_json, event_hash

from .eventstore_support import batch


async def _assert_chain_sound(store: EventStore, stream: str, versions: int) -> None:
    report = await store.verify([stream])
    assert report.ok, report.problems
    assert report.events_checked == versions
    prev = GENESIS_HASH
    for recorded in await store.read_stream(stream):
        assert recorded.prev_hash == prev
        assert recorded.hash == event_hash(
            event_id=recorded.event_id, stream_id=stream, version=recorded.version,
            event_type=recorded.type, schema_version=recorded.schema_version,
            payload=recorded.payload, metadata=recorded.metadata.to_document(), prev_hash=prev,
        )
        prev = recorded.hash
    head = await store.pool.fetchrow(
        "SELECT version, head_hash FROM streams WHERE stream_id = $1", stream)
    assert (head["version"], head["head_hash"]) == (versions, prev)


async def test_database_links_when_the_store_does_not_know_the_head(
    db_pool: asyncpg.Pool,
) -> None:
    first, second = EventStore(db_pool), EventStore(db_pool)
    await first.append("pairing-l1", 0, batch(3))         # linked by the client (genesis)
    await second.append("pairing-l1", 3, batch(2))        # second never saw it: the database
    await second.append("pairing-l1", 5, batch(2))        # now second knows the head
    await first.append("pairing-l1", 7, batch(1))         # first's knowledge is outdated
    await _assert_chain_sound(first, "pairing-l1", 8)


async def test_a_head_known_wrong_is_not_used(db_pool: asyncpg.Pool) -> None:
    """A store remembers the head of an append made inside a caller's transaction; if that
    transaction rolls back and another writer fills the same version, the remembered hash is
    for the right version but wrong. The database must link from the real head."""
    store, other = EventStore(db_pool), EventStore(db_pool)
    await store.append("pairing-l2", 0, batch(2))
    async with db_pool.acquire() as conn:
        rolled_back = conn.transaction()
        await rolled_back.start()
        await store.append("pairing-l2", 2, batch(1), connection=conn)
        await rolled_back.rollback()
    await other.append("pairing-l2", 2, batch(1))
    await store.append("pairing-l2", 3, batch(2))
    await _assert_chain_sound(store, "pairing-l2", 5)


async def test_old_and_new_append_functions_write_one_chain(db_pool: asyncpg.Pool) -> None:
    """eventstore_append() of migration 0001 (a process still on the previous code during a
    deploy) and eventstore_append_v2 extend each other's chains."""
    store = EventStore(db_pool)

    async def old_append(expected: int, count: int) -> None:
        events = batch(count)
        parts = [
            EnvelopeParts.build(
                event_id=e.event_id, stream_id="pairing-l3", version=expected + i + 1,
                event_type=e.type, schema_version=e.schema_version,
                payload_json=canonical_json(e.payload),
                metadata_json=e.metadata.canonical_json(),
            )
            for i, e in enumerate(events)
        ]
        rows = await db_pool.fetch(
            "SELECT * FROM eventstore_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            "pairing-l3", expected, [e.event_id for e in events], [e.type for e in events],
            [e.schema_version for e in events], [canonical_json(e.payload) for e in events],
            [e.metadata.canonical_json() for e in events],
            [e.metadata.occurred_at for e in events],
            [p.head for p in parts], [p.tail for p in parts],
        )
        assert len(rows) == count

    await old_append(0, 2)
    await store.append("pairing-l3", 2, batch(2))    # the new function links (head unknown)
    await store.append("pairing-l3", 4, batch(2))    # the client links
    await old_append(6, 2)
    await store.append("pairing-l3", 8, batch(1))    # outdated knowledge: the database links
    await _assert_chain_sound(store, "pairing-l3", 9)


async def test_read_stream_lets_the_next_append_come_linked(db_pool: asyncpg.Pool) -> None:
    writer, reader = EventStore(db_pool), EventStore(db_pool)
    await writer.append("pairing-l4", 0, batch(3))
    events = await reader.read_stream("pairing-l4")
    await reader.append("pairing-l4", events[-1].version, batch(2))
    await _assert_chain_sound(reader, "pairing-l4", 5)
