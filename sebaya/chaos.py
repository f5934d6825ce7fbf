"""Fault injection (``make chaos``; a small run in ``tests/test_chaos.py``).

A generated cohort runs in virtual time twice, each time on an embedded stack of its own
(Postgres, Temporal dev server with its SQLite file, the worker, the SMTP catcher) in a
temporary folder, with the same seed and the same cohort id: once without faults (the
reference), once while a seeded injector

* SIGKILLs a worker, right after an append commits (a new row in ``events``), right after a
  message reaches the catcher (between the delivery and its "sent" mark, when it lands in
  that window), and at random moments; a second worker runs part of the time;
* terminates the application's Postgres connections (``pg_terminate_backend``) and restarts
  Postgres once;
* stops and restarts the Temporal dev server once (its SQLite file persists).

Then the two are compared: same pairings in the same phases, the same event types in the same
order in every stream, no duplicated and no missing event, every hash chain verifies, every
delivery reached the catcher once (or twice with one Message-ID: the documented window
between "accepted" and "marked sent"), and the read models equal a rebuild. The summary is
one JSON object; any anomaly is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from sebaya.devstack import DevStack, find_embedded_postgres, read_stack_record
from sebaya.logging import get_logger
from sebaya.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
_log = get_logger(__name__)
Say = Callable[[str], None]

# Read models compared with a rebuild; ``updated_at`` is when a row was written, not what it
# says, so it is left out.
VIEWS = ("pairing_view", "cohort_view", "participant_view")


@dataclass(frozen=True)
class ChaosConfig:
    """What to run and how hard to hit it."""

    people: int = 400
    seed: int = 7
    cohort_id: str = "chaos"
    worker_kills: int = 20
    backend_kills: int = 10
    postgres_restarts: int = 1
    temporal_restarts: int = 1
    second_worker: bool = True
    # Pause between faults, drawn uniformly (wall-clock seconds).
    pause: tuple[float, float] = (2.0, 6.0)
    work_dir: Path | None = None  # default: a temporary folder, removed afterwards


@dataclass
class RunOutcome:
    """What one run left behind, read back from its stack."""

    result: dict[str, int]
    streams: dict[str, list[str]]  # stream -> event types in version order
    phases: dict[str, str]  # pairing -> phase (pairing_view)
    duplicated_events: int
    version_gaps: list[str]
    chain_problems: list[str]
    deliveries: dict[str, str]  # key -> status
    by_email: set[str]  # keys sent (or to be sent) by e-mail, the channel the catcher sees
    mail_per_key: dict[str, Counter[str]]  # key -> Message-ID -> .eml files
    projection_mismatches: list[str]
    retried: dict[str, int]
    seconds: float
    # key -> whether quiet hours defer it at the time its decision was taken in this run
    # (the product's rule, applied to this run's own decision time)
    deferred_by_rule: dict[str, bool] = field(default_factory=dict)
    # failed deliveries sent by the end-of-run sweep (what the worker's sweep does later)
    resent_at_end: int = 0


# --- people ---------------------------------------------------------------------------------


def cohort_input(people: int, seed: int) -> tuple[Any, list[Any]]:
    """examples/program.yaml and ``people`` people from examples/generate_people.py."""
    from intake import load_program

    spec = importlib.util.spec_from_file_location(
        "generate_people", EXAMPLES / "generate_people.py")
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = generator  # its dataclasses look their module up
    spec.loader.exec_module(generator)
    program = load_program(EXAMPLES / "program.yaml")
    mentees = people * 11 // 20
    return program, generator.generate_people(
        program, mentors=people - mentees, mentees=mentees, seed=seed)


# --- the injector ---------------------------------------------------------------------------


@dataclass
class FaultInjector:
    """Seeded faults against one embedded stack; every fault is logged and counted."""

    stack: DevStack
    config: ChaosConfig
    say: Say
    faults: Counter[str] = field(default_factory=Counter)
    log: list[dict[str, Any]] = field(default_factory=list)
    _extra: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"chaos:{self.config.seed}")

    # the plan: every kind of fault the config asks for, in a seeded order
    def plan(self) -> list[str]:
        kinds = (["kill_after_append", "kill_after_delivery", "kill_random"]
                 * self.config.worker_kills)[: self.config.worker_kills]
        kinds += ["terminate_backends"] * self.config.backend_kills
        kinds += ["restart_postgres"] * self.config.postgres_restarts
        kinds += ["restart_temporal"] * self.config.temporal_restarts
        if self.config.second_worker:
            kinds += ["second_worker"] * max(1, self.config.worker_kills // 5)
        self.rng.shuffle(kinds)
        return kinds

    async def run(self, admin_dsn: str, stop: asyncio.Event) -> None:
        for kind in self.plan():
            if await _wait(stop, self.rng.uniform(*self.config.pause)):
                break
            began = time.monotonic()
            try:
                detail = await getattr(self, f"_{kind}")(admin_dsn, stop)
            except Exception as exc:  # a fault that could not be injected is reported, not fatal
                self.faults[f"{kind}_failed"] += 1
                detail = f"failed: {type(exc).__name__}: {exc}"
            entry = {"fault": kind, "detail": detail, "seconds": round(time.monotonic() - began, 2)}
            self.log.append(entry)
            _log.warning("chaos.fault", **entry)
            self.say(f"fault {len(self.log)}: {kind} ({detail})")
        await self.heal()

    async def heal(self) -> None:
        """Everything back up (one worker at least), and the extra worker gone."""
        for proc in self._extra:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in self._extra:
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(proc.wait, 30)
        self._extra.clear()
        await self._up()

    # worker kills ------------------------------------------------------------------------

    def _workers(self) -> list[psutil.Process]:
        return self.stack.marked_processes().get("worker", [])

    async def _kill_worker(self) -> int:
        workers = self._workers()
        if not workers:
            await self._up()
            workers = self._workers()
        victim = self.rng.choice(sorted(workers, key=lambda p: p.pid))
        victim.send_signal(signal.SIGKILL)
        self.faults["worker_sigkill"] += 1
        with contextlib.suppress(psutil.Error):
            await asyncio.to_thread(victim.wait, 10)
        self._extra = [p for p in self._extra if p.pid != victim.pid]
        return victim.pid

    async def _kill_after_append(self, admin_dsn: str, stop: asyncio.Event) -> str:
        conn = await _connect(admin_dsn)
        try:
            last = await conn.fetchval("SELECT coalesce(max(global_position), 0) FROM events")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not stop.is_set():
                if await conn.fetchval("SELECT coalesce(max(global_position), 0) FROM events") \
                        > last:
                    pid = await self._kill_worker()
                    self.faults["kill_after_append"] += 1
                    await self._up()
                    return f"worker {pid} right after event #{last + 1} committed"
                await asyncio.sleep(0.01)  # polling the table for the marker, not a timer
        finally:
            await conn.close()
        return await self._kill_random(admin_dsn, stop, "no append seen in 20 s: ")

    async def _kill_after_delivery(self, admin_dsn: str, stop: asyncio.Event) -> str:
        mail_dir = self.stack.mail_dir
        seen = set(os.listdir(mail_dir)) if mail_dir.exists() else set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not stop.is_set():
            new = set(os.listdir(mail_dir)) - seen if mail_dir.exists() else set()
            if new:
                pid = await self._kill_worker()
                key = _delivery_key(mail_dir / sorted(new)[0])
                conn = await _connect(admin_dsn)
                try:
                    status = await conn.fetchval(
                        "SELECT status FROM deliveries WHERE idempotency_key = $1", key)
                finally:
                    await conn.close()
                # Still pending: the channel accepted it, the worker died before the mark.
                window = status != "sent"
                self.faults["kill_between_delivery_and_sent_mark" if window
                            else "kill_after_delivery_marked"] += 1
                await self._up()
                return (f"worker {pid} after {key} reached the catcher "
                        f"({'before' if window else 'after'} its sent mark)")
            await asyncio.sleep(0.005)  # polling the catcher's folder, not a timer
        return await self._kill_random(admin_dsn, stop, "no delivery seen in 30 s: ")

    async def _kill_random(self, admin_dsn: str, stop: asyncio.Event, why: str = "") -> str:
        # Also the fallback of a kill whose marker did not come, so the run has as many
        # kills as planned (the quiet stretch is itself a moment like any other).
        pid = await self._kill_worker()
        self.faults["kill_random"] += 1
        await self._up()
        return f"{why}worker {pid}"

    async def _second_worker(self, admin_dsn: str, stop: asyncio.Event) -> str:
        if self._extra:
            return "already running"
        workers = self._workers()
        if not workers:
            await self._up()
            workers = self._workers()
        template = workers[0]

        def spawn() -> subprocess.Popen[bytes]:
            with open(self.stack.log_path("worker-2"), "ab") as log:
                # The same command and environment as the stack's worker, so the same task
                # queue, database and catcher; marked as the stack's, so `down` stops it too.
                return subprocess.Popen(
                    template.cmdline(), env=template.environ(), cwd=template.cwd(),
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True)

        proc = await asyncio.to_thread(spawn)
        self._extra.append(proc)
        self.faults["second_worker_started"] += 1
        return f"worker {proc.pid} joins worker {template.pid} on the task queue"

    # Postgres ------------------------------------------------------------------------------

    async def _terminate_backends(self, admin_dsn: str, stop: asyncio.Event) -> str:
        conn = await _connect(admin_dsn)
        try:
            killed = await conn.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND backend_type = 'client backend'")
        finally:
            await conn.close()
        self.faults["pg_terminate_backend"] += int(killed)
        self.faults["pg_terminate_rounds"] += 1
        return f"{killed} connections terminated"

    async def _restart_postgres(self, admin_dsn: str, stop: asyncio.Event) -> str:
        server = find_embedded_postgres(self.stack.pgdata)
        if server is None:
            return "not running"
        port = server.port
        outcome = await asyncio.to_thread(server.stop)
        self.faults["postgres_restart"] += 1
        await _wait_port_free(port)
        await self._up(pg_port=port)
        return f"stopped ({outcome}) and started again on port {port}"

    # Temporal ------------------------------------------------------------------------------

    async def _restart_temporal(self, admin_dsn: str, stop: asyncio.Event) -> str:
        servers = self.stack.marked_processes().get("temporal", [])
        if not servers:
            return "not running"
        record = read_stack_record(self.stack.state_dir)
        assert record is not None and record.temporal is not None
        port, ui_port = record.temporal.port, record.temporal.ui_port
        for proc in servers:
            proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(psutil.wait_procs, servers, 30)
        self.faults["temporal_restart"] += 1
        if port is not None:
            await _wait_port_free(port)
        await self._up(temporal_port=port, ui_port=ui_port)
        return f"stopped and started again on port {port} (SQLite file kept)"

    async def _up(self, *, pg_port: int | None = None, temporal_port: int | None = None,
                  ui_port: int | None = None) -> None:
        # ``up`` starts whatever is down (a worker, Postgres, Temporal) and leaves the rest.
        await asyncio.to_thread(lambda: self.stack.up(
            worker=True, pg_port=pg_port, temporal_port=temporal_port, ui_port=ui_port))


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


async def _wait_port_free(port: int, within: float = 60.0) -> None:
    from sebaya.devstack import _port_free

    deadline = time.monotonic() + within
    while not _port_free(port):
        if time.monotonic() > deadline:
            raise TimeoutError(f"port {port} still busy after {within:.0f} s")
        await asyncio.sleep(0.2)  # waiting for the old server's socket to close


async def _connect(dsn: str) -> asyncpg.Connection:
    """A connection for the injector and the checks, retried while Postgres restarts."""
    deadline = time.monotonic() + 120
    while True:
        try:
            return await asyncpg.connect(dsn, server_settings={"application_name": "chaos"})
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)  # Postgres is restarting


def _delivery_key(path: Path) -> str | None:
    from email import message_from_bytes

    with contextlib.suppress(OSError):
        value = message_from_bytes(path.read_bytes())["X-Sebaya-Delivery"]
        return str(value).strip() if value else None
    return None


# --- one run --------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def embedded_stack(state_dir: Path, say: Say) -> AsyncIterator[tuple[Settings, DevStack]]:
    """A fresh embedded stack (with its worker) in ``state_dir``, stopped on exit."""
    settings = Settings(**{  # type: ignore[arg-type]
        "SEBAYA_STATE_DIR": state_dir, "SEBAYA_DATABASE_URL": None, "TEMPORAL_ADDRESS": None,
        "SEBAYA_LOG_LEVEL": "WARNING"})
    stack = DevStack(settings, report=lambda line: _log.info("chaos.stack", line=line))
    say(f"starting a stack in {state_dir}")
    try:
        await asyncio.to_thread(lambda: stack.up(worker=True))
        yield settings, stack
    finally:
        await asyncio.to_thread(stack.down)


async def run_once(settings: Settings, stack: DevStack, config: ChaosConfig, *, chaos: bool,
                   say: Say) -> tuple[RunOutcome, FaultInjector | None]:
    """The cohort on a started stack, with or without faults."""
    from sebaya.bootstrap import open_infrastructure

    began = time.monotonic()
    injector = FaultInjector(stack, config, say) if chaos else None
    async with open_infrastructure(settings) as infra:
        outcome = await _drive(infra, stack, config, injector, say)
    outcome.seconds = round(time.monotonic() - began, 1)
    return outcome, injector


async def _drive(infra: Any, stack: DevStack, config: ChaosConfig,
                 injector: FaultInjector | None, say: Say) -> RunOutcome:
    from temporalio.testing import TimeSkipper, TimeSkippingConfig

    from sebaya.operations import start_cohort
    from sebaya.simulation import CohortSimulation

    program, people = cohort_input(config.people, config.seed)
    skipper = TimeSkipper(infra.temporal, config=TimeSkippingConfig(enabled=False))
    await start_cohort(infra.pool, skipper.client, program=program, people=people,
                       task_queue=infra.services.task_queue, cohort_id=config.cohort_id,
                       started_by="chaos")
    sim = CohortSimulation(skipper.client, skipper, config.cohort_id, seed=config.seed,
                           pool=infra.pool, say=lambda line: say(f"  {line}"),
                           retry_for=timedelta(minutes=10))
    admin_dsn = read_stack_record(stack.state_dir).postgres.dsn  # type: ignore[union-attr]
    stop = asyncio.Event()
    projector = asyncio.create_task(_project(infra, stop))
    faults = asyncio.create_task(injector.run(admin_dsn, stop)) if injector else None
    try:
        result = await sim.run()
    finally:
        stop.set()
        if faults is not None:
            await faults
        await projector
    say(f"cohort finished: {result.launched} pairings, {result.completed} completed, "
        f"{result.exited} exited, {result.rematched} rematched")
    resent = await _send_failed_now(infra, stack)
    outcome = await _read_back(infra, stack, config.cohort_id)
    outcome.resent_at_end = resent
    outcome.result = {"launched": result.launched, "completed": result.completed,
                      "exited": result.exited, "rematched": result.rematched}
    outcome.retried = dict(sim.log.retried)
    return outcome


async def _project(infra: Any, stop: asyncio.Event) -> None:
    """Keep the read models caught up while the cohort runs (so faults hit the projector
    too); a failed batch is simply tried again, as ``sebaya projections run`` does."""
    from eventstore import EventStore
    from projections.projector import Projector

    projector = Projector(EventStore(infra.pool, infra.registry))
    while not stop.is_set():
        with contextlib.suppress(Exception):
            await projector.catch_up()
        await _wait(stop, 1.0)


async def _read_back(infra: Any, stack: DevStack, cohort_id: str) -> RunOutcome:
    from delivery.catcher import read_messages
    from eventstore import EventStore
    from projections.projector import Projector

    pool: asyncpg.Pool = infra.pool
    store = EventStore(pool, infra.registry)
    projector = Projector(store)
    await _retry_db(projector.catch_up)
    rows = await _retry_db(lambda: pool.fetch(
        "SELECT stream_id, version, type FROM events WHERE stream_id = $1 OR stream_id LIKE $2 "
        "ORDER BY stream_id, version", f"cohort-{cohort_id}", f"pairing-{cohort_id}.%"))
    streams: dict[str, list[str]] = {}
    gaps = []
    for row in rows:
        types = streams.setdefault(row["stream_id"], [])
        types.append(row["type"])
        if row["version"] != len(types):
            gaps.append(f"{row['stream_id']}@{row['version']}")
    duplicated = await pool.fetchval(
        "SELECT count(*) FROM (SELECT event_id FROM events GROUP BY event_id "
        "HAVING count(*) > 1) d")
    report = await store.verify()
    chain_problems = [str(p) for p in report.problems]
    phases = {r["pairing_id"]: r["phase"] for r in await pool.fetch(
        "SELECT pairing_id, phase FROM pairing_view WHERE cohort_id = $1", cohort_id)}
    rows = await pool.fetch("SELECT idempotency_key, status, channel FROM deliveries")
    deliveries = {r["idempotency_key"]: r["status"] for r in rows}
    by_email = {r["idempotency_key"] for r in rows if r["channel"] == "email"}
    mail: dict[str, Counter[str]] = {}
    for message in read_messages(stack.mail_dir):
        if message.delivery_key:
            mail.setdefault(message.delivery_key, Counter())[message.message_id or "?"] += 1
    before = await _views(pool)
    await projector.rebuild()
    after = await _views(pool)
    mismatches = [f"{view}: {len(before[view] ^ after[view])} rows differ"
                  for view in VIEWS if before[view] != after[view]]
    deferred_by_rule = await _deferred_by_rule(pool, cohort_id)
    return RunOutcome(result={}, streams=streams, phases=phases, deferred_by_rule=deferred_by_rule,
                      duplicated_events=int(duplicated), version_gaps=gaps,
                      chain_problems=chain_problems, deliveries=deliveries, by_email=by_email,
                      mail_per_key=mail, projection_mismatches=mismatches, retried={},
                      seconds=0.0)


async def _send_failed_now(infra: Any, stack: DevStack) -> int:
    """The retry of every ``failed`` delivery, through the stack's catcher: what the worker's
    background sweep does five minutes after a failed attempt (delivery/dispatch.py), done at
    once because a run can end sooner. Deliveries still not sent after it are anomalies."""
    from sebaya.bootstrap import build_notifier

    record = read_stack_record(stack.state_dir)
    assert record is not None and record.mail is not None
    settings = infra.settings.model_copy(update={
        "smtp_host": record.mail.host, "smtp_port": record.mail.port, "smtp_tls": "none"})
    notifier = build_notifier(infra.pool, infra.registry, settings, retry_every=None)
    try:
        result = await _retry_db(notifier.dispatcher.retry)
    finally:
        await notifier.aclose()
    return int(result.sent)


async def _deferred_by_rule(pool: asyncpg.Pool, cohort_id: str) -> dict[str, bool]:
    """For each delivery decided by an event of this run: whether quiet hours defer it at
    that event's time by the product's own rule (``activities.deferral.held_until``), i.e.
    what the product should have done."""
    from activities.deferral import held_until
    from adapters.roster import load_program

    program = await load_program(pool, cohort_id)
    zones = {r["employee_id"]: r["timezone"] for r in await pool.fetch(
        "SELECT employee_id, timezone FROM participants WHERE timezone IS NOT NULL")}
    rows = await pool.fetch(
        "SELECT d.idempotency_key, d.recipient, d.template, e.occurred_at FROM deliveries d "
        "JOIN events e ON e.event_id::text = split_part(d.idempotency_key, ':', 1)")
    return {row["idempotency_key"]: held_until(row["template"], zones.get(row["recipient"]),
                                               program, row["occurred_at"]) is not None
            for row in rows}


async def _retry_db(call: Callable[[], Any]) -> Any:
    for attempt in range(20):
        try:
            return await call()
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                asyncpg.exceptions.OperatorInterventionError):
            if attempt == 19:
                raise
            await asyncio.sleep(0.5)  # a connection the injector cut is replaced


async def _views(pool: asyncpg.Pool) -> dict[str, set[str]]:
    views = {}
    for view in VIEWS:
        rows = await pool.fetch(
            f"SELECT (to_jsonb(v) - 'updated_at')::text AS row FROM {view} v")
        views[view] = {r["row"] for r in rows}
    return views


# --- the comparison -------------------------------------------------------------------------


def decided_across_a_window(reference: RunOutcome, chaos: RunOutcome) -> list[str]:
    """Deliveries deferred in one run and sent in the other, each as quiet hours say at that
    run's own decision time. Virtual time runs with the wall clock between the simulator's
    moves, so a decision that the fault run's retries delayed by seconds can fall on the
    other side of a window's opening: the product deciding right both times, not a trace of
    a fault. Anything else that differs is an anomaly."""
    return sorted(
        key for key, status in reference.deliveries.items()
        if {status, chaos.deliveries.get(key)} == {"deferred", "sent"}
        and all(run.deferred_by_rule.get(key) == (run.deliveries[key] == "deferred")
                for run in (reference, chaos)))


def compare(reference: RunOutcome, chaos: RunOutcome) -> dict[str, int]:
    """Anomalies by kind (every count must be 0), and the details in ``details``."""
    anomalies: Counter[str] = Counter()
    if chaos.result != reference.result:
        anomalies["cohort_result_differs"] += 1
    for stream, types in reference.streams.items():
        got = chaos.streams.get(stream)
        if got is None:
            anomalies["missing_streams"] += 1
            anomalies["missing_events"] += len(types)
            continue
        if len(got) < len(types):
            anomalies["missing_events"] += len(types) - len(got)
        if len(got) > len(types):
            anomalies["extra_events"] += len(got) - len(types)
        if got != types:
            anomalies["streams_with_other_event_types"] += 1
    anomalies["extra_streams"] += len(set(chaos.streams) - set(reference.streams))
    anomalies["duplicated_events"] += chaos.duplicated_events
    anomalies["version_gaps"] += len(chaos.version_gaps)
    anomalies["chain_problems"] += len(chaos.chain_problems)
    anomalies["pairings_in_other_phases"] += sum(
        1 for p, phase in reference.phases.items() if chaos.phases.get(p) != phase)
    anomalies["pairings_missing_from_view"] += len(set(reference.phases) - set(chaos.phases))
    anomalies["projection_mismatches"] += len(chaos.projection_mismatches)
    # Deliveries: the same keys with the same outcome as without faults; each sent one caught
    # once, or more than once with a single Message-ID (the documented window).
    anomalies["deliveries_missing_or_extra"] += len(
        set(reference.deliveries) ^ set(chaos.deliveries))
    across = set(decided_across_a_window(reference, chaos))
    anomalies["deliveries_with_other_status"] += sum(
        1 for k, s in reference.deliveries.items()
        if k in chaos.deliveries and chaos.deliveries[k] != s and k not in across)
    for key, status in chaos.deliveries.items():
        caught = chaos.mail_per_key.get(key, Counter())
        if status == "sent" and key in chaos.by_email and not caught:
            anomalies["sent_but_not_caught"] += 1
        if status != "sent" and caught:
            anomalies["caught_but_not_marked_sent"] += 1
        if len(caught) > 1:
            anomalies["duplicate_deliveries_with_new_message_id"] += 1
    anomalies["caught_without_delivery_row"] += len(set(chaos.mail_per_key) - set(chaos.deliveries))
    return {kind: anomalies.get(kind, 0) for kind in sorted({
        "cohort_result_differs", "missing_streams", "missing_events", "extra_events",
        "streams_with_other_event_types", "extra_streams", "duplicated_events", "version_gaps",
        "chain_problems", "pairings_in_other_phases", "pairings_missing_from_view",
        "projection_mismatches", "deliveries_missing_or_extra", "deliveries_with_other_status",
        "sent_but_not_caught", "caught_but_not_marked_sent",
        "duplicate_deliveries_with_new_message_id", "caught_without_delivery_row",
        *anomalies})}


async def run_chaos(config: ChaosConfig, say: Say = print) -> dict[str, Any]:
    """Reference run, chaos run, comparison; the JSON-ready summary."""
    def tagged(tag: str) -> Say:
        return lambda line: say(f"[{tag}] {line}")

    with contextlib.ExitStack() as cleanup:
        base = config.work_dir or Path(cleanup.enter_context(
            tempfile.TemporaryDirectory(prefix="sebaya-chaos-")))
        # The stacks start one after the other (each picks its free ports when it starts),
        # then both cohorts run at once: they share nothing but the machine, and the wall time
        # is the slower run's instead of the sum.
        async with contextlib.AsyncExitStack() as stacks:
            ref_settings, ref_stack = await stacks.enter_async_context(
                embedded_stack(base / "reference", tagged("reference")))
            chaos_settings, chaos_stack = await stacks.enter_async_context(
                embedded_stack(base / "chaos", tagged("chaos")))
            # A task group: a run that fails stops the other instead of leaving it running.
            async with asyncio.TaskGroup() as runs:
                ref_run = runs.create_task(run_once(
                    ref_settings, ref_stack, config, chaos=False, say=tagged("reference")))
                chaos_run = runs.create_task(run_once(
                    chaos_settings, chaos_stack, config, chaos=True, say=tagged("chaos")))
        reference, _ = ref_run.result()
        chaos, injector = chaos_run.result()
    assert injector is not None
    anomalies = compare(reference, chaos)
    in_window = sum(1 for key, caught in chaos.mail_per_key.items()
                    if sum(caught.values()) > 1 and len(caught) == 1)
    return {
        "chaos": "cohort",
        "people": config.people,
        "seed": config.seed,
        "cohort_id": config.cohort_id,
        "result": chaos.result,
        "events": sum(len(t) for t in chaos.streams.values()),
        "streams": len(chaos.streams),
        "deliveries": len(chaos.deliveries),
        "faults": dict(sorted(injector.faults.items())),
        "anomalies": anomalies,
        "anomaly_total": sum(anomalies.values()),
        "redelivered_in_documented_window": in_window,
        "deferred_or_sent_by_decision_time": len(decided_across_a_window(reference, chaos)),
        "failed_deliveries_resent_at_end": {"reference": reference.resent_at_end,
                                            "chaos": chaos.resent_at_end},
        "simulator_retries": {"reference": reference.retried, "chaos": chaos.retried},
        "seconds": {"reference": reference.seconds, "chaos": chaos.seconds},
        "details": {
            "version_gaps": chaos.version_gaps[:10],
            "chain_problems": chaos.chain_problems[:10],
            "projection_mismatches": chaos.projection_mismatches,
            "deferred_or_sent_by_decision_time": decided_across_a_window(reference, chaos),
            "fault_log": injector.log,
        },
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m sebaya.chaos [--people N] [--seed S] [--worker-kills K] ...``"""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m sebaya.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = ChaosConfig()
    parser.add_argument("--people", type=int, default=defaults.people)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--cohort-id", default=defaults.cohort_id)
    parser.add_argument("--worker-kills", type=int, default=defaults.worker_kills)
    parser.add_argument("--backend-kills", type=int, default=defaults.backend_kills)
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="keep both stacks here (default: a temporary folder)")
    args = parser.parse_args(argv)
    from sebaya.logging import configure_logging

    configure_logging("json", "WARNING")
    config = ChaosConfig(people=args.people, seed=args.seed, cohort_id=args.cohort_id,
                         worker_kills=args.worker_kills, backend_kills=args.backend_kills,
                         work_dir=args.work_dir)
    summary = asyncio.run(run_chaos(config, say=lambda line: print(line, file=sys.stderr)))
    print(json.dumps(summary, indent=2), file=sys.stderr)
    brief = {k: v for k, v in summary.items() if k != "details"}
    print(json.dumps(brief))
    return 1 if summary["anomaly_total"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
