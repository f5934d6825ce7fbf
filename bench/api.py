"""Benchmark: participant actions through the HTTP API against the same updates sent by a
bare Temporal client, in one run, on a real Temporal dev server and a real Postgres.

- ours: ``sebaya serve`` (a separate process, as deployed) with 50 concurrent HTTP clients,
  each signed in as the mentees of its share of 200 running pairings, alternately setting
  goals (PUT .../goals) and logging the next meeting (POST .../meetings);
- baseline: 50 concurrent tasks sending the same two updates with ``execute_update`` straight
  to another 200 running pairings, through the same worker (``python -m worker``, its own
  process as deployed);
- floor (context for the p99, not the ratio): the same 50 tasks sending an update that does
  nothing to 200 empty workflows on the same server (a worker in this process): what an
  update costs here before any product code runs. With 50 clients each waiting for its
  answer before sending the next, no product update's p99 can be lower than this.

Prints both rates and the JSON line
{"bench": "api_actions", "ours": actions_per_s, "baseline": updates_per_s, "unit": "per s",
 "ratio": ours/baseline, "p99_ms": p99 of our requests}

Usage: python bench/api.py [--pairings 200] [--clients 50] [--rounds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from statistics import quantiles
from typing import Any

import asyncpg
import httpx
from temporalio import workflow
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import TimeSkippingConfig, WorkflowEnvironment

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio.worker import Worker

from domain import commands as c
from domain.events import Goal
from eventstore import migrate
from sebaya.samples.pairing_lifecycle import six_month_rules, start_pairing, started_state
from sebaya.settings import temporal_cli_path
from web import auth
from workflows.pairing import PairingWorkflow
from workflows.search_attributes import server_args

ROOT = Path(__file__).resolve().parents[1]


# Not sandboxed, like the lifecycle bench's baseline: the floor measures the server and the
# SDK's update round trip, not our workflow code.
@workflow.defn(sandboxed=False)
class EmptyWorkflow:
    def __init__(self) -> None:
        self._done = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self._done)

    @workflow.update
    async def touch(self, n: int) -> int:
        return n

    @workflow.signal
    def finish(self) -> None:
        self._done = True
TOPICS = ["keterampilan IT", "karier"]


def goals(round_no: int) -> list[dict[str, str]]:
    return [{"goal_id": "it-1", "title": f"Menguasai SQL (revisi {round_no})",
             "success_measure": "membuat laporan sendiri"}]


async def start_pairings(client: Client, queue: str, n: int, tag: str
                         ) -> list[tuple[str, str, WorkflowHandle[Any, Any]]]:
    rules = six_month_rules(goals_required_before_meetings=False)
    handles = await asyncio.gather(*(
        start_pairing(client, queue, rules=rules, mentor=f"M{tag}{i}", mentee=f"E{tag}{i}")
        for i in range(n)))
    states = await asyncio.gather(*(started_state(h) for h in handles))
    return [(s.pairing_id, s.mentee_id, h) for s, h in zip(states, handles, strict=True)]


async def drive(clients: int, pairings: list[Any], rounds: int,
                act: Callable[[Any, str, int], Awaitable[float]]) -> tuple[float, list[float]]:
    """Each client owns a share of the pairings; per round and pairing: goals, then the next
    meeting. Returns (actions per second, latencies in ms)."""
    latencies: list[float] = []
    shares = [pairings[i::clients] for i in range(clients)]

    async def one_client(share: list[Any]) -> None:
        for round_no in range(1, rounds + 1):
            for pairing in share:
                latencies.append(await act(pairing, "goals", round_no))
                latencies.append(await act(pairing, "meeting", round_no))

    began = time.perf_counter()
    await asyncio.gather(*(one_client(s) for s in shares))
    elapsed = time.perf_counter() - began
    return len(latencies) / elapsed, latencies


def p50_p99(latencies: list[float]) -> tuple[float, float]:
    cuts = quantiles(latencies, n=100)
    return cuts[49], cuts[98]


async def wait_polling(client: Client, queue: str, pid: int, timeout_s: float = 60) -> None:
    """Until the worker process ``pid`` polls ``queue`` (the SDK names pollers "<pid>@host")."""
    request = DescribeTaskQueueRequest(namespace=client.namespace,
                                       task_queue=TaskQueue(name=queue))
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout_s
    while loop.time() < give_up:
        answer = await client.workflow_service.describe_task_queue(request)
        if any(p.identity.startswith(f"{pid}@") for p in answer.pollers):
            return
        await asyncio.sleep(0.2)  # real time: the worker process starts
    raise RuntimeError(f"the worker (pid {pid}) did not poll {queue} within {timeout_s} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def main(n: int, clients: int, rounds: int) -> None:
    dsn_root = os.environ.get("SEBAYA_DATABASE_URL",
                              "postgresql://postgres@127.0.0.1:5432/postgres")
    db = f"sebaya_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(dsn_root)
    await admin.execute(f'CREATE DATABASE "{db}"')
    dsn = dsn_root.rsplit("/", 1)[0] + f"/{db}"
    server: asyncio.subprocess.Process | None = None
    worker_proc: asyncio.subprocess.Process | None = None
    try:
        await migrate(dsn)
        pool = await asyncpg.create_pool(dsn, min_size=2, max_size=30)
        env = await WorkflowEnvironment.start_time_skipping_v2(
            ts_config=TimeSkippingConfig(enabled=False),
            dev_server_existing_path=str(temporal_cli_path()),
            dev_server_extra_args=["--dynamic-config-value",
                                   "frontend.WorkflowTimeSkippingEnabled=true",
                                   # Unregistered, every pairing's task that sets them fails
                                   # and is retried: both sides would measure retries.
                                   "--log-level", "error", *server_args()],
            data_converter=pydantic_data_converter,
        )
        async with env:
            queue = f"bench-{uuid.uuid4().hex[:6]}"
            address = env.client.service_client.config.target_host
            port = free_port()
            server = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).with_name("sebaya")), "serve", "--port", str(port),
                cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
                env={**os.environ, "SEBAYA_DATABASE_URL": dsn,
                     "TEMPORAL_ADDRESS": address,
                     "SEBAYA_TASK_QUEUE": queue, "SEBAYA_WEB_SECRET": uuid.uuid4().hex,
                     "SEBAYA_LOG_LEVEL": "WARNING", "SEBAYA_WEB_POOL_SIZE": "30"})
            # The worker runs as deployed: its own process (`python -m worker`), so neither
            # side's clients take its CPU. Only the floor's empty workflows run in here.
            worker_proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "worker", cwd=ROOT,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
                env={**os.environ, "SEBAYA_DATABASE_URL": dsn, "TEMPORAL_ADDRESS": address,
                     "SEBAYA_TASK_QUEUE": queue, "SEBAYA_NOTIFY_CHANNEL": "log",
                     "SEBAYA_LOG_LEVEL": "WARNING"})
            await wait_polling(env.client, queue, worker_proc.pid)
            floor_queue = f"{queue}-floor"
            floor_worker = Worker(env.client, task_queue=floor_queue, workflows=[EmptyWorkflow],
                                  max_concurrent_workflow_tasks=50)
            async with floor_worker:
                via_api = await start_pairings(env.client, queue, n, "a")
                bare = await start_pairings(env.client, queue, n, "b")
                meeting_no: dict[str, int] = {}

                # --- floor: an update that does nothing, same server, worker and clients ----
                empties = await asyncio.gather(*(
                    env.client.start_workflow(EmptyWorkflow.run, id=f"empty-{uuid.uuid4()}",
                                              task_queue=floor_queue) for _ in range(n)))

                async def empty_act(handle: Any, what: str, round_no: int) -> float:
                    began = time.perf_counter()
                    await handle.execute_update(EmptyWorkflow.touch, round_no)
                    return (time.perf_counter() - began) * 1000

                floor, floor_latencies = await drive(clients, empties, rounds, empty_act)
                floor_p50, floor_p99 = p50_p99(floor_latencies)
                print(f"floor: {floor:.1f} empty updates/s ({clients} concurrent, "
                      f"p50 {floor_p50:.0f} ms, p99 {floor_p99:.0f} ms)", flush=True)
                await asyncio.gather(*(h.signal(EmptyWorkflow.finish) for h in empties))

                # --- baseline: the same updates from a bare Temporal client ------------------
                async def bare_act(p: Any, what: str, round_no: int) -> float:
                    pairing_id, mentee, handle = p
                    actor = c.Actor.employee(mentee)
                    began = time.perf_counter()
                    if what == "goals":
                        await handle.execute_update(PairingWorkflow.set_goals, c.SetGoals(
                            actor=actor, goals=tuple(Goal(**g) for g in goals(round_no))))
                    else:
                        no = meeting_no[pairing_id] = meeting_no.get(pairing_id, 0) + 1
                        await handle.execute_update(PairingWorkflow.log_meeting, c.LogMeeting(
                            actor=actor, meeting_no=no, held=True, topics=tuple(TOPICS)))
                    return (time.perf_counter() - began) * 1000

                baseline, bare_latencies = await drive(clients, bare, rounds, bare_act)
                bare_p50, bare_p99 = p50_p99(bare_latencies)
                print(f"baseline: {baseline:.1f} updates/s (bare Temporal client, "
                      f"{clients} concurrent, p50 {bare_p50:.0f} ms, p99 {bare_p99:.0f} ms)",
                      flush=True)

                # --- ours: HTTP to `sebaya serve` --------------------------------------------
                base = f"http://127.0.0.1:{port}"
                limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
                async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:
                    for _ in range(300):
                        try:
                            if (await http.get("/readyz")).status_code == 200:
                                break
                        except httpx.TransportError:
                            pass
                        await asyncio.sleep(0.1)  # real time: the server starts
                    # A signed-in session per mentee; its CSRF token comes from GET /me, as a
                    # browser client would ask for it.
                    sessions: dict[str, dict[str, str]] = {}
                    for pairing_id, mentee, _ in via_api:
                        sid = await auth.create_session(pool, "participant", mentee, days=1)
                        cookie = {"Cookie": f"sebaya_session={sid}"}
                        answer = await http.get("/api/v1/me", headers=cookie)
                        assert answer.status_code == 200, answer.text
                        sessions[pairing_id] = {**cookie,
                                                "X-CSRF-Token": answer.json()["csrf_token"]}

                    async def api_act(p: Any, what: str, round_no: int) -> float:
                        pairing_id = p[0]
                        # As a careful client does: one key per action, reused on a 503.
                        headers = {**sessions[pairing_id], "Idempotency-Key": uuid.uuid4().hex}
                        if what == "goals":
                            request = ("PUT", f"/api/v1/pairings/{pairing_id}/goals",
                                       {"goals": goals(round_no)})
                        else:
                            no = meeting_no[pairing_id] = meeting_no.get(pairing_id, 0) + 1
                            request = ("POST", f"/api/v1/pairings/{pairing_id}/meetings",
                                       {"meeting_no": no, "held": True, "topics": TOPICS})
                        began = time.perf_counter()
                        for _ in range(3):
                            r = await http.request(request[0], request[1], json=request[2],
                                                   headers=headers)
                            if r.status_code != 503:
                                break
                            retries[0] += 1
                        elapsed = (time.perf_counter() - began) * 1000
                        if r.status_code != 200:
                            raise RuntimeError(f"{r.status_code} {r.text}")
                        return elapsed

                    retries = [0]
                    ours, latencies = await drive(clients, via_api, rounds, api_act)
                p50, p99 = p50_p99(latencies)
                print(f"ours: {ours:.1f} actions/s over HTTP ({clients} clients, "
                      f"{len(latencies)} actions, p50 {p50:.0f} ms, p99 {p99:.0f} ms, "
                      f"{retries[0]} retried after a 503)", flush=True)
        await pool.close()
    finally:
        for proc in (server, worker_proc):
            if proc is not None and proc.returncode is None:
                proc.terminate()
                await proc.wait()
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()
    print(json.dumps({"bench": "api_actions", "ours": round(ours, 2),
                      "baseline": round(baseline, 2), "unit": "per s",
                      "ratio": round(ours / baseline, 3), "p99_ms": round(p99, 1),
                      "baseline_p99_ms": round(bare_p99, 1), "floor_per_s": round(floor, 2),
                      "floor_p99_ms": round(floor_p99, 1)}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairings", type=int, default=200)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    asyncio.run(main(args.pairings, args.clients, args.rounds))
