"""PairingWorkflow end to end: real Temporal dev server (virtual time), real Postgres."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import asyncpg
import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from domain import commands as c
from domain import events as e
from domain.ids import pairing_stream
from domain.pairing import PairingState, Phase, fold
from tests.workflows.harness import (
    advance_to,
    decode_all,
    drive_weekly_lifecycle,
    goals,
    maybe_record_history,
    running_worker,
    six_month_rules,
    start_pairing,
    started_state,
    store_for,
)
from workflows.pairing import PairingWorkflow

pytestmark = pytest.mark.temporal

MENTOR, MENTEE = c.Actor.employee("M001"), c.Actor.employee("E001")
H = timedelta(hours=1)


def expected_weekly_lifecycle(started_at: datetime) -> list[str]:
    """What a pair that sets goals on day 1, meets every week, reviews at the mid-point and
    evaluates at the end must leave in the store, built from the calendar independently of
    the workflow: clock events at their due times merged with the participants' actions."""
    rules = six_month_rules()
    end = started_at + timedelta(days=182)
    mid = started_at + timedelta(days=91)
    slots = []
    k = 1
    while (slot := rules.meeting_slot(started_at, k)) < end:
        slots.append(slot)
        k += 1
    timeline: list[tuple[datetime, int, list[str]]] = [
        (started_at, 0, ["PairingMatched", "MeetingScheduled"]),
        (started_at + H, 1, ["GoalsSet", "GoalsSet"]),
        (mid, 0, ["MidpointReviewOpened", "ReminderSent"]),
        (mid + H, 1, ["MidpointReviewSubmitted", "MidpointReviewSubmitted",
                      "MidpointReviewClosed"]),
        (end, 0, ["FinalEvaluationOpened", "ReminderSent"]),
        (end + H, 1, ["FinalEvaluationSubmitted", "FinalEvaluationSubmitted",
                      "PairingCompleted"]),
    ]
    for i, slot in enumerate(slots):
        timeline.append((slot - timedelta(hours=24), 0, ["ReminderSent"]))
        held = ["MeetingHeld"] + (["MeetingScheduled"] if i + 1 < len(slots) else [])
        timeline.append((slot + H, 1, held))
    return [t for _, _, types in sorted(timeline, key=lambda x: (x[0], x[1])) for t in types]


