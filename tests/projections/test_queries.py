"""What ``sebaya cohort status`` is built on, on the sample cohort: every figure below is
worked out from the lifecycles by hand."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest

from domain.events import ExitReason
from eventstore import EventStore
from projections import Projector
from projections.queries import cohort_status, pairing_row
from sebaya.samples.lifecycles import T0, CohortSim, append_decisions
from tests.projections.views import past_horizon


@pytest.fixture
async def projected(store: EventStore, cohort: CohortSim) -> CohortSim:
    await Projector(store).catch_up()
    return cohort


async def test_status_counts_risks_and_what_is_due(
    db_pool: asyncpg.Pool, projected: CohortSim
) -> None:
    # Day 20: everyone is in their first weeks.
    status = await cohort_status(db_pool, "C1", now=T0 + timedelta(days=20))
    assert status is not None
    assert status.program_name == "Program Mentoring 2025"
    assert status.by_phase == {"completed": 3, "exited": 2, "goal_setting": 1}
    assert status.pairings_total == 6 and status.launched == 6 and status.rematches == 1
    # The silent pair never set goals, missed every meeting and was escalated.
    (risk,) = status.at_risk
    assert risk.pairing_id == "C1.E05.M05.1"
    assert any("escalated" in r for r in risk.reasons)
    assert any("goals overdue (mentor, mentee)" in r for r in risk.reasons)
    assert any("in a row" in r for r in risk.reasons)
    assert status.waiting == []
    assert status.left_company == {"E04": (T0 + timedelta(days=30)).date()}
    assert status.projected_until is not None
    # Only open pairings have something due: the silent one's next meeting.
    assert {(d.pairing_id, d.what) for d in status.next_due} <= {
        ("C1.E05.M05.1", "meeting"), ("C1.E05.M05.1", "midpoint_review"),
        ("C1.E05.M05.1", "goal_deadline")}
    assert await cohort_status(db_pool, "nope") is None


async def test_waiting_pool_and_a_pairing_row(
    store: EventStore, db_pool: asyncpg.Pool, projected: CohortSim
) -> None:
    later = CohortSim("C9", starts_at=T0)
    later.begin([("M9", "E9", 0.8)])
    sim = later.launch("M9", "E9", 0.8)
    sim.set_goals(T0 + timedelta(hours=1))
    sim.exit(T0 + timedelta(days=10), reason=ExitReason.WORKLOAD)
    later.ended(sim, wait=True)
    await append_decisions(store, later.all_decisions())
    await past_horizon(db_pool)
    await Projector(store).catch_up()
    status = await cohort_status(db_pool, "C9", now=T0 + timedelta(days=11))
    assert status is not None
    assert [(w.employee_id, w.role, w.after_pairing) for w in status.waiting] == [
        ("E9", "mentee", sim.pairing_id)]
    row = await pairing_row(db_pool, sim.pairing_id)
    assert row is not None and row.phase == "exited" and row.exit_reason == "workload"
    assert row.exit_initiated_by == "mentee" and row.exit_phase == "active"
    assert row.goals_set_mentor and row.goals_set_mentee
    assert [g["goal_id"] for g in row.goals["mentee"]] == ["it-1", "it-2"]
