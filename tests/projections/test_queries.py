"""What ``sebaya cohort status`` and ``sebaya cohort report`` are built on, on the sample
cohort: every figure below is worked out from the lifecycles by hand."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest

from domain.events import ExitReason
from eventstore import EventStore
from projections import Projector
from projections.queries import cohort_report, cohort_status, pairing_row, pairings_of_cohort
from tests.projections.lifecycles import T0, CohortSim, append_decisions
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


async def test_report_figures(db_pool: asyncpg.Pool, projected: CohortSim) -> None:
    report = await cohort_report(db_pool, "C1", as_of=T0 + timedelta(days=400))
    assert report is not None
    rows = {r.pairing_id: r for r in await pairings_of_cohort(db_pool, "C1")}
    assert report.pairings_total == 6
    # Three completed pairings evaluated: mentees scored it-1 at 90, mentors lead-1 at 70.
    assert report.goal_attainment["mentee"].n == 3
    assert report.goal_attainment["mentee"].mean == 90
    assert report.goal_attainment["mentor"].mean == 70
    assert report.goals_set == {"mentor": round(5 / 6, 3), "mentee": round(5 / 6, 3)}
    held = sum(r.meetings_held for r in rows.values())
    missed = sum(r.meetings_missed for r in rows.values())
    assert (report.meetings_held, report.meetings_missed) == (held, missed)
    assert report.meeting_adherence == round(held / (held + missed), 3)
    assert report.midpoint_satisfaction["mentee"].mean == 4
    assert report.midpoint_satisfaction["mentor"].mean == 5
    assert report.midpoint_wants_to_continue == {"mentor": 1.0, "mentee": 1.0}
    assert report.final_relationship_rating["mentor"].mean == 5
    assert report.would_recommend == {"mentor": 1.0, "mentee": 1.0}
    assert [text for _, text in report.mentors_learned] == [
        "Cara generasi baru bekerja dengan AI"] * 3
    assert report.exits_by_reason == {"schedule_conflict": 1, "left_company": 1}
    assert report.exits_by_phase == {"active": 2}
    assert report.exits_by_initiator == {"mentor": 1, "ops": 1}
    assert (report.rematches, report.rematches_completed) == (1, 1)
    assert report.cross_functional_share == 1.0
    assert report.escalated_pairings == 2
    # Five mentees; E04 left on day 30, so one year on four of five are still here.
    r45, r365 = report.retention
    assert (r45.days, r45.eligible, r45.retained, r45.share, r45.baseline) == (
        45, 5, 4, 0.8, 0.78)
    assert (r365.eligible, r365.retained, r365.baseline) == (5, 4, 0.6)
    assert report.departments_known is False
    # Judged on day 40, the 45-day window has not passed for anyone yet.
    early = await cohort_report(db_pool, "C1", as_of=T0 + timedelta(days=40))
    assert early is not None and early.retention[0].eligible == 0
