"""The global order: a reader following read_all_batch from a checkpoint sees every event
exactly once and never goes backwards, even when a transaction that drew a lower position
commits after others. A naive reader ordering by global_position alone runs alongside to prove
the scenario really loses events for it."""

from __future__ import annotations

import asyncio
import random
import uuid

import asyncpg

from eventstore import EventStore, Position, RecordedEvent, WrongExpectedVersion

from .eventstore_support import batch

# The horizon is cluster-wide: a transaction of any database on the server (other test
# sessions share it) holds readers back for a while. Waiting is correct behaviour; give it time.
HORIZON_PATIENCE_S = 60.0


async def read_until(store: EventStore, after: Position | None,
                     wanted: int) -> list[RecordedEvent]:
    """Follow read_all_batch from ``after`` until ``wanted`` events arrived (or give up)."""
    seen: list[RecordedEvent] = []
    deadline = asyncio.get_running_loop().time() + HORIZON_PATIENCE_S
    while len(seen) < wanted and asyncio.get_running_loop().time() < deadline:
        page = await store.read_all_batch(seen[-1].position if seen else after, 100)
        seen.extend(page)
        if not page:
            await asyncio.sleep(0.01)
    return seen


async def naive_read(pool: asyncpg.Pool, after: int) -> list[tuple[int, uuid.UUID]]:
    """What a reader ordering by global_position alone would get."""
    rows = await pool.fetch(
        "SELECT global_position, event_id FROM events WHERE global_position > $1 "
        "ORDER BY global_position", after,
    )
    return [(r["global_position"], uuid.UUID(bytes=r["event_id"].bytes)) for r in rows]


async def test_a_late_commit_below_the_checkpoint_is_not_skipped(
    store: EventStore, db_pool: asyncpg.Pool
) -> None:
    early = await store.append("pairing-fast", 0, batch(1))
    async with db_pool.acquire() as slow_conn:
        slow_tx = slow_conn.transaction()
        await slow_tx.start()
        slow = await store.append("pairing-slow", 0, batch(1), connection=slow_conn)
        fast = await store.append("pairing-fast", 1, batch(1))
        # The uncommitted append drew the lower position; a later one committed above it.
        assert slow.positions[0].global_position < fast.positions[0].global_position

        naive = await naive_read(db_pool, 0)
        naive_checkpoint = naive[-1][0]
        assert naive_checkpoint == fast.positions[0].global_position  # already past `slow`

        ours = await store.read_all_batch(None, 100)
        # Held back at the slow transaction: at most what committed before it started.
        assert [e.position for e in ours] in ([], early.positions)
        audit_rows = await db_pool.fetchval("SELECT count(*) FROM audit_events")
        assert audit_rows <= 1
        await slow_tx.commit()

    missed_by_naive = await naive_read(db_pool, naive_checkpoint)
    assert missed_by_naive == []  # the slow event is below its checkpoint: lost for good

    everything = await read_until(store, None, 3)
    assert [e.position for e in everything] == [
        early.positions[0], slow.positions[0], fast.positions[0]
    ]


