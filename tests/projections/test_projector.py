"""The catch-up projector on real Postgres: rows equal a fresh fold of each stream, the
checkpoint moves with the views, and a projector killed anywhere resumes to exactly what a
rebuild produces."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from datetime import timedelta

import asyncpg
import pytest

from domain.pairing import fold
from eventstore import EventStore, Position
from projections import BatchInfo, Projector, projection_status
from projections.pairing import JSON_COLUMNS, PAIRING_COLUMNS, pairing_record
from projections.source import EventDecoder, read_batch
from sebaya.bootstrap import build_registry
from sebaya.samples.lifecycles import (
    CohortSim,
    append_decisions,
    completed_pairing,
    sample_cohort,
)
from tests.projections.views import checkpoint, dump_views, past_horizon


async def assert_rows_equal_fresh_fold(pool: asyncpg.Pool, store: EventStore) -> int:
    """Every pairing_view row equals what pairing_record() gives for a fold of the stream."""
    registry = build_registry()
    columns = ", ".join(f"{c}::text AS {c}" if c in JSON_COLUMNS else c
                        for c in PAIRING_COLUMNS)
    rows = await pool.fetch(f"SELECT {columns} FROM pairing_view")
    for row in rows:
        records = await store.read_stream(f"pairing-{row['pairing_id']}")
        state = fold(registry.decode(r) for r in records)  # type: ignore[misc]
        expected = pairing_record(state, cross_functional=row["cross_functional"],
                                  last_event_at=records[-1].metadata.occurred_at)
        stored = {c: json.loads(row[c]) if c in JSON_COLUMNS else row[c]
                  for c in PAIRING_COLUMNS}
        assert stored == expected, {c for c in stored if stored[c] != expected[c]}
        snapshot = await pool.fetchrow("SELECT version, state::text FROM pairing_snapshots "
                                       "WHERE pairing_id = $1", row["pairing_id"])
        assert snapshot is not None and snapshot[0] == state.version
        assert snapshot[1] == state.model_dump_json()
    return len(rows)


async def test_views_equal_a_fresh_fold_of_every_stream(
    store: EventStore, db_pool: asyncpg.Pool, cohort: CohortSim
) -> None:
    projector = Projector(store, batch_size=37)
    read = await projector.catch_up()
    total = sum(len(d.events) for d in cohort.all_decisions())
    assert read == total
    assert await assert_rows_equal_fresh_fold(db_pool, store) == len(cohort.pairings) == 6

    # The cohort's counts by phase are the pairings' phases.
    row = await db_pool.fetchrow("SELECT * FROM cohort_view WHERE cohort_id = 'C1'")
    phases = await db_pool.fetch("SELECT phase, count(*)::int AS n FROM pairing_view "
                                 "WHERE cohort_id = 'C1' GROUP BY phase")
    assert json.loads(row["pairings_by_phase"]) == {r["phase"]: r["n"] for r in phases}
    assert json.loads(row["pairings_by_phase"]) == {"completed": 3, "exited": 2,
                                                    "goal_setting": 1}
    assert (row["program_name"], row["phase"], row["pairings_total"]) == (
        "Program Mentoring 2025", "running", 6)
    assert (row["launched"], row["rematches"]) == (6, 1)
    assert json.loads(row["left_company"]) == {"E04": "2025-04-02"}
    assert json.loads(row["waiting"]) == {}  # E03 waited, then was rematched
    runs = json.loads(row["match_runs"])
    assert [(r["run_id"], r["kind"], r["approved_by"]) for r in runs] == [
        ("run-1", "initial", "ops:ops-test"), ("run-2", "rematch", None)]

    e03 = await db_pool.fetchrow("SELECT * FROM participant_view WHERE employee_id = 'E03'")
    assert json.loads(e03["pairing_ids"]) == ["C1.E03.M03.1", "C1.E03.M01.1"]
    assert e03["role"] == "mentee" and e03["current_pairing_id"] is None
    assert e03["waiting_since"] is None
    e05 = await db_pool.fetchrow("SELECT * FROM participant_view WHERE employee_id = 'E05'")
    assert e05["current_pairing_id"] == "C1.E05.M05.1"

    status = await projection_status(db_pool)
    assert status.events_behind == 0 and status.checkpoint == status.head
    assert status.events_applied == total


async def test_lean_reader_follows_the_stores_global_order(
    store: EventStore, cohort: CohortSim
) -> None:
    expected = [(r.stream_id, r.version, r.position) async for batch in store.read_all(
        batch_size=50) for r in batch]
    decoder = EventDecoder(build_registry(), [])
    seen: list[tuple[str, int]] = []
    position = Position.start()
    async with store.pool.acquire() as conn:
        while True:
            batch = await read_batch(conn, position, 23, decoder)
            if not batch.rows_read:
                break
            seen += [(ev.stream_id, ev.version) for ev in batch.events]
            position = batch.last_position
    assert seen == [(s, v) for s, v, _ in expected]
    assert position == expected[-1][2]


async def _rebuilt(store: EventStore) -> dict[str, list[dict[str, object]]]:
    await Projector(store, batch_size=29).rebuild()
    return await dump_views(store.pool)


@pytest.mark.parametrize("snapshot_every", [3, 64])
async def test_crash_inside_a_batch_then_restart_equals_rebuild(
    store: EventStore, db_pool: asyncpg.Pool, cohort: CohortSim, snapshot_every: int
) -> None:
    class Crash(RuntimeError):
        pass

    async def crash_on_third(info: BatchInfo) -> None:
        if info.number == 3 and info.events:
            raise Crash("power cut between writing the views and moving the checkpoint")

    projector = Projector(store, batch_size=41, snapshot_every=snapshot_every,
                          before_commit=crash_on_third)
    with pytest.raises(Crash):
        await projector.catch_up()
    # Exactly the two committed batches are in: views and checkpoint rolled back together.
    _, _, applied = await checkpoint(db_pool)
    assert applied == 82
    assert await db_pool.fetchval("SELECT max(stream_version) FROM pairing_view") <= 82

    # A new process (cold cache) resumes from the checkpoint: rows come back from the views
    # and trailing snapshots are refolded from the store.
    resumed = Projector(store, batch_size=41, snapshot_every=snapshot_every)
    assert await resumed.catch_up() == sum(len(d.events) for d in cohort.all_decisions()) - 82
    after_restart = await dump_views(db_pool)
    assert after_restart == await _rebuilt(store)
    await assert_rows_equal_fresh_fold(db_pool, store)


async def test_cancelled_at_random_moments_converges_to_rebuild(
    store: EventStore, db_pool: asyncpg.Pool, cohort: CohortSim
) -> None:
    """Cancelled at random points of its progress (not of the wall clock, which a loaded
    machine stretches): inside a batch's transaction, or a moment after a batch committed."""
    rng = random.Random(11)
    total = sum(len(d.events) for d in cohort.all_decisions())
    partial = 0
    for _ in range(60):
        cut_after, inside = rng.randint(1, 3), rng.random() < 0.5
        batches = 0
        reached = asyncio.Event()

        # This iteration's cut point, bound now (the closure must not see the next one's).
        async def cut(info: BatchInfo, cut_after: int = cut_after, inside: bool = inside,
                      reached: asyncio.Event = reached) -> None:
            nonlocal batches
            batches += 1
            if batches >= cut_after:
                reached.set()
                if inside:
                    await asyncio.Event().wait()  # mid-transaction until cancelled

        projector = Projector(store, batch_size=rng.choice((3, 7, 19)),
                              snapshot_every=rng.choice((2, 5, 64)),
                              cache_size=rng.choice((1, 3, 100)), before_commit=cut)
        task = asyncio.create_task(projector.run(poll_interval=0.01))
        waiting = asyncio.create_task(reached.wait())
        for _ in range(1200):  # until the cut point, or the end of the log came first
            done, _ = await asyncio.wait([task, waiting], timeout=0.05)
            if done or (await checkpoint(db_pool))[2] == total:
                break
        if not inside:
            await asyncio.sleep(rng.uniform(0, 0.005))  # somewhere into the next batch
        task.cancel()
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        applied = (await checkpoint(db_pool))[2]
        if applied == total:
            break
        partial += 0 < applied
    assert partial >= 2  # it was cut off part way, more than once
    await Projector(store, batch_size=13).catch_up()
    assert (await checkpoint(db_pool))[2] == total
    assert await dump_views(db_pool) == await _rebuilt(store)


