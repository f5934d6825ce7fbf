"""The projector following real PairingWorkflows as they append (Temporal dev server, virtual
time): each row ends equal to what the workflow itself holds."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import pytest

from domain import commands as c
from domain import events as e
from eventstore import EventStore
from projections import Projector, projection_status
from projections.pairing import JSON_COLUMNS, PAIRING_COLUMNS, pairing_record
from tests.audit.live import first_weeks, start
from tests.projections.views import dump_views, past_horizon
from tests.workflows.harness import running_worker
from workflows.pairing import PairingWorkflow

pytestmark = pytest.mark.temporal


async def test_projection_of_live_pairings_equals_their_workflow_state(
    temporal_env: Any, db_pool: asyncpg.Pool, store: EventStore, task_queue: str
) -> None:
    cohort = f"CP{uuid.uuid4().hex[:6]}"
    stop = asyncio.Event()
    follower = asyncio.create_task(
        Projector(store, batch_size=4).run(poll_interval=0.05, stop_event=stop))
    async with running_worker(temporal_env.client, db_pool, task_queue):
        handles = [await start(temporal_env.client, task_queue, cohort, f"M{i}", f"E{i}")
                   for i in (1, 2)]
        await asyncio.gather(*(first_weeks(temporal_env, h, f"M{i}", f"E{i}")
                               for i, h in zip((1, 2), handles, strict=True)))
        await handles[0].execute_update(PairingWorkflow.request_exit, c.RequestExit(
            actor=c.Actor.employee("E1"), reason=e.ExitReason.NOT_A_FIT))
        await handles[0].result()
        finals = [await h.query(PairingWorkflow.state) for h in handles]
        total = sum(s.version for s in finals)
        await past_horizon(db_pool)
        for _ in range(200):
            status = await projection_status(db_pool)
            if status.events_applied == total and status.events_behind == 0:
                break
            await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(follower, timeout=10)

    columns = ", ".join(f"{c}::text AS {c}" if c in JSON_COLUMNS else c
                        for c in PAIRING_COLUMNS)
    for state in finals:
        row = await db_pool.fetchrow(f"SELECT {columns} FROM pairing_view "
                                     "WHERE pairing_id = $1", state.pairing_id)
        records = await store.read_stream(f"pairing-{state.pairing_id}")
        expected = pairing_record(state, cross_functional=False,
                                  last_event_at=records[-1].metadata.occurred_at)
        stored = {c: json.loads(row[c]) if c in JSON_COLUMNS else row[c]
                  for c in PAIRING_COLUMNS}
        assert stored == expected, {c for c in stored if stored[c] != expected[c]}
    cohort_row = await db_pool.fetchrow("SELECT pairings_by_phase::text AS p, phase "
                                        "FROM cohort_view WHERE cohort_id = $1", cohort)
    assert json.loads(cohort_row["p"]) == {"exited": 1, "active": 1}
    assert cohort_row["phase"] == "unknown"  # no cohort workflow here, only its pairings

    followed = await dump_views(db_pool)
    await Projector(store).rebuild()
    assert await dump_views(db_pool) == followed
