"""Operations find pairings in the Temporal Web UI by cohort, phase, at-risk flag and next due
time: the workflows set typed search attributes (ids and states only) as their state changes.
On the real dev server, with the visibility queries docs/operations.md gives."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client

from domain import commands as c
from domain.cohort import ApproveProposal, CohortPhase
from domain.ids import pairing_workflow_id
from domain.pairing import PairingState
from intake import load_program
from tests.workflows.harness import (
    MENTEE_ACTOR,
    MENTOR_ACTOR,
    advance_to,
    goals,
    running_worker,
    six_month_rules,
    started_state,
)  # fmt: skip
from tests.workflows.test_cohort import EXAMPLES, start_cohort, tiny_cohort, wait_for
from workflows.cohort import CohortWorkflow
from workflows.pairing import PairingInput, PairingWorkflow
from workflows.search_attributes import AT_RISK, COHORT_ID, NEXT_DUE, PHASE, at_risk

pytestmark = pytest.mark.temporal


async def _ids(client: Client, query: str, expected: set[str]) -> set[str]:
    """Workflow ids the visibility query finds, once the index has caught up with
    ``expected`` (visibility is eventually consistent; a few seconds at most)."""
    found: set[str] = set()
    for _ in range(100):
        found = {w.id async for w in client.list_workflows(query)}
        if found == expected:
            break
        await asyncio.sleep(0.1)  # wall-clock wait for the visibility index, not a timer
    return found


async def _start(client: Client, task_queue: str, cohort_id: str, mentee: str) -> Any:
    pairing_id = f"{cohort_id}.{mentee}.M001.1"
    start = c.StartPairing(
        actor=c.Actor.ops("ops-test"), pairing_id=pairing_id, cohort_id=cohort_id,
        mentor_id="M001", mentee_id=mentee, ground_rules=six_month_rules(), match_score=0.8)
    return await client.start_workflow(
        PairingWorkflow.run, PairingInput(start=start), id=pairing_workflow_id(pairing_id),
        task_queue=task_queue)


async def test_ops_find_the_pairings_of_a_cohort_at_risk(
    temporal_env, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    env, client = temporal_env, temporal_env.client
    cohort = f"C{uuid.uuid4().hex[:8]}"
    at_risk_query = f'SebayaCohortId = "{cohort}" AND SebayaAtRisk = true'
    async with running_worker(client, db_pool, task_queue):
        quiet = await _start(client, task_queue, cohort, "E001")
        steady = await _start(client, task_queue, cohort, "E002")
        for handle in (quiet, steady):
            state = await started_state(handle)
            await handle.execute_update(PairingWorkflow.set_goals,
                                        c.SetGoals(actor=MENTOR_ACTOR, goals=goals("lead")))
        assert await _ids(client, f'SebayaCohortId = "{cohort}"', {quiet.id, steady.id}) == {
            quiet.id, steady.id}
        assert await _ids(client, at_risk_query, set()) == set()

        # The first meeting of one pair is reported missed: that pairing is now at risk.
        first = state.next_meeting.scheduled_at
        await advance_to(env, quiet, first + timedelta(hours=2))
        await quiet.execute_update(PairingWorkflow.log_meeting, c.LogMeeting(
            actor=MENTEE_ACTOR, meeting_no=1, held=False))
        assert await _ids(client, at_risk_query, {quiet.id}) == {quiet.id}

        described = await quiet.describe()
        attrs = described.typed_search_attributes
        live: PairingState = await quiet.query(PairingWorkflow.state)
        assert attrs.get(COHORT_ID) == cohort
        assert attrs.get(PHASE) == live.phase.value
        assert attrs.get(AT_RISK) is True and at_risk(live)
        due = attrs.get(NEXT_DUE)
        assert due is not None and due > first
        # Times in queries as RFC 3339 in UTC, as the Web UI writes them.
        until = (due + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        by_due = f'SebayaCohortId = "{cohort}" AND SebayaNextDue <= "{until}"'
        assert await _ids(client, by_due, {quiet.id, steady.id}) == {quiet.id, steady.id}

        # A held meeting ends the streak: the flag clears.
        second = live.next_meeting
        assert second is not None
        await advance_to(env, quiet, second.scheduled_at + timedelta(hours=1))
        await quiet.execute_update(PairingWorkflow.log_meeting, c.LogMeeting(
            actor=MENTOR_ACTOR, meeting_no=second.meeting_no, held=True, minutes=60,
            topics=("karier",)))
        assert await _ids(client, at_risk_query, set()) == set()
        # No names anywhere: the attributes carry ids and states only.
        names = {k.name: v for k, v in (await quiet.describe()).typed_search_attributes}
        assert set(names) >= {"SebayaCohortId", "SebayaPhase", "SebayaAtRisk"}
        for handle in (quiet, steady):
            await handle.terminate("test over")


async def test_the_cohort_workflow_carries_its_id_and_phase(
    temporal_env, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    program = load_program(EXAMPLES / "program.yaml")
    client = temporal_env.client
    async with running_worker(client, db_pool, task_queue):
        handle = await start_cohort(client, db_pool, task_queue, program, tiny_cohort())
        await wait_for(handle, lambda s: s.phase is CohortPhase.AWAITING_APPROVAL
                       or s.phase is CohortPhase.SCHEDULED, "matched")
        if (await handle.query(CohortWorkflow.state)).phase is CohortPhase.AWAITING_APPROVAL:
            await handle.execute_update(CohortWorkflow.approve,
                                        ApproveProposal(approved_by="ops-test"))
        state = await wait_for(handle, lambda s: s.phase is CohortPhase.SCHEDULED, "scheduled")
        query = (f'WorkflowType = "CohortWorkflow" AND SebayaCohortId = "{state.cohort_id}" '
                 f'AND SebayaPhase = "scheduled"')
        assert await _ids(client, query, {handle.id}) == {handle.id}
        attrs = (await handle.describe()).typed_search_attributes
        assert attrs.get(NEXT_DUE) == state.starts_at  # the program's first day
        await handle.terminate("test over")
