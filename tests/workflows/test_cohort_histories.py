"""Small real cohorts whose CohortWorkflow histories are committed for the replay tests.

Each test drives one path end to end on the real dev server and Postgres and checks what the
cohort's stream says; with SEBAYA_RECORD_HISTORIES=1 it also saves the cohort workflow's
history as ``tests/histories/<name>.json`` (``tests/workflows/test_replay.py`` replays every
one on every run). The names say which code recorded them: ``cohort_v1_*`` come from the
cohort workflow before it followed the pairing's decide/validator pattern, ``cohort_v2_*``
from the code after it.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.client import WorkflowHandle

from domain import commands as c
from domain import events as e
from domain.cohort import CohortPhase, CohortState
from domain.cohort_commands import ApproveProposal, RecordParticipantLeft
from domain.ids import cohort_stream, pairing_workflow_id
from domain.people import Person, Role
from domain.program import Approval
from intake import load_program
from tests.workflows.harness import (
    advance_to,
    maybe_record_history,
    running_worker,
    started_state,
    store_for,
)
from tests.workflows.test_cohort import person, start_cohort, wait_for
from workflows.cohort import CohortWorkflow
from workflows.pairing import PairingWorkflow

pytestmark = pytest.mark.temporal
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Which code recorded the histories these tests save (see the module docstring).
GENERATION = "v2"


def people(mentors: int, mentees: int) -> list[Person]:
    departments = ("Engineering", "Finance", "Legal", "Sales", "HR", "Marketing")
    return ([person(f"M{i}", Role.MENTOR, 4, departments[i - 1], date(2018, i, 1))
             for i in range(1, mentors + 1)]
            + [person(f"E{i}", Role.MENTEE, 3, departments[-i], date(2026, 9, i))
               for i in range(1, mentees + 1)])


async def exit_pairing(env: Any, state: CohortState, pairing_id: str,
                       reason: e.ExitReason = e.ExitReason.INACTIVITY,
                       by: c.Actor | None = None, after: timedelta = timedelta(days=1)) -> None:
    """Start the pairing's clock if it has not started yet, then end it early."""
    handle = env.client.get_workflow_handle_for(PairingWorkflow.run,
                                                pairing_workflow_id(pairing_id))
    assert state.starts_at is not None
    await advance_to(env, handle, state.starts_at + after)
    await started_state(handle)
    await handle.execute_update(PairingWorkflow.request_exit, c.RequestExit(
        actor=by or c.Actor.ops("ops-ani"), reason=reason))


async def stream_types(db_pool: asyncpg.Pool, cohort_id: str) -> list[str]:
    return [r.type for r in await store_for(db_pool).read_stream(cohort_stream(cohort_id))]


async def record(handle: WorkflowHandle[Any, Any], scenario: str) -> None:
    await maybe_record_history(handle, f"cohort_{GENERATION}_{scenario}")


