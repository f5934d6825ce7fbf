"""An append the store refuses parks the cohort's workflow task; the cohort is not failed.

Someone (a script, a second writer) puts an event into a running cohort's stream at the version
the workflow is about to take. The workflow's next append is refused (WrongExpectedVersion):
(or EventIdConflict: the ids derive from the version, so the intruder took the workflow's id):
it must log the cohort at ERROR and fail its *task*, so the cohort stays Running, retries, and
shows the failure in its history until the stream is repaired, instead of failing a cohort
that may hold 10,000 people.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle

from activities.envelope import envelopes
from domain import cohort_events as ce
from domain.cohort import CohortPhase
from domain.ids import cohort_stream
from intake import load_program
from tests.workflows.harness import advance_to, running_worker, store_for
from tests.workflows.test_cohort import start_cohort, tiny_cohort, wait_for

pytestmark = pytest.mark.temporal
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def first_task_failure(handle: WorkflowHandle[Any, Any]) -> str:
    for _ in range(400):
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                return str(event.workflow_task_failed_event_attributes.failure.message)
        await asyncio.sleep(0.05)  # real-time poll for the worker's task, not a workflow timer
    raise AssertionError("no workflow task failed")


async def test_a_conflicting_event_parks_the_cohort_task_instead_of_failing_it(
    temporal_env: Any, db_pool: asyncpg.Pool, task_queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    env = temporal_env
    program = load_program(EXAMPLES / "program.yaml")
    store = store_for(db_pool)
    async with running_worker(env.client, db_pool, task_queue):
        handle = await start_cohort(env.client, db_pool, task_queue, program, tiny_cohort())
        state = await wait_for(handle, lambda s: s.phase is CohortPhase.SCHEDULED, "approved")
        stream = cohort_stream(state.cohort_id)

        # Another writer takes the next version while the cohort waits for the start date.
        intruder = envelopes(stream, state.version, [ce.ParticipantLeft(
            employee_id="E1", left_on=date(2027, 1, 10), recorded_by="a stray script")],
            ["ops:stray-script"], occurred_at=state.starts_at - timedelta(days=1),
            workflow_id="none", run_id="none", correlation_id=state.cohort_id)
        await store.append(stream, state.version, intruder)

        with caplog.at_level(logging.ERROR):
            # The start date: the pairings are launched, then their launch cannot be recorded.
            # (A fast-forward completes once the workflow is idle, which a parked one never
            # is: it runs in the background until the cohort is terminated below.)
            skipping = asyncio.create_task(
                advance_to(env, handle, state.starts_at + timedelta(minutes=1)))
            failure = await first_task_failure(handle)
        assert state.cohort_id in failure and "could not append" in failure
        # The intruder took the version (and so the event id) the workflow derived.
        assert "EventIdConflict" in failure or "WrongExpectedVersion" in failure
        logged = [r for r in caplog.records
                  if r.levelno == logging.ERROR and state.cohort_id in r.getMessage()
                  and "could not append" in r.getMessage()]
        assert logged, [r.getMessage() for r in caplog.records]

        # Parked, not failed: still Running (Temporal even refuses queries until the task
        # succeeds), nothing recorded past the divergence, and the retried task fails the same
        # way rather than guessing.
        description = await handle.describe()
        assert description.status is WorkflowExecutionStatus.RUNNING
        types = [ev.event_type async for ev in handle.fetch_history_events()]
        assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED not in types
        records = await store.read_stream(stream)
        assert [r.type for r in records][-1] == "ParticipantLeft"
        assert not any(r.type == "PairingLaunched" for r in records)
        await handle.terminate("test over: the parked cohort is not repaired here")
        await skipping