async def test_interrupted_rebuild_resumes_from_its_checkpoint(
    store: EventStore, db_pool: asyncpg.Pool, cohort: CohortSim
) -> None:
    await Projector(store).catch_up()
    complete = await dump_views(db_pool)

    class Killed(RuntimeError):
        pass

    async def fail_fourth(info: BatchInfo) -> None:
        if info.number == 4:
            raise Killed("the rebuilding process dies")

    with pytest.raises(Killed):
        await Projector(store, rebuild_batch_size=31, before_commit=fail_fourth).rebuild()
    status = await projection_status(db_pool)
    assert status.rebuild_interrupted and status.events_applied == 93
    assert await db_pool.fetchval("SELECT count(*) FROM pairing_view") < 6

    await Projector(store).catch_up()
    assert await dump_views(db_pool) == complete


async def test_two_projectors_of_one_name_do_not_double_apply(
    store: EventStore, db_pool: asyncpg.Pool, cohort: CohortSim
) -> None:
    first, second = Projector(store, batch_size=9), Projector(store, batch_size=11)
    await asyncio.gather(first.catch_up(), second.catch_up(), first.catch_up())
    total = sum(len(d.events) for d in cohort.all_decisions())
    assert (await checkpoint(db_pool))[2] == total
    assert await dump_views(db_pool) == await _rebuilt(store)


