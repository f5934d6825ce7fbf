"""Free text and ids in commands are bounded where they enter: by the command models, and so
at the workflow's door (an update whose argument breaks a bound is refused before history)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from temporalio.client import WorkflowUpdateFailedError

from domain import commands as c
from domain import events as e

ACTOR = c.Actor.employee("E001")


def _meeting(**fields: Any) -> c.LogMeeting:
    return c.LogMeeting(actor=ACTOR, meeting_no=1, held=True, **fields)


# (build a command with a value of length n, the limit, where the error points)
BOUNDED = {
    "topic": (lambda n: _meeting(topics=("x" * n,)), c.MAX_TOPIC_CHARS, ("topics", 0)),
    "topics": (lambda n: _meeting(topics=tuple(f"t{i}" for i in range(n))), c.MAX_TOPICS,
               ("topics",)),
    "goal id": (lambda n: _meeting(goal_progress={"g" * n: 10}), c.MAX_GOAL_ID_CHARS,
                ("goal_progress",)),
    "goal entries": (lambda n: c.SubmitMidpointReview(
        actor=ACTOR, satisfaction=3, wants_to_continue=True,
        goal_progress={f"g{i}": 1 for i in range(n)}), c.MAX_GOAL_ENTRIES, ("goal_progress",)),
    "learned": (lambda n: c.SubmitFinalEvaluation(
        actor=ACTOR, relationship_rating=4, program_rating=4, would_recommend=True,
        learned="y" * n), c.MAX_LEARNED_CHARS, ("learned",)),
    "leaving employee": (lambda n: c.RequestExit(
        actor=ACTOR, reason=e.ExitReason.LEFT_COMPANY, leaving_employee_id="E" * n),
        c.MAX_ID_CHARS, ("leaving_employee_id",)),
    "actor id": (lambda n: c.RequestExit(actor=c.Actor.ops("o" * n),
                                         reason=e.ExitReason.INACTIVITY), 120, ("id",)),
    "goal title": (lambda n: c.SetGoals(actor=ACTOR, goals=(e.Goal(
        goal_id="g1", title="t" * max(n, 3), success_measure="diukur bersama"),)), 200,
        ("title",)),
}  # fmt: skip


@pytest.mark.parametrize("what", sorted(BOUNDED))
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_each_bound_holds_at_its_limit_and_refuses_past_it(what: str, data: Any) -> None:
    build, limit, where = BOUNDED[what]
    build(data.draw(st.integers(1, limit), label="within"))
    past = data.draw(st.integers(limit + 1, limit * 50), label="past")
    with pytest.raises(ValidationError) as refused:
        build(past)
    locations = [err["loc"] for err in refused.value.errors()]
    assert any(loc[: len(where)] == where for loc in locations), locations


@pytest.mark.temporal
async def test_a_workflow_refuses_an_update_past_a_bound_before_history(
    temporal_env, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    from domain.ids import pairing_stream
    from tests.workflows.harness import running_worker, start_pairing, started_state, store_for

    async with running_worker(temporal_env.client, db_pool, task_queue):
        handle = await start_pairing(temporal_env.client, task_queue)
        state = await started_state(handle)
        raw = {"actor": {"kind": "employee", "id": "E001"}, "meeting_no": 1, "held": True,
               "minutes": 60, "topics": ["x" * 100_000]}
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update("log_meeting", raw)
        history = await handle.fetch_history()
        assert not any("x" * 1000 in str(ev) for ev in history.events)
        records = await store_for(db_pool).read_stream(pairing_stream(state.pairing_id))
        assert "MeetingLogged" not in [r.type for r in records]
        await handle.terminate("test over")
