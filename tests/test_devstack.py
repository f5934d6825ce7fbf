"""The embedded stack for real: PostgreSQL and the Temporal dev server from the wheels, started
in a temporary state folder on random free ports, inspected, stopped and started again.

Every test tears its stack down even when it fails (see ``make_stack``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import pytest
import pytest_asyncio
from temporalio.api.workflowservice.v1 import ListNamespacesRequest
from temporalio.client import Client
from typer.testing import CliRunner

import sebaya.devstack as devstack
from sebaya.devstack import DevStack, StackStatus, free_port, read_stack_record
from sebaya.runtime import ServicesNotConfigured, resolve_services
from sebaya.settings import Settings


class RecordingMigrator:
    """Records each DSN ``up`` migrates; applies the real migrations when they exist."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        try:
            from eventstore.migrate import migrate
        except ModuleNotFoundError as exc:  # the event store is written in parallel
            if exc.name != "eventstore.migrate":
                raise
            self._real = None
        else:
            self._real = migrate

    async def __call__(self, dsn: str) -> None:
        self.calls.append(dsn)
        if self._real is not None:
            await self._real(dsn)


def _force_down(stack: DevStack) -> None:
    """Best effort, then by force: no server may outlive its test."""
    try:
        stack.down(timeout=20)
    except Exception as exc:  # still clean up below
        print(f"down failed during teardown: {exc!r}", file=sys.stderr)
    leftovers = [p for procs in stack.marked_processes().values() for p in procs]
    server = devstack.find_embedded_postgres(stack.pgdata)
    if server is not None:
        leftovers.append(psutil.Process(server.pid))
    for proc in leftovers:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(leftovers, timeout=10)


StackFactory = Callable[..., DevStack]


@pytest.fixture
def migrator() -> RecordingMigrator:
    return RecordingMigrator()


