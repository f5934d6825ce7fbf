"""Benchmark: a whole sample cohort from match to the last final evaluation, in virtual time.

Runs on the embedded stack, as ``make demo`` does (an embedded Postgres, a Temporal dev server
with per-workflow time skipping and the real ``python -m worker`` process, all in a scratch
state folder started here and stopped at the end):

- ours: ``--people`` generated people (examples/generate_people.py, two mentees per mentor,
  capacity 2, the sample program examples/program.yaml) are registered and matched by the
  CohortWorkflow, every pair runs as its own PairingWorkflow, and the seeded simulation of
  ``sebaya demo`` (sebaya/simulation.py) lives every pairing to its end: goals, weekly
  meetings, mid-point reviews, exits and rematches, final evaluations. Timed from
  ``start_cohort`` until the cohort workflow's result.
- baseline: as many bare workflows as the cohort launched pairings, each firing the same
  number of weekly timers as one pairing's lifetime (program length plus the final-evaluation
  window, a timer a week), all started at once with unbounded time skipping on the same server
  in the same run: the floor this server allows for that many weekly timers. A worker in this
  process runs them (unsandboxed: there is nothing in them to protect).

Prints progress with wall-clock offsets, the processes to profile (``py-spy dump --pid``),
then last: {"bench": "cohort_simulation", "ours": minutes, "baseline": minutes, "unit": "min",
"ratio": ours/baseline}

Usage: python bench/cohort_sim.py [--people 10000] [--seed 7] [--skip-baseline]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import psutil
from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.testing import TimeSkipper, TimeSkippingConfig
from temporalio.worker import Worker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

from generate_people import generate_people  # noqa: E402

from intake import load_program  # noqa: E402
from sebaya.bootstrap import open_infrastructure  # noqa: E402
from sebaya.devstack import DevStack  # noqa: E402
from sebaya.logging import configure_logging  # noqa: E402
from sebaya.operations import start_cohort  # noqa: E402
from sebaya.settings import Settings  # noqa: E402
from sebaya.simulation import CohortSimulation  # noqa: E402

WEEK = timedelta(weeks=1)
MENTEE_SHARE, CAPACITY, PEOPLE_SEED = 0.67, 2, 10_000  # as tests/workflows/test_cohort_scale.py
EXTERNAL = ("SEBAYA_DATABASE_URL", "TEMPORAL_ADDRESS")


# Not sandboxed: this script's module does path setup at import, which the sandbox refuses.
@workflow.defn(sandboxed=False)
class WeeklyTimers:
    @workflow.run
    async def run(self, weeks: int) -> int:
        for _ in range(weeks):
            await workflow.sleep(WEEK)
        return weeks


def cpu_seconds(pids: dict[str, int | None]) -> dict[str, float]:
    """User+system CPU seconds so far of each process and its children (Postgres backends);
    this script's own children are the stack's processes, counted under their own names."""
    used: dict[str, float] = {}
    for name, pid in pids.items():
        if pid is None:
            continue
        try:
            proc = psutil.Process(pid)
            total = 0.0
            family = [proc] if pid == os.getpid() else [proc, *proc.children(recursive=True)]
            for each in family:
                times = each.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            continue
        used[name] = round(total, 1)
    return used


class Clock:
    def __init__(self) -> None:
        self.began = time.monotonic()

    def say(self, line: str) -> None:
        print(f"[{time.monotonic() - self.began:7.1f} s] {line}", flush=True)


async def run_cohort(settings: Settings, people_count: int, seed: int,
                     clock: Clock) -> tuple[float, int, int]:
    """Minutes from start_cohort to the cohort's result; pairings launched; weekly timers."""
    program = load_program(ROOT / "examples" / "program.yaml")
    mentees = round(people_count * MENTEE_SHARE)
    people = generate_people(program, mentors=people_count - mentees, mentees=mentees,
                             seed=PEOPLE_SEED, capacity=CAPACITY)
    rules = program.ground_rules
    if rules.program_length_days is None:
        raise SystemExit("the sample program must have a length (an end to simulate to)")
    # One timer a week over a pairing's life: the program, then the final-evaluation window.
    weeks = math.ceil((rules.program_length_days + rules.final_evaluation_window_days) / 7)
    async with open_infrastructure(settings, pool_max_size=20) as infra:
        skipper = TimeSkipper(infra.temporal, config=TimeSkippingConfig(enabled=False))
        cohort_id = f"bench{uuid.uuid4().hex[:6]}"
        began = time.monotonic()
        await start_cohort(infra.pool, skipper.client, program=program, people=people,
                           task_queue=infra.services.task_queue, cohort_id=cohort_id,
                           started_by="bench")
        clock.say(f"cohort {cohort_id}: {len(people)} people ({mentees} mentees)")
        sim = CohortSimulation(skipper.client, skipper, cohort_id, seed=seed, pool=infra.pool,
                               say=clock.say)
        result = await sim.run()
        minutes = (time.monotonic() - began) / 60
        clock.say(f"ours: {result.launched} pairings ({result.completed} completed, "
                  f"{result.exited} exited, {result.rematched} rematched), "
                  f"{sim.log.updates_sent} participant actions in {minutes:.2f} min")
        return minutes, result.launched, weeks


