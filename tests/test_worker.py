"""The worker entry point, with a tiny workflow and activity of its own (not Sebaya's).

Runs against the session Temporal dev server (``temporal_env``) and the session Postgres server;
no event-store migration is needed because the tiny activity only asks Postgres for ``now()``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.testing import ActivityEnvironment

with workflow.unsafe.imports_passed_through():
    import asyncpg
    import structlog
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
    from temporalio.client import Client

    import worker as worker_module
    from sebaya.settings import Settings


class GreetInput(BaseModel):
    name: str
    linger_seconds: float = 0.0


class GreetResult(BaseModel):
    greeting: str
    context: dict[str, Any]


class TinyActivities:
    """Infrastructure injected like the real activities; records what happened for the test."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.started = asyncio.Event()
        self.finished = 0

    @activity.defn(name="tiny_greet")
    async def greet(self, inp: GreetInput) -> GreetResult:
        self.started.set()
        if inp.linger_seconds:
            await asyncio.sleep(inp.linger_seconds)
        year = await self.pool.fetchval("SELECT extract(year FROM now())::int")
        self.finished += 1
        return GreetResult(
            greeting=f"hello {inp.name} ({year > 2000})",
            context=dict(structlog.contextvars.get_contextvars()),
        )


@workflow.defn(name="TinyGreet")
class TinyGreetWorkflow:
    @workflow.run
    async def run(self, inp: GreetInput) -> GreetResult:
        return await workflow.execute_activity(
            "tiny_greet",
            inp,
            result_type=GreetResult,
            start_to_close_timeout=timedelta(seconds=30),
        )


@pytest_asyncio.fixture
async def pool(pg_server_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(pg_server_dsn, min_size=1, max_size=4)
    assert created is not None
    try:
        yield created
    finally:
        await created.close()


def _settings(task_queue: str) -> Settings:
    return Settings(task_queue=task_queue)


async def _stop_worker(task: asyncio.Task[None], stop: asyncio.Event) -> None:
    stop.set()
    await asyncio.wait_for(task, timeout=60)


async def test_interceptor_binds_activity_identity_and_restores_context() -> None:
    seen: dict[str, Any] = {}

    class Next:
        async def execute_activity(self, _input: object) -> str:
            seen.update(structlog.contextvars.get_contextvars())
            return "done"

    # The SDK's activity environment: activity.info() inside is the info we give it.
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        ActivityEnvironment.default_info(),
        workflow_id="wf-1",
        workflow_run_id="run-1",
        activity_type="tiny",
        activity_id="7",
        attempt=2,
    )
    inbound = worker_module.ActivityContextInterceptor().intercept_activity(Next())  # type: ignore[arg-type]

    async def through_the_interceptor() -> dict[str, Any]:
        assert await inbound.execute_activity(None) == "done"  # type: ignore[arg-type]
        # Read in the same task: the environment runs us in a task of our own, whose context
        # the interceptor must leave as it found it.
        return dict(structlog.contextvars.get_contextvars())

    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(task_queue="tq")
    try:
        after = await env.run(through_the_interceptor)
    finally:
        structlog.contextvars.clear_contextvars()

    assert seen == {
        "task_queue": "tq",
        "workflow_id": "wf-1",
        "run_id": "run-1",
        "activity_type": "tiny",
        "activity_id": "7",
        "attempt": 2,
    }
    assert after == {"task_queue": "tq"}


@pytest.mark.temporal
async def test_worker_runs_a_workflow_with_pydantic_payloads(
    temporal_env: Any, pool: asyncpg.Pool, task_queue: str
) -> None:
    client: Client = temporal_env.client
    acts = TinyActivities(pool)
    stop = asyncio.Event()
    task = asyncio.create_task(
        worker_module.run_worker(
            client,
            _settings(task_queue),
            [acts.greet],
            workflows=[TinyGreetWorkflow],
            stop=stop,
        )
    )
    try:
        wf_id = f"tiny-{uuid.uuid4().hex[:8]}"
        result = await client.execute_workflow(
            TinyGreetWorkflow.run,
            GreetInput(name="Ayu"),
            id=wf_id,
            task_queue=task_queue,
            execution_timeout=timedelta(seconds=60),
        )
    finally:
        await _stop_worker(task, stop)

    assert isinstance(result, GreetResult)  # the pydantic converter rebuilt the model
    assert result.greeting == "hello Ayu (True)"
    # The interceptor bound the activity's identity for everything it logs.
    assert result.context["workflow_id"] == wf_id
    assert result.context["activity_type"] == "tiny_greet"
    assert result.context["attempt"] == 1
    assert task.done() and task.exception() is None


