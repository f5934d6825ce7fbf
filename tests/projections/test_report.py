"""``sebaya cohort report`` from the read models: the projected sample cohort, evaluated by
``domain.evaluation`` through ``sebaya/report_service.py``. Every figure is worked out by hand
from the lifecycles with the formulas of docs/evaluation.md (retention from the hire date,
leaving on the closing day retained, attainment per goal)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from eventstore import EventStore
from intake.program_yaml import load_program
from projections import Projector
from sebaya.report_service import cohort_report
from sebaya.samples.lifecycles import T0, CohortSim

PROGRAM = Path(__file__).resolve().parents[2] / "examples" / "program.yaml"
HIRED = T0.date() - timedelta(days=11)
# E04 leaves on day 30 of its pairing; hired 45 days before that, its 45-day window closes on
# the day it leaves.
E04_LEFT = (T0 + timedelta(days=30)).date()
E04_HIRED = E04_LEFT - timedelta(days=45)


@pytest.fixture
async def enrolled(store: EventStore, db_pool: asyncpg.Pool, cohort: CohortSim) -> CohortSim:
    program = load_program(PROGRAM)
    await db_pool.execute("INSERT INTO cohorts (cohort_id, program, people_digest) "
                          "VALUES ('C1', $1::jsonb, 'sha256:test')", program.model_dump_json())
    members = [(f"M0{k}", "mentor", "Engineering", HIRED - timedelta(days=900))
               for k in range(1, 6)]
    members += [(f"E0{k}", "mentee", "Finance" if k % 2 else "Sales",
                 E04_HIRED if k == 4 else HIRED) for k in range(1, 6)]
    await db_pool.executemany(
        "INSERT INTO cohort_members (cohort_id, employee_id, role, department, hire_date, "
        "profile) VALUES ('C1', $1, $2, $3, $4, $5::jsonb)",
        [(*m, json.dumps({})) for m in members])
    await Projector(store).catch_up()
    return cohort


async def test_report_from_the_views(db_pool: asyncpg.Pool, enrolled: CohortSim) -> None:
    as_of = (T0 + timedelta(days=400)).date()
    report = await cohort_report(db_pool, "C1", as_of=as_of)
    assert report.as_of == as_of

    counts = report.counts
    assert (counts.pairings, counts.completed, counts.exited, counts.in_progress,
            counts.rematches) == (6, 3, 2, 1, 1)
    assert (counts.mentors, counts.mentees) == (5, 5)

    # Three completed pairings, one final evaluation per side each: mentees rated goal it-1
    # at 90, mentors lead-1 at 70 (attained: >= 70). One figure per goal rated.
    mentee, mentor = report.goal_attainment["mentee"], report.goal_attainment["mentor"]
    assert (mentee.evaluations, mentee.goals_rated, mentee.mean_attainment.mean) == (3, 3, 90)
    assert (mentor.goals_rated, mentor.mean_attainment.mean) == (3, 70)
    assert (mentor.attained.successes, mentor.attained.n) == (3, 3)

    # Retention counts from the hire date. E04 left on the day its 45-day window closed:
    # retained at 45 days, not at a year. Everyone else is still employed.
    r45, r1y = report.retention["retention_45d"], report.retention["retention_1y"]
    assert (r45.population, r45.retained, r45.baseline) == (5, 5, 0.78)
    assert (r1y.population, r1y.retained, r1y.not_retained, r1y.baseline) == (5, 4, 1, 0.6)

    # Every pairing crosses departments (mentors in Engineering, mentees elsewhere).
    share = report.cross_functional.share
    assert (share.successes, share.n) == (6, 6)
    assert report.exits.by_reason["left_company"] == 1
    assert report.exits.by_reason["schedule_conflict"] == 1
    assert report.exits.followed_by_rematch == 1


async def test_retention_windows_still_open_are_not_counted(
    db_pool: asyncpg.Pool, enrolled: CohortSim
) -> None:
    # Day 30 after the hire of most mentees: no 45-day window has closed yet except E04's,
    # which closes on day 30 of the program; E04 is still employed then.
    as_of = E04_LEFT
    report = await cohort_report(db_pool, "C1", as_of=as_of)
    r45 = report.retention["retention_45d"]
    assert (r45.population, r45.retained) == (1, 1)
    assert report.retention["retention_1y"].population == 0
