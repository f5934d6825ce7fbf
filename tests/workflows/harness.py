"""Drive pairings through virtual time on the real dev server, as participants would.

``advance_to`` moves one workflow's virtual clock with the server's fast-forward; timers that
fall inside the jump fire in order, exactly as they would in real time.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from delivery.channels import LogChannel
from domain import events as e
from eventstore import EventRegistry, EventStore
from sebaya.bootstrap import build_registry, build_worker_activities

# The model pairing lives beside the code so bench/ can drive it too; tests import it here.
from sebaya.samples.pairing_lifecycle import (
    HOUR,
    MENTEE_ACTOR,
    MENTOR_ACTOR,
    TOPICS,
    advance_by,
    advance_to,
    drive_weekly_lifecycle,
    goals,
    six_month_rules,
    start_pairing,
    started_state,
)
from sebaya.settings import Settings
from workflows import ALL_WORKFLOWS

__all__ = [
    "HOUR", "MENTEE_ACTOR", "MENTOR_ACTOR", "TOPICS", "advance_by", "advance_to",
    "decode_all", "drive_weekly_lifecycle", "goals", "maybe_record_history", "query_state",
    "running_worker", "six_month_rules", "start_pairing", "started_state", "store_for",
    "stream_types",
]


@asynccontextmanager
async def running_worker(
    client: Client, pool: asyncpg.Pool, task_queue: str, *,
    registry: EventRegistry | None = None,
) -> AsyncIterator[Worker]:
    registry = registry or build_registry()
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=ALL_WORKFLOWS,
        activities=build_worker_activities(pool, registry, Settings(), client=client,
                                           channel=LogChannel()),
        max_concurrent_workflow_tasks=50,
    )
    async with worker:
        yield worker


def store_for(pool: asyncpg.Pool) -> EventStore:
    return EventStore(pool, build_registry())


async def stream_types(store: EventStore, stream_id: str) -> list[str]:
    return [r.type for r in await store.read_stream(stream_id)]


def decode_all(records: Sequence[Any]) -> list[e.DomainEvent]:
    registry = build_registry()
    return [registry.decode(r) for r in records]  # type: ignore[misc]


HISTORIES = Path(__file__).resolve().parents[1] / "histories"


async def maybe_record_history(handle: WorkflowHandle[Any, Any], name: str) -> None:
    """With SEBAYA_RECORD_HISTORIES=1, save this workflow's history for the replay tests.

    Committed histories are the contract with running pairings: every later version of the
    workflow code must replay them (``tests/workflows/test_replay.py``).
    Committed histories are never overwritten: record a new generation next to them with
    ``SEBAYA_HISTORY_SUFFIX`` (e.g. ``_one_timer``), so both keep replaying.
    """
    if os.environ.get("SEBAYA_RECORD_HISTORIES") != "1":
        return
    target = HISTORIES / f"{name}{os.environ.get('SEBAYA_HISTORY_SUFFIX', '')}.json"
    if target.exists():
        raise FileExistsError(f"{target} is committed; set SEBAYA_HISTORY_SUFFIX to record "
                              "a new generation next to it")
    history = await handle.fetch_history()
    HISTORIES.mkdir(exist_ok=True)
    target.write_text(history.to_json())


async def query_state(handle: WorkflowHandle[Any, Any]) -> Any:
    """Query a run that may have just continued as new (its first task not yet scheduled)."""
    from temporalio.service import RPCError

    from workflows.pairing import PairingWorkflow

    for _ in range(100):
        try:
            return await handle.query(PairingWorkflow.state)
        except RPCError as exc:
            if "not scheduled yet" not in str(exc):
                raise
        await asyncio.sleep(0.05)  # real-time retry of the RPC, not a workflow timer
    raise AssertionError("the workflow never became queryable")
