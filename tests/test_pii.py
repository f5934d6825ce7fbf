"""Names and e-mail addresses never reach Temporal.

The sample cohort (examples/program.yaml + examples/people.csv, 60 people) is matched,
launched and run for three weeks of virtual time, with goals set and meetings logged in a few
pairings and reminders firing in the others. Then every workflow run on the task queue is
fetched from the server and its raw history bytes are scanned for every name and e-mail in
people.csv: none may appear.
"""

from __future__ import annotations

import asyncio
import csv
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from domain import commands as c
from domain.cohort import CohortPhase
from domain.ids import pairing_workflow_id
from intake import load_people, load_program
from tests.workflows.harness import advance_to, goals, running_worker, started_state
from tests.workflows.test_cohort import start_cohort, wait_for
from workflows.pairing import PairingWorkflow

pytestmark = pytest.mark.temporal
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
WEEKS = 3


def personal_data() -> list[str]:
    with (EXAMPLES / "people.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    values = {row["name"] for row in rows} | {row["email"] for row in rows}
    assert len(values) == 2 * len(rows) and all(values)
    return sorted(values)


def needles(value: str) -> set[bytes]:
    """The forms a string takes in a history: raw UTF-8 (protobuf strings, plain payloads) and
    JSON-escaped (a non-ASCII character written as \\uXXXX)."""
    return {value.encode(), json.dumps(value)[1:-1].encode(), value.lower().encode()}


async def histories_on(client: Any, task_queue: str, at_least: int) -> dict[str, bytes]:
    """Raw history bytes of every workflow run on ``task_queue`` (all runs, closed or not)."""
    query = f'TaskQueue = "{task_queue}"'
    for _ in range(200):  # visibility is eventually consistent: wait for every run to show
        runs = [w async for w in client.list_workflows(query)]
        if len(runs) >= at_least:
            break
        await asyncio.sleep(0.1)  # real time: the visibility store catching up
    found = {}
    for run in runs:
        handle = client.get_workflow_handle(run.id, run_id=run.run_id)
        history = await handle.fetch_history()
        found[f"{run.id}/{run.run_id}"] = b"".join(e.SerializeToString()
                                                  for e in history.events)
    return found


async def test_no_name_or_email_reaches_any_workflow_history(
    temporal_env: Any, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    program = load_program(EXAMPLES / "program.yaml")
    people = load_people(EXAMPLES / "people.csv", program)
    env = temporal_env
    async with running_worker(env.client, db_pool, task_queue):
        cohort = await start_cohort(env.client, db_pool, task_queue, program, people)
        state = await wait_for(cohort, lambda s: s.phase is CohortPhase.SCHEDULED, "matched")
        proposed = len(state.pending_launch)
        assert state.starts_at is not None
        await advance_to(env, cohort, state.starts_at + timedelta(minutes=1))
        state = await wait_for(cohort, lambda s: s.launched == proposed, "launched")
        assert state.starts_at is not None
        pairings = sorted(state.active)

        handles = [env.client.get_workflow_handle_for(PairingWorkflow.run,
                                                      pairing_workflow_id(pairing_id))
                   for pairing_id in pairings]
        for handle in handles[:4]:  # a few active pairs: goals on day one, a meeting held
            await advance_to(env, handle, state.starts_at + timedelta(hours=2))
            matched = await started_state(handle)
            for who in (matched.mentee_id, matched.mentor_id):
                await handle.execute_update(PairingWorkflow.set_goals, c.SetGoals(
                    actor=c.Actor.employee(who), goals=goals(who)))
            meeting = (await handle.query(PairingWorkflow.state)).next_meeting
            assert meeting is not None
            await advance_to(env, handle, meeting.scheduled_at + timedelta(hours=1))
            await handle.execute_update(PairingWorkflow.log_meeting, c.LogMeeting(
                actor=c.Actor.employee(matched.mentee_id), meeting_no=meeting.meeting_no,
                held=True, topics=("karier",)))
        # Every pairing lives through the weeks (reminders and nudges fire as they fall due);
        # the pairings' clocks are independent, so they move together.
        await asyncio.gather(*(
            advance_to(env, handle, state.starts_at + timedelta(weeks=WEEKS))
            for handle in handles))
        await advance_to(env, cohort, state.starts_at + timedelta(weeks=WEEKS))
        for handle in handles[:4]:
            assert (await handle.query(PairingWorkflow.state)).meetings_held == 1

    histories = await histories_on(env.client, task_queue, at_least=len(pairings) + 1)
    assert len(histories) >= len(pairings) + 1
    total = sum(len(raw) for raw in histories.values())
    assert total > 100_000  # real histories, not empty shells

    # The scan can find what it looks for: the employee ids (which are meant to be there).
    assert any(people[0].employee_id.encode() in raw for raw in histories.values())
    leaks = [(where, value) for value in personal_data() for where, raw in histories.items()
             if any(form in raw for form in needles(value))]
    assert leaks == [], f"personal data in Temporal histories: {leaks[:10]}"
