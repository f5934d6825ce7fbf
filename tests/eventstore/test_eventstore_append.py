"""Appending: versions, optimistic concurrency, idempotent retries, id conflicts, and the
per-stream read paths."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import timedelta

import asyncpg
import pytest

from eventstore import (
    EventIdConflict,
    EventStore,
    InvalidAppend,
    Position,
    WrongExpectedVersion,
)
from eventstore.hashing import GENESIS_HASH

from .eventstore_support import T0, batch, event, row_counts


async def test_append_and_read_back(store: EventStore) -> None:
    first = await store.append("pairing-A", 0, batch(2))
    second = await store.append("pairing-A", 2, batch(3))

    assert (first.first_version, first.last_version) == (1, 2)
    assert (second.first_version, second.last_version) == (3, 5)
    assert not first.idempotent_replay and not second.idempotent_replay
    assert first.positions[0] < first.positions[1] < second.positions[0]
    assert await store.stream_version("pairing-A") == 5
    assert await store.stream_version("pairing-unknown") == 0

    events = await store.read_stream("pairing-A")
    assert [e.version for e in events] == [1, 2, 3, 4, 5]
    assert [e.position for e in events] == [*first.positions, *second.positions]
    assert events[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))
    assert [e.version for e in await store.read_stream("pairing-A", 2, 3)] == [2, 3]
    assert [e.version for e in await store.read_stream("pairing-A", from_version=4)] == [4, 5]


async def test_recorded_event_equals_what_was_appended(store: EventStore) -> None:
    new = event(
        "MeetingHeld",
        {"pairing_id": "P1", "notes": "café ☕ — 日本語", "score": 4.5, "nested": {"b": [1, 2]}},
    )
    result = await store.append("pairing-B", 0, [new])

    [recorded] = await store.read_stream("pairing-B")
    assert recorded.event_id == new.event_id
    assert recorded.type == new.type
    assert recorded.payload == new.payload
    assert recorded.metadata == new.metadata
    assert recorded.stream_id == "pairing-B"
    assert recorded.position == result.positions[0]
    assert recorded.recorded_at.tzinfo is not None


async def test_twenty_concurrent_appenders_one_winner_per_version(store: EventStore) -> None:
    stream = "pairing-contended"
    await store.append(stream, 0, batch(1))
    rounds = 5

    async def contender(current: int, start: asyncio.Event) -> object:
        await start.wait()
        try:
            return await store.append(stream, current, batch(1))
        except WrongExpectedVersion as exc:
            return exc

    for _ in range(rounds):
        current = await store.stream_version(stream)
        start = asyncio.Event()
        tasks = [asyncio.create_task(contender(current, start)) for _ in range(20)]
        await asyncio.sleep(0.01)
        start.set()
        outcomes = await asyncio.gather(*tasks)

        winners = [o for o in outcomes if not isinstance(o, WrongExpectedVersion)]
        losers = [o for o in outcomes if isinstance(o, WrongExpectedVersion)]
        assert len(winners) == 1
        assert len(losers) == 19
        assert all(exc.expected_version == current for exc in losers)
        assert all(exc.actual_version == current + 1 for exc in losers)

    versions = [e.version for e in await store.read_stream(stream)]
    assert versions == list(range(1, rounds + 2))
    assert (await store.verify([stream])).ok


async def test_concurrent_creators_of_one_stream(store: EventStore) -> None:
    outcomes = await asyncio.gather(
        *(store.append("cohort-new", 0, batch(2)) for _ in range(10)), return_exceptions=True
    )
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 1
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            assert isinstance(outcome, WrongExpectedVersion)
            assert outcome.actual_version == 2
    assert await row_counts(store.pool) == (2, 1)


async def test_retried_append_returns_the_original_result(store: EventStore) -> None:
    first_batch = batch(2)
    created = await store.append("pairing-R", 0, first_batch)
    second_batch = batch(3)
    extended = await store.append("pairing-R", 2, second_batch)
    await store.append("pairing-R", 5, batch(1))  # the stream moved on since

    replay_created = await store.append("pairing-R", 0, first_batch)
    replay_extended = await store.append("pairing-R", 2, second_batch)

    assert replay_created.idempotent_replay and replay_extended.idempotent_replay
    assert replay_created.model_dump(exclude={"idempotent_replay"}) == created.model_dump(
        exclude={"idempotent_replay"}
    )
    assert replay_extended.positions == extended.positions
    assert (replay_extended.first_version, replay_extended.last_version) == (3, 5)
    assert await row_counts(store.pool) == (6, 1)


async def test_concurrent_retries_write_once(store: EventStore) -> None:
    events = batch(3)
    results = await asyncio.gather(*(store.append("pairing-twice", 0, events) for _ in range(8)))
    assert sum(not r.idempotent_replay for r in results) == 1
    assert len({tuple(r.positions) for r in results}) == 1
    assert await row_counts(store.pool) == (3, 1)


async def test_id_used_in_another_stream_conflicts(store: EventStore) -> None:
    shared = event()
    await store.append("pairing-X", 0, [shared])
    with pytest.raises(EventIdConflict, match=r"already stored as 'pairing-X' version 1"):
        await store.append("pairing-Y", 0, [shared])
    await store.append("pairing-Y", 0, batch(1))
    with pytest.raises(EventIdConflict, match=r"'pairing-X' version 1.*'pairing-Y' version 2"):
        await store.append("pairing-Y", 1, [shared])
    assert await row_counts(store.pool) == (2, 2)


async def test_same_version_different_id_conflicts(store: EventStore) -> None:
    a, b = batch(2)
    await store.append("pairing-Z", 0, [a, b])

    # A "retry" whose second event is not the one stored at version 2.
    with pytest.raises(EventIdConflict, match="batch differs"):
        await store.append("pairing-Z", 0, [a, event()])
    # The same ids shifted to other versions.
    with pytest.raises(EventIdConflict, match="version 2; this append would put it at"):
        await store.append("pairing-Z", 0, [b])
    assert await row_counts(store.pool) == (2, 1)


async def test_a_retry_with_restamped_content_keeps_the_first_write(store: EventStore) -> None:
    # A retried workflow task re-proposes the same ids with a later workflow.now(): still the
    # same append. The first write stands; the caller reads back what is stored.
    first = event(occurred_at=T0)
    original = await store.append("pairing-Q", 0, [first])
    restamped = first.model_copy(update={"metadata": first.metadata.model_copy(
        update={"occurred_at": T0 + timedelta(seconds=3)})})
    replay = await store.append("pairing-Q", 0, [restamped])
    assert replay.idempotent_replay and replay.positions == original.positions
    [stored] = await store.read_stream("pairing-Q")
    assert stored.metadata.occurred_at == T0
    assert (await store.verify()).ok


async def test_wrong_expected_version_writes_nothing(store: EventStore) -> None:
    await store.append("pairing-W", 0, batch(2))
    with pytest.raises(WrongExpectedVersion) as too_old:
        await store.append("pairing-W", 1, batch(1))
    assert too_old.value.actual_version == 2
    with pytest.raises(WrongExpectedVersion) as exists:
        await store.append("pairing-W", 0, batch(1))
    assert exists.value.actual_version == 2
    with pytest.raises(WrongExpectedVersion) as missing:
        await store.append("pairing-missing", 3, batch(1))
    assert missing.value.actual_version == 0
    assert "is at version 0, not at the expected version 3" in str(missing.value)
    assert await row_counts(store.pool) == (2, 1)


async def test_as_of_reads_use_domain_time(store: EventStore) -> None:
    times = [T0, T0 + timedelta(days=7), T0 + timedelta(days=3), T0 + timedelta(days=14)]
    for version, moment in enumerate(times):
        await store.append("pairing-T", version, [event(occurred_at=moment)])

    as_of = await store.read_stream_as_of("pairing-T", T0 + timedelta(days=7))
    # Domain time need not grow with version: the late-logged version 3 is included.
    assert [e.version for e in as_of] == [1, 2, 3]
    assert await store.read_stream_as_of("pairing-T", T0 - timedelta(seconds=1)) == []
    everything = await store.read_stream_as_of("pairing-T", T0 + timedelta(days=30))
    assert len(everything) == 4
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.read_stream_as_of("pairing-T", T0.replace(tzinfo=None))


async def test_list_streams_by_prefix(store: EventStore) -> None:
    for stream in ["pairing-1", "pairing-2", "cohort-1", "pairing_%x", "pairing%"]:
        await store.append(stream, 0, batch(1))
    assert await store.list_streams() == sorted(
        ["cohort-1", "pairing%", "pairing-1", "pairing-2", "pairing_%x"]
    )
    assert await store.list_streams("pairing-") == ["pairing-1", "pairing-2"]
    # LIKE wildcards in the prefix are plain characters.
    assert await store.list_streams("pairing_%") == ["pairing_%x"]
    assert await store.list_streams("nothing") == []


async def test_append_inside_callers_transaction(store: EventStore, db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as conn:
        async with conn.transaction():
            result = await store.append("pairing-outbox", 0, batch(1), connection=conn)
            await conn.execute(
                "INSERT INTO deliveries (idempotency_key, channel) VALUES ($1, 'email')",
                f"{result.positions[0]}",
            )
        # A refused append inside the transaction leaves the transaction usable.
        async with conn.transaction():
            with pytest.raises(WrongExpectedVersion):
                await store.append("pairing-outbox", 0, batch(1), connection=conn)
            assert await conn.fetchval("SELECT count(*) FROM deliveries") == 1

        # After another write, the transaction id is already fixed: refused.
        with pytest.raises(InvalidAppend, match="first write"):
            async with conn.transaction():
                await conn.execute("INSERT INTO deliveries (idempotency_key) VALUES ('k2')")
                await store.append("pairing-outbox", 1, batch(1), connection=conn)

        rolled_back = conn.transaction()
        await rolled_back.start()
        await store.append("pairing-outbox", 1, batch(1), connection=conn)
        await rolled_back.rollback()
    assert await store.stream_version("pairing-outbox") == 1
    assert await row_counts(store.pool) == (1, 1)


async def test_positions_follow_version_order_within_an_append(store: EventStore) -> None:
    result = await store.append("pairing-many", 0, batch(50))
    assert result.positions == sorted(result.positions)
    assert len({p.tx_id for p in result.positions}) == 1
    assert all(isinstance(p, Position) for p in result.positions)


async def test_store_connect_owns_its_pool(db_dsn: str) -> None:
    store = await EventStore.connect(db_dsn, min_size=1, max_size=2)
    try:
        await store.append("pairing-own", 0, [event(event_id=uuid.uuid4())])
        assert await store.stream_version("pairing-own") == 1
    finally:
        await store.close()
    assert store.pool.is_closing()