@pytest.mark.slow
async def test_six_month_weekly_pairing_from_match_to_completion(
    temporal_env, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    store = store_for(db_pool)
    async with running_worker(temporal_env.client, db_pool, task_queue):
        handle = await start_pairing(temporal_env.client, task_queue)
        t0 = (await started_state(handle)).started_at
        outcome = await drive_weekly_lifecycle(temporal_env, handle)
        assert outcome.phase is Phase.COMPLETED
        final_state: PairingState = await handle.query(PairingWorkflow.state)
        await maybe_record_history(handle, "six_month_weekly_completed")

    records = await store.read_stream(pairing_stream(final_state.pairing_id))
    assert [r.type for r in records] == expected_weekly_lifecycle(t0)
    assert [r.version for r in records] == list(range(1, len(records) + 1))
    folded = fold(decode_all(records))
    diff = {k: (v, final_state.model_dump(mode="json")[k])
            for k, v in folded.model_dump(mode="json").items()
            if v != final_state.model_dump(mode="json")[k]}
    assert folded == final_state, diff
    assert outcome.meetings_held == final_state.meetings_held >= 25
    # Who did what is on every event: participants for their own actions, the system for
    # the clock.
    actors = {r.type: r.metadata.actor for r in records}
    assert actors["ReminderSent"] == "system:sebaya"
    assert actors["PairingMatched"] == "ops:ops-test"
    assert {r.metadata.actor for r in records if r.type == "GoalsSet"} == {
        "employee:E001", "employee:M001"}
    history = await handle.fetch_history()
    import collections

    from temporalio.api.enums.v1 import EventType
    kinds = collections.Counter(EventType.Name(ev.event_type) for ev in history.events)
    print(f"history events for a six-month weekly pairing: {len(history.events)} {kinds}")


async def test_refused_commands_leave_no_trace(
    temporal_env, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    store = store_for(db_pool)
    async with running_worker(temporal_env.client, db_pool, task_queue):
        handle = await start_pairing(temporal_env.client, task_queue,
                                     rules=six_month_rules(goals_required_before_meetings=True))
        state = await started_state(handle)
        before_history = len((await handle.fetch_history()).events)
        before_stream = await store.stream_version(pairing_stream(state.pairing_id))
        refused = [
            (PairingWorkflow.log_meeting,
             c.LogMeeting(actor=MENTEE, meeting_no=1, held=True, topics=("karier",)),
             "goals_required_first"),
            (PairingWorkflow.set_goals,
             c.SetGoals(actor=c.Actor.employee("X999"), goals=goals("x")), "not_a_participant"),
            (PairingWorkflow.submit_midpoint_review,
             c.SubmitMidpointReview(actor=MENTEE, satisfaction=3, wants_to_continue=True),
             "window_not_open"),
            (PairingWorkflow.submit_final_evaluation,
             c.SubmitFinalEvaluation(actor=MENTOR, relationship_rating=4, program_rating=4,
                                     learned="-", would_recommend=True), "window_not_open"),
        ]
        for update, command, code in refused:
            with pytest.raises(WorkflowUpdateFailedError) as info:
                await handle.execute_update(update, command)
            assert getattr(info.value.cause, "type", None) == code, info.value.cause
        await handle.execute_update(PairingWorkflow.set_goals,
                                    c.SetGoals(actor=MENTEE, goals=goals("it")))
        with pytest.raises(WorkflowUpdateFailedError) as info:
            await handle.execute_update(PairingWorkflow.set_goals,
                                        c.SetGoals(actor=MENTOR, goals=goals("it")))
        assert "already used" in str(info.value.cause)
        history = (await handle.fetch_history()).events
        # Only the accepted update left events (accepted, completed, its workflow task...).
        accepted = [ev for ev in history
                    if ev.HasField("workflow_execution_update_accepted_event_attributes")]
        assert len(accepted) == 1
        assert await store.stream_version(pairing_stream(state.pairing_id)) == before_stream + 1
        assert len(history) > before_history
        await handle.execute_update(
            PairingWorkflow.request_exit,
            c.RequestExit(actor=c.Actor.ops("ops-test"), reason=e.ExitReason.OTHER))
        await handle.result()
        # A closed pairing's workflow has finished: Temporal itself refuses further updates.
        with pytest.raises(RPCError, match="already completed"):
            await handle.execute_update(PairingWorkflow.set_goals,
                                        c.SetGoals(actor=MENTOR, goals=goals("lead")))


async def test_no_fault_exit_in_every_phase(
    temporal_env, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    store = store_for(db_pool)

    async def exit_after(days: float, set_goals: bool, actor: c.Actor) -> tuple[str, str]:
        handle = await start_pairing(temporal_env.client, task_queue)
        state = await started_state(handle)
        assert state.started_at is not None
        if set_goals:
            for who, prefix in ((MENTEE, "it"), (MENTOR, "lead")):
                await handle.execute_update(PairingWorkflow.set_goals,
                                            c.SetGoals(actor=who, goals=goals(prefix)))
        await advance_to(temporal_env, handle, state.started_at + timedelta(days=days))
        phase_before = (await handle.query(PairingWorkflow.state)).phase
        await handle.execute_update(PairingWorkflow.request_exit,
                                    c.RequestExit(actor=actor, reason=e.ExitReason.NOT_A_FIT))
        outcome = await handle.result()
        await maybe_record_history(handle, f"exit_{phase_before.value}_{days}d")
        assert outcome.phase is Phase.EXITED and outcome.exit is not None
        records = await store.read_stream(pairing_stream(state.pairing_id))
        assert records[-1].type == "PairingExited"
        assert records[-1].payload["phase_at_exit"] == phase_before.value
        return phase_before.value, records[-1].payload["initiated_by"]

    async with running_worker(temporal_env.client, db_pool, task_queue):
        results = await asyncio.gather(
            exit_after(0.5, False, MENTEE),      # goal setting
            exit_after(30, True, MENTOR),        # active
            exit_after(92, True, c.Actor.ops("ops-test")),  # during the mid-point review
            exit_after(183, True, MENTEE),       # final evaluation window
        )
    assert results == [("goal_setting", "mentee"), ("active", "mentor"),
                       ("active", "ops"), ("final_evaluation", "mentee")]
