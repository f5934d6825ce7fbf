"""Helpers for the cohort scale test: a generated roster, real-time polling of a busy worker,
sizes of what crosses Temporal, a lower continue-as-new bound for cohorts, and bulk clean-up.

Nothing here mocks Temporal or Postgres; the polls wait for a worker that is processing (real
time), never for a workflow timer (those are moved with ``advance_to``).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    StartWorkflowInput,
    WorkflowHandle,
)
from temporalio.service import RPCError

from domain.people import Person
from domain.program import ProgramSpec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

T = TypeVar("T")


def generated_people(program: ProgramSpec, total: int, *, seed: int,
                     mentee_share: float = 0.67, capacity: int = 2) -> list[Person]:
    """``total`` people from examples/generate_people.py (seeded, so always the same roster):
    about two mentees per mentor, every mentor with room for ``capacity`` mentees."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    from generate_people import generate_people

    mentees = round(total * mentee_share)
    return generate_people(program, mentors=total - mentees, mentees=mentees, seed=seed,
                           capacity=capacity)


async def poll(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], what: str, *,
               within: float, every: float = 0.5) -> T:
    """Call ``probe`` until ``done`` holds, for at most ``within`` seconds of real time (a
    worker is busy; no workflow timer is awaited).

    RPC errors count as "not yet": a query may reach a run that has just continued as new, or
    time out while the worker is saturated."""
    deadline = time.monotonic() + within
    last: Any = None
    while True:
        try:
            last = await probe()
            if done(last):
                return last
        except RPCError as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {within:.0f}s waiting for {what}; last: "
                                 f"{str(last)[:500]}")
        await asyncio.sleep(every)  # real-time poll of worker progress, not a workflow timer


async def count(client: Client, query: str) -> int:
    return (await client.count_workflows(query)).count


async def payload_bytes(client: Client, value: Any) -> int:
    """Size of ``value`` as Temporal carries it (the client's data converter)."""
    [payload] = await client.data_converter.encode([value])
    return payload.ByteSize()


async def history_of(handle: WorkflowHandle[Any, Any]) -> tuple[int, int]:
    """(events, bytes) of the run ``handle`` designates (the latest run without a run id)."""
    info = (await handle.describe()).raw_description.workflow_execution_info
    return info.history_length, info.history_size_bytes


async def start_input_bytes(handle: WorkflowHandle[Any, Any]) -> int:
    """Size of the input a run started with (for a continued run: the carried state)."""
    async for event in handle.fetch_history_events():
        payloads = event.workflow_execution_started_event_attributes.input.payloads
        return sum(p.ByteSize() for p in payloads)
    raise AssertionError("the run has no history")


def with_cohort_history_limit(client: Client, max_history_events: int) -> Client:
    """``client``, but every CohortWorkflow it starts continues as new past
    ``max_history_events`` (``sebaya.operations.start_cohort`` has no such parameter)."""
    config = client.config()
    config["interceptors"] = [*config["interceptors"], _CohortHistoryLimit(max_history_events)]
    return Client(**config)


class _CohortHistoryLimit(Interceptor):
    def __init__(self, max_history_events: int) -> None:
        self._limit = max_history_events

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _CohortHistoryLimitOutbound(next, self._limit)


class _CohortHistoryLimitOutbound(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, limit: int) -> None:
        super().__init__(next)
        self._limit = limit

    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        if input.workflow == "CohortWorkflow":
            [cohort_input] = input.args
            input.args = [cohort_input.model_copy(update={"max_history_events": self._limit})]
        return await super().start_workflow(input)


async def terminate_all(client: Client, query: str, *, reason: str,
                        concurrency: int = 32) -> int:
    """Terminate every running workflow matching ``query``; returns how many.

    One RPC per workflow with bounded concurrency: about 200 a second on the dev server. (A
    server batch operation is one RPC but its batcher is held to 50 a second: two minutes for
    6,000 pairings.)"""
    running = f"({query}) AND ExecutionStatus = 'Running'"
    ids = [wf.id async for wf in client.list_workflows(running)]
    gate = asyncio.Semaphore(concurrency)

    async def one(workflow_id: str) -> None:
        async with gate:
            try:
                await client.get_workflow_handle(workflow_id).terminate(reason=reason)
            except RPCError as exc:
                if "already completed" not in str(exc) and "not found" not in str(exc):
                    raise

    await asyncio.gather(*(one(i) for i in ids))
    return len(ids)
