"""A simulation stopped part-way and resumed on the same cohort with the same seed ends as an
uninterrupted one: the same streams, the same event types in the same order (and the same
payloads, timestamps aside), the same pairing phases, nothing doubled. Real Temporal dev
server, real Postgres, the real worker.

Both cohorts run at once on one worker (different ids, one seed): the seed alone fixes the
program (tests/test_demo_reproducible.py), so the uninterrupted one is the reference.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.testing import TimeSkipper, TimeSkippingConfig

from domain.ids import pairing_workflow_id
from sebaya.operations import start_cohort
from sebaya.simulation import CohortSimulation
from tests.test_demo_reproducible import _program, small_roster
from tests.workflows.harness import running_worker
from workflows.cohort import CohortResult
from workflows.pairing import PairingWorkflow

pytestmark = pytest.mark.temporal

SEED = 11
# Stop once this many participant actions went through: past goal setting and the first
# exits, well before the end (an uninterrupted run sends about 150).
STOP_AFTER = 40


async def _phases(client: Client, pool: asyncpg.Pool, cohort_id: str) -> dict[str, str]:
    streams = await pool.fetch(
        "SELECT stream_id FROM streams WHERE stream_id LIKE $1 ORDER BY stream_id",
        f"pairing-{cohort_id}.%")
    phases = {}
    for row in streams:
        pairing_id = row["stream_id"].removeprefix("pairing-")
        state = await client.get_workflow_handle(pairing_workflow_id(pairing_id)).query(
            PairingWorkflow.state)
        phases[pairing_id.replace(cohort_id, "<cohort>")] = state.phase.value
    return phases


@pytest.mark.slow
async def test_a_stopped_simulation_resumes_to_the_same_program(
    temporal_env, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    program, people = small_roster()
    skipper = TimeSkipper(temporal_env.client, config=TimeSkippingConfig(enabled=False))
    reference_id, resumed_id = (f"{name}-{uuid.uuid4().hex[:6]}" for name in ("ref", "res"))

    def simulation(cohort_id: str) -> CohortSimulation:
        return CohortSimulation(skipper.client, skipper, cohort_id, seed=SEED, pool=db_pool,
                                say=lambda _line: None)

    async def interrupted_then_resumed() -> CohortResult:
        first = simulation(resumed_id)
        run = asyncio.create_task(first.run())
        while first.log.updates_sent < STOP_AFTER:
            assert not run.done(), "the cohort ended before the simulation could be stopped"
            await asyncio.sleep(0.1)  # wall-clock poll of the simulator's progress
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
        second = simulation(resumed_id)
        return await second.run()

    async with running_worker(skipper.client, db_pool, task_queue):
        for cohort_id in (reference_id, resumed_id):
            await start_cohort(db_pool, skipper.client, program=program, people=people,
                               task_queue=task_queue, cohort_id=cohort_id, started_by="test")
        reference = simulation(reference_id)
        expected, got = await asyncio.gather(reference.run(), interrupted_then_resumed())
        assert (got.launched, got.completed, got.exited, got.rematched) == (
            expected.launched, expected.completed, expected.exited, expected.rematched)
        assert expected.exited >= 1 and expected.rematched >= 1  # the stories ran
        assert await _phases(skipper.client, db_pool, resumed_id) == await _phases(
            skipper.client, db_pool, reference_id)

    want = await _program(db_pool, reference_id)
    have = await _program(db_pool, resumed_id)
    assert list(have) == list(want)
    for stream, events in want.items():
        assert [t for t, _ in have[stream]] == [t for t, _ in events], stream
    differences = [f"{stream} event {n}: {one} != {two}"
                   for stream, events in want.items()
                   for n, (one, two) in enumerate(zip(events, have[stream], strict=True), 1)
                   if one != two]
    assert not differences, "\n".join(differences[:12])
    duplicated = await db_pool.fetchval(
        "SELECT count(*) FROM (SELECT event_id FROM events WHERE stream_id LIKE $1 "
        "GROUP BY event_id HAVING count(*) > 1) d", f"%{resumed_id}%")
    assert duplicated == 0