async def run_baseline(settings: Settings, workflows: int, weeks: int, clock: Clock) -> float:
    """Minutes for ``workflows`` bare workflows of ``weeks`` weekly timers, all at once."""
    async with open_infrastructure(settings) as infra:
        skipper = TimeSkipper(infra.temporal, config=TimeSkippingConfig(enabled=True))
        queue = f"bench-timers-{uuid.uuid4().hex[:6]}"
        async with Worker(skipper.client, task_queue=queue, workflows=[WeeklyTimers],
                          max_concurrent_workflow_tasks=200):
            began = time.monotonic()
            handles = await asyncio.gather(*(
                skipper.client.start_workflow(
                    WeeklyTimers.run, weeks, id=f"timers-{i}-{uuid.uuid4().hex[:6]}",
                    task_queue=queue, id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
                for i in range(workflows)))
            fired = await asyncio.gather(*(h.result() for h in handles))
            minutes = (time.monotonic() - began) / 60
    assert all(n == weeks for n in fired)
    clock.say(f"baseline: {workflows} bare workflows x {weeks} weekly timers in "
              f"{minutes:.2f} min")
    return minutes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7, help="seed of the simulated people")
    parser.add_argument("--skip-baseline", action="store_true",
                        help="only the cohort (prints no JSON line)")
    args = parser.parse_args()
    for name in EXTERNAL:
        os.environ.pop(name, None)  # the embedded stack, never a configured one
    configure_logging("json", "WARNING")
    clock = Clock()
    with tempfile.TemporaryDirectory(prefix="sebaya-cohort-bench-") as state_dir:
        os.environ["SEBAYA_STATE_DIR"] = state_dir
        # Every running pairing acts every simulated week: with fewer cached than running
        # (the SDK's 1,000 against ~6,400 pairings at 10,000 people) each task would replay
        # its pairing's whole history. The worker inherits this environment.
        os.environ.setdefault("SEBAYA_WORKER_MAX_CACHED_WORKFLOWS",
                              str(max(1000, args.people)))
        settings = Settings(state_dir=Path(state_dir))
        stack = DevStack(settings, report=clock.say)
        try:
            status = stack.up(worker=True)
            pids = {s.name: s.pid for s in status.services}
            clock.say(f"processes to profile: {pids}, this script {os.getpid()}")
            pids["simulator"] = os.getpid()
            before = cpu_seconds(pids)
            ours, launched, weeks = asyncio.run(run_cohort(settings, args.people, args.seed,
                                                           clock))
            after = cpu_seconds(pids)
            clock.say("CPU seconds during the cohort: " + ", ".join(
                f"{name} {after[name] - before.get(name, 0.0):.0f}" for name in after))
            if args.skip_baseline:
                return
            baseline = asyncio.run(run_baseline(settings, launched, weeks, clock))
        except BaseException:
            kept = Path(tempfile.gettempdir()) / f"cohort-bench-logs-{os.getpid()}"
            shutil.copytree(stack.logs_dir, kept, dirs_exist_ok=True)
            clock.say(f"failed; the stack's logs are kept in {kept}")
            raise
        finally:
            stack.down()
    print(json.dumps({"bench": "cohort_simulation", "people": args.people,
                      "ours": round(ours, 3), "baseline": round(baseline, 3), "unit": "min",
                      "ratio": round(ours / baseline, 3)}))


if __name__ == "__main__":
    main()
