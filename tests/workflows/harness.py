"""Drive pairings through virtual time on the real dev server, as participants would.

``advance_to`` moves one workflow's virtual clock with the server's fast-forward; timers that
fall inside the jump fire in order, exactly as they would in real time.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import build_activities
from domain import commands as c
from domain import events as e
from domain.ids import pairing_workflow_id
from domain.rules import GroundRules
from eventstore import EventStore
from sebaya.catalog import domain_registry
from workflows import ALL_WORKFLOWS
from workflows.pairing import PairingInput, PairingWorkflow

TOPICS = ("adaptasi budaya kerja", "keterampilan IT", "kepemimpinan", "karier")


@asynccontextmanager
async def running_worker(
    client: Client, pool: asyncpg.Pool, task_queue: str
) -> AsyncIterator[Worker]:
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=ALL_WORKFLOWS,
        activities=build_activities(pool),
        max_concurrent_workflow_tasks=50,
    )
    async with worker:
        yield worker


def store_for(pool: asyncpg.Pool) -> EventStore:
    return EventStore(pool, domain_registry())


def six_month_rules(**overrides: Any) -> GroundRules:
    return GroundRules(topics=TOPICS, **overrides)


async def start_pairing(
    client: Client, task_queue: str, *, rules: GroundRules | None = None,
    mentor: str = "M001", mentee: str = "E001", **input_overrides: Any,
) -> WorkflowHandle[PairingWorkflow, Any]:
    pairing_id = f"T{uuid.uuid4().hex[:8]}"
    start = c.StartPairing(
        actor=c.Actor.ops("ops-test"), pairing_id=pairing_id, cohort_id="C-test",
        mentor_id=mentor, mentee_id=mentee, ground_rules=rules or six_month_rules(),
        match_score=0.82, explanation={"questionnaire": 0.7, "skills": 1.0},
    )
    return await client.start_workflow(
        PairingWorkflow.run,
        PairingInput(start=start, **input_overrides),
        id=pairing_workflow_id(pairing_id),
        task_queue=task_queue,
    )


async def advance_to(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any],
                     target: datetime) -> None:
    now = await env.get_current_time(handle)
    if target > now:
        await env.fast_forward(handle, target - now)


async def advance_by(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any],
                     delta: timedelta) -> None:
    await env.fast_forward(handle, delta)


def goals(prefix: str, n: int = 2) -> tuple[e.Goal, ...]:
    return tuple(
        e.Goal(goal_id=f"{prefix}-{i}", title=f"Tujuan {prefix} {i}",
               success_measure="dinilai bersama di evaluasi akhir")
        for i in range(1, n + 1)
    )


async def stream_types(store: EventStore, stream_id: str) -> list[str]:
    return [r.type for r in await store.read_stream(stream_id)]


def decode_all(records: Sequence[Any]) -> list[e.DomainEvent]:
    registry = domain_registry()
    return [registry.decode(r) for r in records]  # type: ignore[misc]


async def started_state(handle: WorkflowHandle[Any, Any]) -> Any:
    """The pairing's state once its first decision (the match) is recorded."""
    from domain.pairing import Phase
    from workflows.pairing import PairingWorkflow

    for _ in range(200):
        state = await handle.query(PairingWorkflow.state)
        if state.phase is not Phase.NOT_STARTED:
            return state
        await asyncio.sleep(0.05)  # real-time poll for the worker's first task, not a timer
    raise AssertionError("pairing did not start")