async def test_auto_approved_cohort_runs_to_completion(
    temporal_env: Any, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    env = temporal_env
    program = load_program(EXAMPLES / "program.yaml")
    assert program.approval is Approval.AUTO
    async with running_worker(env.client, db_pool, task_queue):
        handle = await start_cohort(env.client, db_pool, task_queue, program, people(2, 2))
        state = await wait_for(handle, lambda s: s.phase is CohortPhase.SCHEDULED, "approved")
        await advance_to(env, handle, state.starts_at + timedelta(minutes=1))
        state = await wait_for(handle, lambda s: s.launched == 2, "launched")
        for pairing_id in sorted(state.active):
            await exit_pairing(env, state, pairing_id)
        result = await handle.result()
        await record(handle, "auto_approve_completed")
    assert (result.launched, result.exited, result.rematched) == (2, 2, 0)
    types = await stream_types(db_pool, state.cohort_id)
    assert types[:3] == ["CohortStarted", "MatchRunRecorded", "ProposalApproved"]
    assert types.count("PairingEnded") == 2 and types[-1] == "CohortCompleted"
    assert "ParticipantWaiting" not in types  # both went quiet: nobody waits for the other


async def test_manual_approval_with_a_drop_and_a_swap(
    temporal_env: Any, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    env = temporal_env
    program = load_program(EXAMPLES / "program.yaml").model_copy(
        update={"approval": Approval.MANUAL})
    async with running_worker(env.client, db_pool, task_queue):
        handle = await start_cohort(env.client, db_pool, task_queue, program, people(3, 3))
        state = await wait_for(handle, lambda s: s.phase is CohortPhase.AWAITING_APPROVAL,
                               "proposal")
        pairs = sorted((p.mentor, p.mentee) for p in state.proposal)
        assert len(pairs) == 3
        await handle.execute_update(CohortWorkflow.approve, ApproveProposal(
            approved_by="ops-ani", drop=(pairs[2],), swap=((pairs[0], pairs[1]),)))
        state = await handle.query(CohortWorkflow.state)
        assert sorted((s.mentor_id, s.mentee_id) for s in state.pending_launch) == sorted(
            [(pairs[1][0], pairs[0][1]), (pairs[0][0], pairs[1][1])])
        await advance_to(env, handle, state.starts_at + timedelta(minutes=1))
        state = await wait_for(handle, lambda s: s.launched == 2, "launched")
        for pairing_id in sorted(state.active):
            await exit_pairing(env, state, pairing_id)
        result = await handle.result()
        await record(handle, "manual_drop_swap")
    assert (result.launched, result.exited) == (2, 2)
    types = await stream_types(db_pool, state.cohort_id)
    assert types.count("ProposalAdjusted") == 2 and types[-1] == "CohortCompleted"


async def test_an_exit_is_followed_by_a_rematch(
    temporal_env: Any, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    env = temporal_env
    program = load_program(EXAMPLES / "program.yaml")
    async with running_worker(env.client, db_pool, task_queue):
        # Three mentors for two mentees: the spare one is there for the rematch.
        handle = await start_cohort(env.client, db_pool, task_queue, program, people(3, 2))
        state = await wait_for(handle, lambda s: s.phase is CohortPhase.SCHEDULED, "approved")
        await advance_to(env, handle, state.starts_at + timedelta(minutes=1))
        state = await wait_for(handle, lambda s: s.launched == 2, "launched")
        first, second = sorted(state.active)
        left_behind = state.active[first]
        await exit_pairing(env, state, first, e.ExitReason.NOT_A_FIT,
                           by=c.Actor.employee(left_behind.mentor_id))
        state = await wait_for(handle, lambda s: left_behind.mentee_id in s.waiting,
                               "waiting")
        await advance_to(env, handle, state.starts_at + timedelta(days=9))
        state = await wait_for(handle, lambda s: s.rematched == 1, "rematched")
        rematch = next(p for p, a in state.active.items()
                       if a.mentee_id == left_behind.mentee_id)
        assert rematch.endswith(".2") and state.active[rematch].mentor_id != left_behind.mentor_id
        for pairing_id in (rematch, second):
            await exit_pairing(env, state, pairing_id, after=timedelta(days=10))
        result = await handle.result()
        await record(handle, "exit_rematch")
    assert (result.launched, result.exited, result.rematched) == (3, 3, 1)
    types = await stream_types(db_pool, state.cohort_id)
    assert types.count("MatchRunRecorded") == 2 and types[-1] == "CohortCompleted"


async def test_a_participant_leaves_the_company(
    temporal_env: Any, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    env = temporal_env
    program = load_program(EXAMPLES / "program.yaml")
    async with running_worker(env.client, db_pool, task_queue):
        handle = await start_cohort(env.client, db_pool, task_queue, program, people(2, 2))
        state = await wait_for(handle, lambda s: s.phase is CohortPhase.SCHEDULED, "approved")
        await advance_to(env, handle, state.starts_at + timedelta(minutes=1))
        state = await wait_for(handle, lambda s: s.launched == 2, "launched")
        first, second = sorted(state.active)
        pairing = env.client.get_workflow_handle_for(PairingWorkflow.run,
                                                     pairing_workflow_id(first))
        await advance_to(env, pairing, state.starts_at + timedelta(days=2))
        leaver = (await started_state(pairing)).mentee_id
        ended = await handle.execute_update(CohortWorkflow.participant_left,
                                            RecordParticipantLeft(
                                                employee_id=leaver, left_on=date(2027, 1, 13),
                                                recorded_by="hr-import"))
        assert ended == [first]
        # The mentor left behind waits a week; every mentee is busy or gone, so no rematch.
        state = await wait_for(handle, lambda s: first not in s.active and s.waiting,
                               "the mentor waits")
        await advance_to(env, handle, state.starts_at + timedelta(days=10))
        state = await wait_for(handle, lambda s: not s.waiting, "no rematch possible")
        await exit_pairing(env, state, second)
        result = await handle.result()
        await record(handle, "participant_left")
    assert (result.launched, result.exited, result.rematched) == (2, 2, 0)
    types = await stream_types(db_pool, state.cohort_id)
    assert "ParticipantLeft" in types and "RematchNotPossible" in types
    assert types[-1] == "CohortCompleted"