@pytest.fixture
def state_dir() -> Iterator[Path]:
    # Not under pytest's tmp_path: as root, postgres runs as another account that must traverse
    # every parent folder, and each new pytest session (other suites running concurrently)
    # resets /tmp/pytest-of-<user> to mode 0700.
    root = Path(tempfile.mkdtemp(prefix="sebaya-devstack-"))
    try:
        yield root / "state"
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def make_stack(state_dir: Path, migrator: RecordingMigrator) -> Iterator[StackFactory]:
    made: list[DevStack] = []

    def make(**overrides: Any) -> DevStack:
        worker_command = overrides.pop("worker_command", None)
        # Explicit None so variables of the surrounding shell cannot make services "external".
        values: dict[str, Any] = {
            "state_dir": state_dir,
            "database_url": None,
            "temporal_address": None,
            **overrides,
        }
        stack = DevStack(
            Settings(**values), worker_command=worker_command, migrator=migrator, report=print
        )
        made.append(stack)
        return stack

    try:
        yield make
    finally:
        for stack in made:
            _force_down(stack)


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated process that `down` must leave alone."""
    proc = subprocess.Popen(["sleep", "600"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _ports() -> tuple[int, int, int]:
    ports: set[int] = set()
    while len(ports) < 3:
        ports.add(free_port())
    pg, temporal, ui = sorted(ports)
    return pg, temporal, ui


def _pids(status: StackStatus) -> dict[str, int | None]:
    return {svc.name: svc.pid for svc in status.services}


def _http_status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return int(resp.status)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_up_status_down_and_up_again_keeps_the_data(
    make_stack: StackFactory,
    migrator: RecordingMigrator,
    bystander: subprocess.Popen[bytes],
    state_dir: Path,
) -> None:
    pg_port, temporal_port, ui_port = _ports()
    stack = make_stack()

    status = await asyncio.to_thread(
        stack.up, worker=False, temporal_port=temporal_port, ui_port=ui_port, pg_port=pg_port
    )

    pg, temporal, worker = (status.service(n) for n in ("postgres", "temporal", "worker"))
    assert pg.alive and temporal.alive
    assert worker.state == "not started" and not worker.alive
    assert pg.address == f"127.0.0.1:{pg_port}"
    assert pg.dsn == f"postgresql://postgres@127.0.0.1:{pg_port}/sebaya"
    assert temporal.address == f"127.0.0.1:{temporal_port}"
    assert temporal.ui_url == f"http://127.0.0.1:{ui_port}"
    assert migrator.calls == [pg.dsn]
    assert (state_dir / "pgdata" / "PG_VERSION").exists()
    assert (state_dir / "temporal.db").exists()
    assert {p.name for p in (state_dir / "logs").iterdir()} >= {"postgres.log", "temporal.log"}

    record = read_stack_record(state_dir)
    assert record is not None and record.running
    assert record.postgres is not None and record.temporal is not None
    assert (record.postgres.pid, record.postgres.port) == (pg.pid, pg_port)
    assert (record.temporal.pid, record.temporal.port, record.temporal.ui_port) == (
        temporal.pid,
        temporal_port,
        ui_port,
    )

    # A second `up` finds everything running and starts nothing.
    again = await asyncio.to_thread(stack.up, worker=False)
    assert _pids(again) == _pids(status)

    # `status` from a fresh object (as a new CLI process would) sees the same live processes.
    seen = make_stack().status()
    assert _pids(seen) == _pids(status)
    assert seen.service("postgres").alive and seen.service("temporal").alive

    # The services answer: Temporal lists its namespace, the UI serves, Postgres takes SQL.
    client = await Client.connect(temporal.address or "")
    namespaces = await client.workflow_service.list_namespaces(ListNamespacesRequest())
    assert "default" in {ns.namespace_info.name for ns in namespaces.namespaces}
    assert await asyncio.to_thread(_http_status, temporal.ui_url or "") == 200
    conn = await asyncpg.connect(pg.dsn)
    try:
        await conn.execute("CREATE TABLE survivor (note text)")
        await conn.execute("INSERT INTO survivor VALUES ('still here')")
    finally:
        await conn.close()
    # A workflow with no worker simply waits; it must survive the restart too.
    wf_id = f"parked-{uuid.uuid4().hex[:8]}"
    await client.start_workflow(
        "Parked", id=wf_id, task_queue="nobody-polls", execution_timeout=timedelta(hours=1)
    )

    # Services found through stack.json, as the CLI commands find them.
    services = resolve_services(
        Settings(state_dir=state_dir, database_url=None, temporal_address=None)
    )
    assert (services.database_url, services.temporal_address) == (pg.dsn, temporal.address)

    results = await asyncio.to_thread(stack.down)

    outcomes = {r.name: (r.outcome, r.pids) for r in results}
    assert outcomes == {
        "worker": ("not running", ()),
        "mail": ("stopped", (status.service("mail").pid,)),
        "temporal": ("stopped", (temporal.pid,)),
        "postgres": ("stopped", (pg.pid,)),
    }
    assert pg.pid is not None and temporal.pid is not None
    assert _gone(pg.pid) and _gone(temporal.pid)
    assert bystander.poll() is None, "down must not touch unrelated processes"
    after = stack.status()
    # postgres, temporal, worker, mail, web
    assert [s.state for s in after.services] == [
        "stopped", "stopped", "not started", "stopped", "not started"]
    with pytest.raises(ServicesNotConfigured, match=r"not running.*sebaya dev up"):
        resolve_services(Settings(state_dir=state_dir, database_url=None, temporal_address=None))

    # Up again with no port options: same ports (remembered), same data.
    restarted = await asyncio.to_thread(stack.up, worker=False)
    pg2, temporal2 = restarted.service("postgres"), restarted.service("temporal")
    assert pg2.alive and temporal2.alive
    assert pg2.pid != pg.pid and temporal2.pid != temporal.pid
    assert (pg2.address, temporal2.address, temporal2.ui_url) == (
        pg.address,
        temporal.address,
        temporal.ui_url,
    )
    conn = await asyncpg.connect(pg2.dsn)
    try:
        assert await conn.fetchval("SELECT note FROM survivor") == "still here"
    finally:
        await conn.close()
    client = await Client.connect(temporal2.address or "")
    description = await client.get_workflow_handle(wf_id).describe()
    assert description.workflow_type == "Parked"

    await asyncio.to_thread(stack.down)
    assert bystander.poll() is None


def _wait_gone(pid: int) -> None:
    """Until a killed process is gone (it may be already)."""
    try:
        psutil.wait_procs([psutil.Process(pid)], timeout=10)
    except psutil.NoSuchProcess:
        pass


async def test_leftovers_of_a_crash_are_cleaned_up(
    make_stack: StackFactory, bystander: subprocess.Popen[bytes], state_dir: Path
) -> None:
    pg_port, temporal_port, ui_port = _ports()
    stack = make_stack()
    first = await asyncio.to_thread(
        stack.up, worker=False, temporal_port=temporal_port, ui_port=ui_port, pg_port=pg_port
    )
    pg_pid, temporal_pid = first.service("postgres").pid, first.service("temporal").pid
    assert pg_pid is not None and temporal_pid is not None

    # Temporal dies hard: status tells, and `up` replaces only it.
    os.kill(temporal_pid, signal.SIGKILL)
    _wait_gone(temporal_pid)
    assert stack.status().service("temporal").state == "stopped"
    second = await asyncio.to_thread(stack.up, worker=False)
    assert second.service("temporal").alive
    assert second.service("temporal").pid != temporal_pid
    assert second.service("postgres").pid == pg_pid
    assert second.service("temporal").address == f"127.0.0.1:{temporal_port}"

    # The postmaster dies hard: its stale postmaster.pid must not block the next start.
    os.kill(pg_pid, signal.SIGKILL)
    # As for Temporal above: the signal is delivered, the process gone a moment later.
    _wait_gone(pg_pid)
    assert stack.status().service("postgres").state == "stopped"
    third = await asyncio.to_thread(stack.up, worker=False)
    assert third.service("postgres").alive and third.service("postgres").pid != pg_pid
    await asyncio.to_thread(stack.down)

    # A postmaster.pid naming some unrelated live process (pid reuse after a reboot).
    pidfile = state_dir / "pgdata" / "postmaster.pid"
    pidfile.write_text(
        f"{bystander.pid}\n{state_dir / 'pgdata'}\n0\n{pg_port}\n\n127.0.0.1\n0 0\nready\n"
    )
    assert stack.status().service("postgres").state == "stopped"
    fourth = await asyncio.to_thread(stack.up, worker=False)
    assert fourth.service("postgres").alive
    results = await asyncio.to_thread(stack.down)
    assert {r.name: r.outcome for r in results}["postgres"] == "stopped"
    assert bystander.poll() is None


TINY_MODULE = """
from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="tiny_echo")
async def echo(text: str) -> str:
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


