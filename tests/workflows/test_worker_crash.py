"""Kill the worker in the middle of a lifecycle; the pairing still completes exactly once."""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import signal
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus

from domain import commands as c
from domain import events as e
from domain.ids import pairing_stream
from domain.pairing import Phase, fold
from eventstore import EventMetadata, NewEvent
from tests.workflows.harness import (
    HOUR,
    MENTEE_ACTOR,
    MENTOR_ACTOR,
    advance_to,
    decode_all,
    drive_weekly_lifecycle,
    goals,
    maybe_record_history,
    running_worker,
    start_pairing,
    started_state,
    store_for,
)
from workflows.pairing import PairingWorkflow

pytestmark = pytest.mark.temporal
ROOT = Path(__file__).resolve().parents[2]


async def spawn_worker(temporal_env, task_queue: str, dsn: str,
                       crash_after: int = 0) -> asyncio.subprocess.Process:
    target = temporal_env.client.service_client.config.target_host
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.workflows.crash_worker", "--address", target,
        "--task-queue", task_queue, "--dsn", dsn, "--crash-after-append", str(crash_after),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "SEBAYA_LOG_FORMAT": "json"},
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    assert b"polling" in line, line
    return proc


@pytest.mark.slow
async def test_worker_killed_mid_lifecycle_completes_without_duplicates(
    temporal_env, db_dsn: str, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    store = store_for(db_pool)
    # Worker 1 dies right after its 4th append commits, before Temporal learns of it.
    worker = await spawn_worker(temporal_env, task_queue, db_dsn, crash_after=4)
    workers = [worker]

    async def chaos(meeting_no: int) -> None:
        nonlocal worker
        if worker.returncode is not None or meeting_no in (9, 17):
            if worker.returncode is None:
                worker.send_signal(signal.SIGKILL)  # no graceful shutdown, no goodbye
            await worker.wait()
            worker = await spawn_worker(temporal_env, task_queue, db_dsn)
            workers.append(worker)

    try:
        handle = await start_pairing(temporal_env.client, task_queue)
        state = await started_state(handle)
        # The crash happens during the first meetings; the chaos hook replaces the dead worker.
        driver = asyncio.create_task(
            drive_weekly_lifecycle(temporal_env, handle, between_meetings=chaos))
        while not driver.done():
            if worker.returncode is not None:
                await chaos(0)
            await asyncio.sleep(0.2)  # real-time watchdog poll, not a workflow timer
        outcome = driver.result()
    finally:
        for proc in workers:
            if proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
                await proc.wait()

    assert outcome.phase is Phase.COMPLETED
    assert workers[0].returncode == 137, "the first worker should have crashed mid-append"
    assert len(workers) >= 4
    records = await store.read_stream(pairing_stream(state.pairing_id))
    assert [r.version for r in records] == list(range(1, len(records) + 1))
    assert len({r.event_id for r in records}) == len(records)
    types = collections.Counter(r.type for r in records)
    assert types["PairingMatched"] == 1 and types["PairingCompleted"] == 1
    assert types["GoalsSet"] == 2 and types["MeetingHeld"] == outcome.meetings_held
    assert (await store.verify([pairing_stream(state.pairing_id)])).ok

    rows = await db_pool.fetch("SELECT idempotency_key, template, attempts, status FROM deliveries")
    assert rows and all(r["attempts"] == 1 and r["status"] == "sent" for r in rows), rows
    reminders = [r for r in rows if r["template"] == "reminder_meeting"]
    # Every meeting reminder event reached both people exactly once.
    assert len(reminders) == 2 * sum(
        1 for r in records if r.type == "ReminderSent" and r.payload["kind"] == "meeting")


async def test_update_carried_by_the_retried_task_adopts_what_the_crashed_worker_wrote(
    temporal_env, db_dsn: str, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    """Issue 13: the worker dies right after appending a timer's reminder; the retried task
    also carries a participant's update, so the workflow proposes a longer batch than the one
    stored. The pairing must adopt the stored reminder and record the update on top of it,
    at the first retry, instead of parking."""
    store = store_for(db_pool)
    # Appends: 1 the match, 2 and 3 the two goal sets, 4 the first meeting's reminder.
    worker = await spawn_worker(temporal_env, task_queue, db_dsn, crash_after=4)
    workers = [worker]
    try:
        handle = await start_pairing(temporal_env.client, task_queue)
        state = await started_state(handle)
        stream = pairing_stream(state.pairing_id)
        await advance_to(temporal_env, handle, state.started_at + HOUR)
        for who, prefix in ((MENTEE_ACTOR, "it"), (MENTOR_ACTOR, "lead")):
            await handle.execute_update(PairingWorkflow.set_goals,
                                        c.SetGoals(actor=who, goals=goals(prefix)))
        pending = (await handle.query(PairingWorkflow.state)).next_meeting
        assert pending is not None
        # Fires the reminder timer: the worker appends the reminder, then dies. The
        # fast-forward only returns once a live worker has handled the timer.
        reminder_at = state.rules.reminder_at(pending.scheduled_at)
        forward = asyncio.create_task(
            advance_to(temporal_env, handle, reminder_at + timedelta(minutes=1)))
        assert await asyncio.wait_for(worker.wait(), 60) == 137
        records = await store.read_stream(stream)
        assert records[-1].type == "ReminderSent" and records[-1].payload["kind"] == "meeting"
        reminder_version = records[-1].version

        # The update reaches the server while the dead worker's task is still timing out, so
        # the retried task carries both the timer and the update.
        update = asyncio.create_task(handle.execute_update(
            PairingWorkflow.log_meeting,
            c.LogMeeting(actor=MENTEE_ACTOR, meeting_no=pending.meeting_no, held=True,
                         topics=("karier",), goal_progress={"it-1": 10})))
        await asyncio.sleep(1)  # real time for the request to reach the server, not a timer
        workers.append(await spawn_worker(temporal_env, task_queue, db_dsn))
        # One task retry (the 10 s task timeout of the dead worker) and no more.
        result = await asyncio.wait_for(update, 60)
        await asyncio.wait_for(forward, 60)
        assert "MeetingHeld" in result.events
        assert "ReminderSent" not in result.events, "the stored reminder is not re-proposed"

        records = await store.read_stream(stream)
        assert [r.version for r in records] == list(range(1, len(records) + 1))
        assert [r.type for r in records[reminder_version - 1:]] == [
            "ReminderSent", "MeetingHeld", "MeetingScheduled"]
        assert (await store.verify([stream])).ok
        now_state = await handle.query(PairingWorkflow.state)
        assert now_state == fold(decode_all(records))

        history = await handle.fetch_history()
        kinds = [ev.event_type for ev in history.events]
        assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in kinds, "the pairing was parked"

        # The crashed worker appended the reminder but never delivered it: the adopting task
        # delivers it, once per person.
        rows = await db_pool.fetch(
            "SELECT idempotency_key, attempts, status FROM deliveries WHERE template = $1",
            "reminder_meeting")
        reminder_id = str(records[reminder_version - 1].event_id)
        sent = [r for r in rows if r["idempotency_key"].startswith(reminder_id)]
        assert len(sent) == 2 and all(r["status"] == "sent" for r in sent), rows

        await handle.execute_update(PairingWorkflow.request_exit, c.RequestExit(
            actor=c.Actor.ops("ops-test"), reason=e.ExitReason.OTHER))
        await handle.result()
        await maybe_record_history(handle, "crash_reminder_then_update_adopted")
    finally:
        for proc in workers:
            if proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
                await proc.wait()


async def test_a_foreign_event_in_the_stream_parks_the_pairing_and_says_so(
    temporal_env, db_pool: asyncpg.Pool, task_queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Another writer's event at the pairing's next version cannot be adopted: the workflow
    task fails (the pairing stays Running, visibly parked) and the worker logs an ERROR that
    names the pairing."""
    store = store_for(db_pool)
    caplog.set_level(logging.ERROR, logger="temporalio.workflow")
    async with running_worker(temporal_env.client, db_pool, task_queue):
        handle = await start_pairing(temporal_env.client, task_queue)
        state = await started_state(handle)
        stream = pairing_stream(state.pairing_id)
        intruder = e.PairingNudged(consecutive_missed=1)
        await store.append(stream, state.version, [NewEvent(
            event_id=uuid.uuid4(), type=intruder.event_type,
            schema_version=intruder.schema_version, payload=intruder.model_dump(mode="json"),
            metadata=EventMetadata(actor="ops:intruder", occurred_at=state.started_at),
        )])
        update = asyncio.create_task(handle.execute_update(
            PairingWorkflow.set_goals, c.SetGoals(actor=MENTEE_ACTOR, goals=goals("it"))))
        try:
            for _ in range(300):
                history = await handle.fetch_history()
                failed = [ev for ev in history.events
                          if ev.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
                if failed:
                    break
                await asyncio.sleep(0.1)  # real-time poll of the server, not a workflow timer
            assert failed, "the workflow task never failed"
            message = failed[0].workflow_task_failed_event_attributes.failure.message
            assert "parked" in message and "WrongExpectedVersion" in message, message
            described = await handle.describe()
            assert described.status == WorkflowExecutionStatus.RUNNING
            errors = [r for r in caplog.records if r.levelno == logging.ERROR
                      and "parked" in r.getMessage()]
            assert errors and state.pairing_id in errors[0].getMessage()
            assert getattr(errors[0], "pairing_id", None) == state.pairing_id
            # Nothing of the refused decision reached the store.
            assert [r.type for r in await store.read_stream(stream)][-1] == "PairingNudged"
        finally:
            update.cancel()
            await handle.terminate("test over")