@pytest.mark.temporal
async def test_stop_lets_the_running_activity_finish(
    temporal_env: Any, pool: asyncpg.Pool, task_queue: str
) -> None:
    client: Client = temporal_env.client
    acts = TinyActivities(pool)
    stop = asyncio.Event()
    settings = _settings(task_queue)
    task = asyncio.create_task(
        worker_module.run_worker(
            client,
            settings,
            [acts.greet],
            workflows=[TinyGreetWorkflow],
            stop=stop,
        )
    )
    handle = await client.start_workflow(
        TinyGreetWorkflow.run,
        GreetInput(name="Budi", linger_seconds=1.5),
        id=f"tiny-{uuid.uuid4().hex[:8]}",
        task_queue=task_queue,
        execution_timeout=timedelta(seconds=120),
    )
    try:
        await asyncio.wait_for(acts.started.wait(), timeout=30)
        # What SIGTERM does in the real process: set the stop event mid-activity.
        await _stop_worker(task, stop)
    finally:
        if not task.done():
            await _stop_worker(task, stop)
    assert task.exception() is None  # returned cleanly
    assert acts.finished == 1  # the in-flight activity ran to completion, not cancelled

    # Its result reached the server: a fresh worker only has to finish the workflow.
    stop2 = asyncio.Event()
    task2 = asyncio.create_task(
        worker_module.run_worker(
            client,
            settings,
            [acts.greet],
            workflows=[TinyGreetWorkflow],
            stop=stop2,
        )
    )
    try:
        result = await asyncio.wait_for(handle.result(), timeout=60)
    finally:
        await _stop_worker(task2, stop2)
    assert result.greeting == "hello Budi (True)"
    assert acts.finished == 1  # not retried


# ---------------------------------------------------------------------------------------------
# The real process: `serve()` with signals, JSON logs, services from the environment.
# ---------------------------------------------------------------------------------------------

TINY_MODULE = """
from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    import structlog


@activity.defn(name="tiny_echo")
async def echo(text: str) -> str:
    structlog.get_logger("tiny").info("echoing", text=text)
    return text.upper()


@workflow.defn(name="TinyEcho")
class TinyEcho:
    @workflow.run
    async def run(self, text: str) -> str:
        return await workflow.execute_activity(
            echo, text, start_to_close_timeout=timedelta(seconds=30)
        )
"""

RUNNER = """
import asyncio

import worker
from tiny_wf import TinyEcho, echo

asyncio.run(worker.serve(workflows=[TinyEcho], activities=[echo]))
"""


def write_tiny_worker(folder: Path) -> list[str]:
    """A worker process command serving only the tiny echo workflow (used by devstack tests too)."""
    (folder / "tiny_wf.py").write_text(textwrap.dedent(TINY_MODULE))
    (folder / "run_tiny_worker.py").write_text(textwrap.dedent(RUNNER))
    return [sys.executable, str(folder / "run_tiny_worker.py")]


async def wait_for_poller(client: Client, task_queue: str, pid: int) -> None:
    """Until Temporal lists a workflow poller from process ``pid`` on ``task_queue``."""

    async def polling() -> bool:
        resp = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        return any(p.identity.startswith(f"{pid}@") for p in resp.pollers)

    async with asyncio.timeout(60):
        while True:
            if await polling():
                return
            await asyncio.sleep(0.3)


def spawn_logged(
    cmd: list[str], env: dict[str, str], cwd: Path, log_path: Path
) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)


@pytest.mark.temporal
async def test_worker_process_serves_and_exits_zero_on_sigterm(
    temporal_env: Any, pg_server_dsn: str, task_queue: str, tmp_path: Path
) -> None:
    client: Client = temporal_env.client
    cmd = write_tiny_worker(tmp_path)
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": client.namespace,
        "SEBAYA_DATABASE_URL": pg_server_dsn,
        "SEBAYA_TASK_QUEUE": task_queue,
        "SEBAYA_STATE_DIR": str(tmp_path / "state"),
        "SEBAYA_LOG_FORMAT": "auto",  # stderr is a pipe, so this must pick JSON
    }
    log_path = tmp_path / "worker.log"
    proc = spawn_logged(cmd, env, tmp_path, log_path)
    try:
        await wait_for_poller(client, task_queue, proc.pid)
        wf_id = f"echo-{uuid.uuid4().hex[:8]}"
        result = await client.execute_workflow(
            "TinyEcho",
            "selamat pagi",
            id=wf_id,
            task_queue=task_queue,
            result_type=str,
            execution_timeout=timedelta(seconds=60),
        )
        assert result == "SELAMAT PAGI"

        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log_path.read_text()
    assert code == 0, output

    events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    by_event = {e["event"]: e for e in events}
    # Activity log lines carry the ids bound by the interceptor, plus the worker's own context.
    echo_line = by_event["echoing"]
    assert echo_line["workflow_id"] == wf_id
    assert echo_line["activity_type"] == "tiny_echo"
    assert echo_line["task_queue"] == task_queue
    assert by_event["signal received, stopping gracefully"]["signal"] == "SIGTERM"
    assert "worker stopped" in by_event