def _tiny_worker_command(folder: Path) -> list[str]:
    """`python -m worker`'s stand-in: the real serve() with a tiny workflow of the test's own."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny_wf.py").write_text(textwrap.dedent(TINY_MODULE))
    (folder / "run_tiny_worker.py").write_text(textwrap.dedent(RUNNER))
    return [sys.executable, str(folder / "run_tiny_worker.py")]


async def test_worker_is_started_checked_restarted_and_stopped(
    make_stack: StackFactory, tmp_path: Path, state_dir: Path
) -> None:
    pg_port, temporal_port, ui_port = _ports()
    task_queue = f"tq-{uuid.uuid4().hex[:8]}"
    stack = make_stack(
        worker_command=_tiny_worker_command(tmp_path / "tiny"), task_queue=task_queue
    )

    status = await asyncio.to_thread(
        stack.up, temporal_port=temporal_port, ui_port=ui_port, pg_port=pg_port
    )

    worker = status.service("worker")
    assert worker.alive and worker.task_queue == task_queue and worker.pid is not None
    # It was pointed at this stack's services through its environment.
    env = psutil.Process(worker.pid).environ()
    assert env["TEMPORAL_ADDRESS"] == status.service("temporal").address
    assert env["SEBAYA_DATABASE_URL"] == status.service("postgres").dsn
    assert env["SEBAYA_TASK_QUEUE"] == task_queue

    client = await Client.connect(status.service("temporal").address or "")
    result = await client.execute_workflow(
        "TinyEcho",
        "apa kabar",
        id=f"echo-{uuid.uuid4().hex[:8]}",
        task_queue=task_queue,
        result_type=str,
        execution_timeout=timedelta(seconds=60),
    )
    assert result == "APA KABAR"

    assert _pids(await asyncio.to_thread(stack.up)) == _pids(status)

    # The worker dies: status says so, `up` restarts it alone.
    os.kill(worker.pid, signal.SIGKILL)
    psutil.wait_procs([psutil.Process(worker.pid)], timeout=10)
    dead = stack.status().service("worker")
    assert dead.state == "stopped" and dead.note and "sebaya dev up" in dead.note
    revived = await asyncio.to_thread(stack.up)
    assert revived.service("worker").alive and revived.service("worker").pid != worker.pid
    assert revived.service("postgres").pid == status.service("postgres").pid
    assert revived.service("temporal").pid == status.service("temporal").pid

    results = await asyncio.to_thread(stack.down)
    assert [(r.name, r.outcome) for r in results] == [
        ("web", "stopped"),  # requests stop first
        ("worker", "stopped"),  # SIGTERM was enough: it shut down gracefully
        ("mail", "stopped"),
        ("temporal", "stopped"),
        ("postgres", "stopped"),
    ]
    lines = (state_dir / "logs" / "worker.log").read_text().splitlines()
    events = [json.loads(line)["event"] for line in lines if line.startswith("{")]
    assert "worker stopped" in events


def _real_worker_importable() -> bool:
    """Whether `python -m worker` can import its workflows, activities and migrations.

    Asked of a fresh interpreter, as the worker process will be: inside pytest, `tests/` is on
    sys.path and its test packages could shadow the real top-level ones.
    """
    probe = (
        "from workflows import ALL_WORKFLOWS; from activities import build_activities; "
        "from eventstore.migrate import migrate"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd="/", capture_output=True, timeout=120
    )
    return result.returncode == 0


@pytest.mark.slow
async def test_up_with_the_real_worker(make_stack: StackFactory) -> None:
    """`python -m worker` with Sebaya's own workflows and activities, as `sebaya dev up` runs it."""
    if not await asyncio.to_thread(_real_worker_importable):
        pytest.skip("workflows / activities / eventstore.migrate are not importable yet")
    pg_port, temporal_port, ui_port = _ports()
    stack = make_stack(task_queue=f"tq-{uuid.uuid4().hex[:8]}")
    status = await asyncio.to_thread(
        stack.up, temporal_port=temporal_port, ui_port=ui_port, pg_port=pg_port
    )
    assert [s.state for s in status.services] == ["running"] * 5  # pg, temporal, worker, mail, web
    assert psutil.Process(status.service("worker").pid).cmdline()[1:] == ["-m", "worker"]
    results = await asyncio.to_thread(stack.down)
    assert {r.outcome for r in results} == {"stopped"}


