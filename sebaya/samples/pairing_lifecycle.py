"""A model pairing driven through virtual time on a real Temporal server, as its two
participants would: goals within the hour, every meeting held, both reviews, both final
evaluations. The lifecycle tests and ``bench/lifecycle.py`` share it.

``advance_to`` moves one workflow's virtual clock with the server's fast-forward; timers that
fall inside the jump fire in order, exactly as they would in real time.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from domain import commands as c
from domain import events as e
from domain.ids import pairing_workflow_id
from domain.rules import GroundRules
from workflows.pairing import PairingInput, PairingWorkflow

TOPICS = ("adaptasi budaya kerja", "keterampilan IT", "kepemimpinan", "karier")


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


async def started_state(handle: WorkflowHandle[Any, Any]) -> Any:
    """The pairing's state once its first decision (the match) is recorded.

    Waits for the first completed workflow task in the history before asking: a query that
    reaches the workflow while its first task is still running the append (a local activity)
    makes the SDK complete that task early and start another, three history events that no
    production pairing pays and that ``bench/lifecycle.py`` would count."""
    from domain.pairing import Phase
    from workflows.pairing import PairingWorkflow

    async for event in handle.fetch_history_events(wait_new_event=True):
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            break
    for _ in range(200):
        state = await handle.query(PairingWorkflow.state)
        if state.phase is not Phase.NOT_STARTED:
            return state
        await asyncio.sleep(0.05)  # real-time poll for the worker's first task, not a timer
    raise AssertionError("pairing did not start")


MENTOR_ACTOR, MENTEE_ACTOR = c.Actor.employee("M001"), c.Actor.employee("E001")
HOUR = timedelta(hours=1)


async def drive_weekly_lifecycle(
    env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any], *,
    between_meetings: Any = None,
) -> Any:
    """A model pair: goals within the hour, every meeting held an hour into its slot, both
    mid-point reviews an hour after the window opens, both final evaluations an hour after the
    program ends. ``between_meetings(meeting_no)`` runs before each meeting (crash tests)."""
    from workflows.pairing import PairingWorkflow

    state = await started_state(handle)
    t0 = state.started_at
    await advance_to(env, handle, t0 + HOUR)
    await handle.execute_update(PairingWorkflow.set_goals,
                                c.SetGoals(actor=MENTEE_ACTOR, goals=goals("it")))
    await handle.execute_update(PairingWorkflow.set_goals,
                                c.SetGoals(actor=MENTOR_ACTOR, goals=goals("lead")))
    mid, end = t0 + timedelta(days=91), t0 + timedelta(days=182)
    reviewed = False
    while True:
        state = await handle.query(PairingWorkflow.state)
        pending = state.next_meeting
        if not reviewed and (pending is None or pending.scheduled_at > mid):
            await advance_to(env, handle, mid + HOUR)
            for who, sat in ((MENTEE_ACTOR, 4), (MENTOR_ACTOR, 5)):
                await handle.execute_update(
                    PairingWorkflow.submit_midpoint_review,
                    c.SubmitMidpointReview(actor=who, satisfaction=sat, wants_to_continue=True),
                )
            reviewed = True
            continue
        if pending is None:
            break
        if between_meetings is not None:
            await between_meetings(pending.meeting_no)
        await advance_to(env, handle, pending.scheduled_at + HOUR)
        await handle.execute_update(
            PairingWorkflow.log_meeting,
            c.LogMeeting(actor=MENTEE_ACTOR if pending.meeting_no % 2 else MENTOR_ACTOR,
                         meeting_no=pending.meeting_no, held=True,
                         topics=("keterampilan IT", "karier"),
                         goal_progress={"it-1": min(100, 4 * pending.meeting_no)}),
        )
    await advance_to(env, handle, end + HOUR)
    for who in (MENTEE_ACTOR, MENTOR_ACTOR):
        await handle.execute_update(
            PairingWorkflow.submit_final_evaluation,
            c.SubmitFinalEvaluation(actor=who, relationship_rating=5, program_rating=4,
                                    learned="Berbagi pengalaman dua arah",
                                    would_recommend=True,
                                    goal_attainment={"it-1": 90, "lead-1": 70}),
        )
    return await handle.result()
