"""Two simulated cohorts with the same seed are the same program, event for event: same
streams, same event types in the same order, same payloads. On the real test services.

The two runs use different cohort ids on one Temporal server and one database (a cohort id
can run only once per stack), so ids are compared after replacing each run's cohort id with a
placeholder: that also proves the seed alone fixes the program, whatever the id. Timestamps
are left out of the comparison, and only they: every workflow's virtual clock starts at the
real time it was started and, between fast-forwards, moves on with real time, so recorded
times differ by the seconds between the runs and by milliseconds of processing (a meeting
scheduled 14 days after a start that differs by 3 ms differs by 3 ms too).
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.testing import TimeSkipper, TimeSkippingConfig

from domain.people import Person
from intake import load_program
from sebaya.operations import start_cohort
from sebaya.simulation import CohortSimulation
from tests.workflows.harness import running_worker

pytestmark = pytest.mark.temporal

ROOT = Path(__file__).resolve().parents[1]
SEED = 11
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$")


def small_roster() -> tuple[Any, list[Person]]:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "generate_people", ROOT / "examples" / "generate_people.py")
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = generator  # its dataclasses look their module up
    spec.loader.exec_module(generator)
    program = load_program(ROOT / "examples" / "program.yaml")
    people = generator.generate_people(program, mentors=9, mentees=10, seed=5, capacity=1)
    return program, people


def _without_timestamps(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_timestamps(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_timestamps(v) for v in value]
    if isinstance(value, str) and _TIMESTAMP.match(value):
        return "<time>"
    return value


async def _program(pool: asyncpg.Pool, cohort_id: str) -> dict[str, list[tuple[str, Any]]]:
    """stream (cohort id replaced) -> [(event type, payload without timestamps)]."""
    rows = await pool.fetch(
        "SELECT stream_id, type, payload::text AS payload FROM events "
        "WHERE stream_id = $1 OR stream_id LIKE $2 ORDER BY stream_id, version",
        f"cohort-{cohort_id}", f"pairing-{cohort_id}.%")
    streams: dict[str, list[tuple[str, Any]]] = {}
    for row in rows:
        payload = json.loads(row["payload"].replace(cohort_id, "<cohort>"))
        stream = row["stream_id"].replace(cohort_id, "<cohort>")
        streams.setdefault(stream, []).append((row["type"], _without_timestamps(payload)))
    return streams


@pytest.mark.slow
async def test_the_same_seed_replays_the_same_program(
    temporal_env, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    program, people = small_roster()
    skipper = TimeSkipper(temporal_env.client, config=TimeSkippingConfig(enabled=False))
    runs = []
    async with running_worker(skipper.client, db_pool, task_queue):
        for _ in range(2):
            cohort_id = f"repro-{uuid.uuid4().hex[:6]}"
            await start_cohort(db_pool, skipper.client, program=program, people=people,
                               task_queue=task_queue, cohort_id=cohort_id, started_by="test")
            sim = CohortSimulation(skipper.client, skipper, cohort_id, seed=SEED,
                                   pool=db_pool, say=lambda _line: None)
            result = await sim.run()
            runs.append((result, sim.log.updates_sent, await _program(db_pool, cohort_id)))

    (first, sent_1, streams_1), (second, sent_2, streams_2) = runs
    assert first.launched >= 6 and first.exited >= 1 and first.rematched >= 1  # the stories ran
    assert (first.launched, first.completed, first.exited, first.rematched) == (
        second.launched, second.completed, second.exited, second.rematched)
    assert list(streams_1) == list(streams_2)
    differences = [
        f"{stream} event {n}: {one} != {two}"
        for stream, events in streams_1.items()
        for n, (one, two) in enumerate(zip(events, streams_2[stream], strict=False), 1)
        if one != two
    ] + [f"{stream}: {len(events)} != {len(streams_2[stream])} events"
         for stream, events in streams_1.items() if len(events) != len(streams_2[stream])]
    assert not differences, "\n".join(differences[:12])
    assert sent_1 == sent_2