async def test_concurrent_writers_and_a_following_reader(
    store: EventStore, db_pool: asyncpg.Pool
) -> None:
    rng = random.Random(7)
    appended: list[uuid.UUID] = []
    writers_done = asyncio.Event()
    give_up_at = 0.0
    naive_max_seen = 0

    async def writer(number: int, appends: int) -> None:
        streams = [f"pairing-w{number}-{i}" for i in range(5)]
        versions = dict.fromkeys(streams, 0)
        for _ in range(appends):
            stream = rng.choice(streams)
            events = batch(rng.randint(1, 3))
            await store.append(stream, versions[stream], events)
            versions[stream] += len(events)
            appended.extend(e.event_id for e in events)

    async def slow_writer(number: int, transactions: int) -> None:
        """Opens, appends, then holds the commit until the naive reader has moved past the
        position it drew (so ordering by position alone *will* skip it)."""
        stream = f"pairing-slow-{number}"
        version = 0
        for _ in range(transactions):
            async with db_pool.acquire() as conn:
                tx = conn.transaction()
                await tx.start()
                events = batch(1)
                result = await store.append(stream, version, events, connection=conn)
                mine = result.positions[0].global_position
                for _ in range(200):
                    if naive_max_seen > mine or writers_done.is_set():
                        break
                    await asyncio.sleep(0.01)
                await asyncio.sleep(rng.uniform(0.0, 0.05))
                await tx.commit()
            version += 1
            appended.extend(e.event_id for e in events)

    async def naive_follower() -> set[uuid.UUID]:
        nonlocal naive_max_seen
        seen: set[uuid.UUID] = set()
        while True:
            done = writers_done.is_set()
            for position, event_id in await naive_read(db_pool, naive_max_seen):
                naive_max_seen = position
                seen.add(event_id)
            if done:
                return seen
            await asyncio.sleep(0.002)

    async def follower() -> list[RecordedEvent]:
        seen: list[RecordedEvent] = []
        checkpoint = Position.start()
        while True:
            if writers_done.is_set() and (
                len(seen) >= len(appended)
                or asyncio.get_running_loop().time() > give_up_at
            ):
                return seen
            page = await store.read_all_batch(checkpoint, 37)
            for event in page:
                assert event.position > checkpoint, "the reader went backwards"
                checkpoint = event.position
            seen.extend(page)
            if len(page) < 37:
                await asyncio.sleep(0.002)

    reader = asyncio.create_task(follower())
    naive = asyncio.create_task(naive_follower())
    await asyncio.gather(
        *(writer(n, 50) for n in range(8)), *(slow_writer(n, 4) for n in range(2))
    )
    give_up_at = asyncio.get_running_loop().time() + HORIZON_PATIENCE_S
    writers_done.set()
    seen = await reader
    naive_seen = await naive

    seen_ids = [e.event_id for e in seen]
    assert len(seen_ids) == len(set(seen_ids)), "an event was delivered twice"
    assert set(seen_ids) == set(appended), "an event was missed"
    assert len(appended) == await db_pool.fetchval("SELECT count(*) FROM events")
    assert [e.position for e in seen] == sorted(e.position for e in seen)
    # The scenario is adversarial: ordering by global_position alone lost events.
    assert set(appended) - naive_seen, "the slow writers did not overtake anything"

    # Per stream, the global order agrees with version order.
    last_version: dict[str, int] = {}
    for event in seen:
        assert event.version == last_version.get(event.stream_id, 0) + 1
        last_version[event.stream_id] = event.version
    assert (await store.verify()).ok


async def test_read_all_yields_batches_until_caught_up(store: EventStore) -> None:
    for i in range(5):
        await store.append(f"cohort-{i}", 0, batch(5))
    await read_until(store, None, 25)  # past the horizon, whatever else runs on the server
    batches = [b async for b in store.read_all(batch_size=7)]
    assert [len(b) for b in batches] == [7, 7, 7, 4]
    everything = [e for b in batches for e in b]
    assert [e.position for e in everything] == sorted(e.position for e in everything)

    checkpoint = everything[11].position
    resumed = [e async for b in store.read_all(after=checkpoint, batch_size=100) for e in b]
    assert resumed == everything[12:]
    assert [b async for b in store.read_all(after=everything[-1].position)] == []


async def test_pipelined_appends_keep_global_order_equal_to_version_order(
    store: EventStore,
) -> None:
    """One writer pipelines its appends (expected versions 0, 1, 2, ... all in flight at once),
    so most of them queue on the stream's row lock while their predecessor is still writing.
    A transaction id is assigned only once that lock is held; were it assigned before (as a
    plain UPDATE would), a queued append could carry a smaller tx_id than the version before it
    and the global order would run backwards inside the stream."""

    async def append_at(expected: int) -> None:
        while True:
            try:
                await store.append("pairing-hot", expected, batch(1))
                return
            except WrongExpectedVersion as exc:
                assert exc.actual_version < expected  # not our turn yet
                await asyncio.sleep(0)

    for round_start in range(0, 120, 20):
        await asyncio.gather(*(append_at(v) for v in range(round_start, round_start + 20)))
    events = await store.read_stream("pairing-hot")
    assert [e.version for e in events] == list(range(1, 121))
    assert [e.position for e in events] == sorted(e.position for e in events)
    assert (await store.verify(["pairing-hot"])).ok
