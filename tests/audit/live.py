"""Driving real PairingWorkflows for the audit and projection tests."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowHandle

from domain import commands as c
from domain.ids import pairing_id_for, pairing_workflow_id
from tests.workflows.harness import advance_to, goals, six_month_rules, started_state
from workflows.pairing import PairingInput, PairingWorkflow

HOUR = timedelta(hours=1)


async def start(client: Client, task_queue: str, cohort_id: str, mentor: str, mentee: str
                ) -> WorkflowHandle[PairingWorkflow, Any]:
    """A pairing whose id, like production's, starts with its cohort's id."""
    pairing_id = pairing_id_for(cohort_id, mentor, mentee)
    command = c.StartPairing(
        actor=c.Actor.ops("ops-test"), pairing_id=pairing_id, cohort_id=cohort_id,
        mentor_id=mentor, mentee_id=mentee, ground_rules=six_month_rules(), match_score=0.8,
        explanation={"cross_functional": {"value": 0.0, "weight": 0.1, "points": 0.0}})
    return await client.start_workflow(PairingWorkflow.run, PairingInput(start=command),
                                       id=pairing_workflow_id(pairing_id),
                                       task_queue=task_queue)


async def first_weeks(env: Any, handle: WorkflowHandle[PairingWorkflow, Any],
                      mentor: str, mentee: str) -> None:
    """Goals on day one, the first meeting held, the second one missed (nudge)."""
    state = await started_state(handle)
    await advance_to(env, handle, state.started_at + HOUR)
    for who, prefix in ((mentee, "it"), (mentor, "lead")):
        await handle.execute_update(PairingWorkflow.set_goals, c.SetGoals(
            actor=c.Actor.employee(who), goals=goals(prefix)))
    pending = (await handle.query(PairingWorkflow.state)).next_meeting
    await advance_to(env, handle, pending.scheduled_at + HOUR)
    await handle.execute_update(PairingWorkflow.log_meeting, c.LogMeeting(
        actor=c.Actor.employee(mentee), meeting_no=pending.meeting_no, held=True,
        topics=("karier",), goal_progress={"it-1": 20}))
    # One timer a week: the second meeting's miss is recorded with the third meeting's
    # reminder (day 20), not at its own log deadline.
    await advance_to(env, handle, state.started_at + timedelta(days=20, hours=1))