@pytest_asyncio.fixture
async def external_dsn(pg_server_dsn: str) -> AsyncIterator[str]:
    """A throw-away database on the session Postgres server, playing an existing service."""
    from urllib.parse import urlsplit, urlunsplit

    name = f"sebaya_ext_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(pg_server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield urlunsplit(urlsplit(pg_server_dsn)._replace(path=f"/{name}"))
    finally:
        admin = await asyncpg.connect(pg_server_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.mark.temporal
async def test_external_services_start_nothing(
    make_stack: StackFactory,
    migrator: RecordingMigrator,
    external_dsn: str,
    temporal_env: Any,
    state_dir: Path,
) -> None:
    address = temporal_env.client.service_client.config.target_host
    stack = make_stack(database_url=external_dsn, temporal_address=address)

    status = await asyncio.to_thread(stack.up, worker=False)

    assert [s.state for s in status.services] == [
        "external", "external", "not started", "running", "not started"]
    assert status.service("temporal").address == address
    assert not (state_dir / "pgdata").exists() and not (state_dir / "temporal.db").exists()
    assert set(stack.marked_processes()) == {"mail"}  # stands in for a mail server
    assert migrator.calls == [external_dsn]  # the event store is still migrated, there
    results = await asyncio.to_thread(stack.down)
    assert {r.name: r.outcome for r in results} == {
        "worker": "not running",
        "mail": "stopped",
        "temporal": "external",
        "postgres": "external",
    }
    services = resolve_services(stack.settings)
    assert (services.database_url, services.temporal_address) == (external_dsn, address)


def test_resolve_services_explains_what_to_do_when_nothing_runs(state_dir: Path) -> None:
    settings = Settings(state_dir=state_dir, database_url=None, temporal_address=None)
    with pytest.raises(ServicesNotConfigured) as err:
        resolve_services(settings)
    message = str(err.value)
    assert "sebaya dev up" in message
    assert "SEBAYA_DATABASE_URL" in message and "TEMPORAL_ADDRESS" in message


def test_cli_up_status_down(
    make_stack: StackFactory,
    migrator: RecordingMigrator,
    state_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sebaya.cli import app

    monkeypatch.setattr(devstack, "_default_migrator", migrator)
    make_stack()  # only for the teardown guarantee: same state folder as the CLI's
    env = {
        "SEBAYA_STATE_DIR": str(state_dir),
        "SEBAYA_DATABASE_URL": None,
        "TEMPORAL_ADDRESS": None,
    }
    runner = CliRunner()
    pg_port, temporal_port, ui_port = _ports()

    before = runner.invoke(app, ["dev", "status", "--json"], env=env)
    assert before.exit_code == 0, before.output
    assert {s["state"] for s in json.loads(before.stdout)["services"].values()} == {"not started"}

    started = runner.invoke(
        app,
        [
            *("dev", "up", "--no-worker", "--pg-port", str(pg_port)),
            *("--temporal-port", str(temporal_port), "--ui-port", str(ui_port)),
        ],
        env=env,
    )
    assert started.exit_code == 0, started.output

    shown = runner.invoke(app, ["dev", "status", "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    services = json.loads(shown.stdout)["services"]
    assert services["postgres"]["alive"] and services["temporal"]["alive"]
    assert services["temporal"]["ui_url"] == f"http://127.0.0.1:{ui_port}"
    assert services["postgres"]["dsn"].endswith(f"127.0.0.1:{pg_port}/sebaya")
    assert not services["worker"]["alive"]

    stopped = runner.invoke(app, ["dev", "down"], env=env)
    assert stopped.exit_code == 0, stopped.output
    assert not any(
        psutil.pid_exists(services[n]["pid"]) and not _gone(services[n]["pid"])
        for n in ("postgres", "temporal")
    )

    # A port held by someone else is refused up front, with a message saying so.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = str(holder.getsockname()[1])
        refused = runner.invoke(app, ["dev", "up", "--no-worker", "--pg-port", taken], env=env)
    assert refused.exit_code == 1
    assert "in use" in refused.output