async def test_follows_appends_while_running(
    store: EventStore, db_pool: asyncpg.Pool, cohort: CohortSim
) -> None:
    stop = asyncio.Event()
    projector = Projector(store, batch_size=25)
    task = asyncio.create_task(projector.run(poll_interval=0.02, stop_event=stop))
    later = sample_cohort("C2", seed=3)
    # A second cohort arrives while the projector runs, one decision at a time.
    appended = await append_decisions(store, later.all_decisions())
    await past_horizon(db_pool)
    total = appended + sum(len(d.events) for d in cohort.all_decisions())
    for _ in range(500):
        if (await projection_status(db_pool)).events_applied == total:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    assert (await projection_status(db_pool)).events_behind == 0
    assert await assert_rows_equal_fresh_fold(db_pool, store) == 12
    assert await dump_views(db_pool) == await _rebuilt(store)


async def test_eviction_and_reload_change_nothing(
    store: EventStore, db_pool: asyncpg.Pool, cohort: CohortSim
) -> None:
    # One pairing in memory at a time: every batch reloads rows and refolds snapshots.
    await Projector(store, batch_size=17, cache_size=1, snapshot_every=4).catch_up()
    assert await dump_views(db_pool) == await _rebuilt(store)


async def test_a_long_open_pairing_is_snapshotted_and_resumed(
    store: EventStore, db_pool: asyncpg.Pool
) -> None:
    sim = CohortSim("C3")
    sim.begin([("M1", "E1", 0.9)])
    pairing = sim.launch("M1", "E1", 0.9)
    completed_pairing(pairing)
    decisions = sim.all_decisions()
    half = len(decisions) // 2
    versions: dict[str, int] = {}
    await append_decisions(store, decisions[:half], versions)
    await past_horizon(db_pool)
    await Projector(store, snapshot_every=1000).catch_up()
    # Caught up: the snapshot is current even though snapshot_every was never reached.
    version = await db_pool.fetchval("SELECT stream_version FROM pairing_view")
    assert await db_pool.fetchval("SELECT version FROM pairing_snapshots") == version
    await append_decisions(store, decisions[half:], versions)
    await past_horizon(db_pool)
    await Projector(store).catch_up()  # a new process: resumes from the stored snapshot
    await assert_rows_equal_fresh_fold(db_pool, store)
    assert await db_pool.fetchval("SELECT phase FROM pairing_view") == "completed"
    assert pairing.state.started_at is not None
    assert await db_pool.fetchval("SELECT ended_at FROM pairing_view") == (
        pairing.state.completed_at)
    assert pairing.state.completed_at - pairing.state.started_at > timedelta(days=182)
