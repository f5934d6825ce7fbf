"""Two real worker processes (``python -m worker``) on one task queue, through whole pairing
lives, with one of them replaced midway as in a rolling deploy: nothing is done twice.

Each worker serves its own metrics endpoint, so the test also knows who did what: the events
each process appended add up to exactly the events in the store, and more than one process
ran workflow tasks.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from domain.ids import pairing_stream
from domain.pairing import Phase
from tests.test_metrics import scrape
from tests.workflows.harness import drive_weekly_lifecycle, start_pairing, store_for

pytestmark = pytest.mark.temporal
ROOT = Path(__file__).resolve().parents[2]
PAIRINGS = 3
RESTART_AT_MEETING = 6


class WorkerProcess:
    def __init__(self, proc: asyncio.subprocess.Process, metrics: str) -> None:
        self.proc = proc
        self.metrics = metrics
        self.last_scrape: list[tuple[str, dict[str, str], float]] = []

    async def read_metrics(self) -> list[tuple[str, dict[str, str], float]]:
        self.last_scrape = await asyncio.to_thread(scrape, self.metrics)
        return self.last_scrape

    def total(self, name: str) -> float:
        return sum(v for n, _, v in self.last_scrape if n == name)

    async def stop(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)  # graceful: finish, report, exit 0
        return await asyncio.wait_for(self.proc.wait(), 60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def spawn(temporal_env: Any, task_queue: str, dsn: str, state_dir: Path) -> WorkerProcess:
    metrics = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TEMPORAL_", "SEBAYA_"))}
    env.update(SEBAYA_DATABASE_URL=dsn, SEBAYA_TASK_QUEUE=task_queue,
               TEMPORAL_ADDRESS=temporal_env.client.service_client.config.target_host,
               TEMPORAL_NAMESPACE=temporal_env.client.namespace,
               SEBAYA_METRICS_ADDRESS=metrics, SEBAYA_LOG_FORMAT="json",
               SEBAYA_STATE_DIR=str(state_dir))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    while True:
        line = await asyncio.wait_for(proc.stderr.readline(), 60)
        assert line, f"worker exited before starting (code {await proc.wait()})"
        if b"worker starting" in line:
            break
    # Drain the log so the pipe never fills up and blocks the worker.
    asyncio.get_running_loop().create_task(_drain(proc.stderr))
    return WorkerProcess(proc, metrics)


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


@pytest.mark.slow
async def test_two_workers_on_one_queue_do_nothing_twice(
    temporal_env: Any, db_dsn: str, db_pool: asyncpg.Pool, task_queue: str, tmp_path: Path
) -> None:
    store = store_for(db_pool)
    first = await spawn(temporal_env, task_queue, db_dsn, tmp_path)
    second = await spawn(temporal_env, task_queue, db_dsn, tmp_path)
    workers = [first, second]
    restarted = asyncio.Event()
    parked = 0

    async def rolling_restart(meeting_no: int) -> None:
        # Once, midway, while every pairing is parked before the same meeting (so nothing is
        # appended between the scrape and the stop): replace the busier worker, so its
        # pairings finish their lives on the other one.
        nonlocal parked
        if meeting_no != RESTART_AT_MEETING:
            return
        parked += 1
        if parked < PAIRINGS:
            await restarted.wait()
            return
        live = [w for w in workers if w.proc.returncode is None]
        for w in live:
            await w.read_metrics()
        busiest = max(live, key=lambda w: w.total(
            "temporal_workflow_task_execution_latency_count"))
        assert await busiest.stop() == 0
        workers.append(await spawn(temporal_env, task_queue, db_dsn, tmp_path))
        restarted.set()

    try:
        handles = [await start_pairing(temporal_env.client, task_queue)
                   for _ in range(PAIRINGS)]
        outcomes = await asyncio.gather(*(
            drive_weekly_lifecycle(temporal_env, h, between_meetings=rolling_restart)
            for h in handles))
        for w in workers:
            if w.proc.returncode is None:
                await w.read_metrics()
    finally:
        codes = [await w.stop() for w in workers]
    assert restarted.is_set() and len(workers) == 3
    assert codes == [0, 0, 0]

    total_events = 0
    for outcome in outcomes:
        assert outcome.phase is Phase.COMPLETED
        stream = pairing_stream(outcome.pairing_id)
        records = await store.read_stream(stream)
        total_events += len(records)
        assert [r.version for r in records] == list(range(1, len(records) + 1))
        assert len({r.event_id for r in records}) == len(records)
        types = collections.Counter(r.type for r in records)
        assert types["PairingMatched"] == 1 and types["PairingCompleted"] == 1
        assert types["GoalsSet"] == 2 and types["MeetingHeld"] == outcome.meetings_held
        assert types["MidpointReviewSubmitted"] == 2
        assert types["FinalEvaluationSubmitted"] == 2
        assert (await store.verify([stream])).ok

    rows = await db_pool.fetch("SELECT template, attempts, status FROM deliveries")
    assert rows and all(r["attempts"] == 1 and r["status"] == "sent" for r in rows), rows
    reminder_events = await db_pool.fetchval(
        "SELECT count(*) FROM events WHERE type = 'ReminderSent' "
        "AND payload->>'kind' = 'meeting'")
    assert sum(r["template"] == "reminder_meeting" for r in rows) == 2 * reminder_events > 0

    # Who did what: every event was appended by exactly one process, and the work was shared.
    appended = [w.total("sebaya_events_appended_total") for w in workers]
    assert sum(appended) == total_events == await db_pool.fetchval(
        "SELECT count(*) FROM events"), appended
    ran_tasks = [w.total("temporal_workflow_task_execution_latency_count") for w in workers]
    assert sum(1 for n in ran_tasks if n > 0) >= 2, ran_tasks
    print(f"events appended per worker {appended}; workflow tasks per worker {ran_tasks}")
