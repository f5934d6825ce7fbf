"""Kill the worker in the middle of a lifecycle; the pairing still completes exactly once."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import sys
from pathlib import Path

import asyncpg
import pytest

from domain.ids import pairing_stream
from domain.pairing import Phase
from tests.workflows.harness import (
    drive_weekly_lifecycle,
    start_pairing,
    started_state,
    store_for,
)

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
