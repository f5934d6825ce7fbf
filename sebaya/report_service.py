"""The cohort report from the read models: projections give the facts, ``domain.evaluation``
does the maths, ``sebaya.report`` renders. ``sebaya cohort report`` and the demo call this.
"""

from __future__ import annotations

from datetime import date, datetime

import asyncpg

from adapters.roster import load_program
from domain.evaluation import CohortReport, evaluate
from domain.evaluation_inputs import MenteeFacts, PairingFacts, SideFinal
from projections.queries import PairingRow, cohort_status, pairings_of_cohort


def _facts(row: PairingRow, departments: dict[str, str]) -> PairingFacts:
    return PairingFacts(
        pairing_id=row.pairing_id,
        mentor_id=row.mentor_id,
        mentee_id=row.mentee_id,
        mentor_department=departments.get(row.mentor_id),
        mentee_department=departments.get(row.mentee_id),
        phase=row.phase,
        meetings_held=row.meetings_held,
        meetings_missed=row.meetings_missed,
        goals={side: [g["goal_id"] for g in goals] for side, goals in row.goals.items()},
        exit_reason=row.exit_reason,
        exit_phase=row.exit_phase,
        exit_initiated_by=row.exit_initiated_by,
        rematch_of=row.rematch_of,
        midpoint_satisfaction={side: int(r["satisfaction"]) for side, r in row.midpoint.items()},
        final={side: SideFinal(**f) for side, f in row.final.items()},
    )


async def cohort_report(
    pool: asyncpg.Pool, cohort_id: str, *, as_of: date | None = None
) -> CohortReport:
    """``as_of`` defaults to the cohort's latest *domain* time (in a simulation that is
    virtual time, months ahead of the wall clock), so the report judges what has happened."""
    program = await load_program(pool, cohort_id)
    rows = await pairings_of_cohort(pool, cohort_id)
    status = await cohort_status(pool, cohort_id)
    left = status.left_company if status is not None else {}
    members = await pool.fetch(
        "SELECT employee_id, role, department, hire_date FROM cohort_members "
        "WHERE cohort_id = $1", cohort_id)
    departments = {m["employee_id"]: m["department"] for m in members}
    first_paired: dict[str, datetime] = {}
    for row in rows:
        if row.started_at is not None:
            seen = first_paired.get(row.mentee_id)
            first_paired[row.mentee_id] = min(seen, row.started_at) if seen else row.started_at
    mentees = [
        MenteeFacts(
            employee_id=m["employee_id"],
            hire_date=m["hire_date"],
            left_on=left.get(m["employee_id"]),
            paired_on=first_paired[m["employee_id"]].date()
            if m["employee_id"] in first_paired else None,
        )
        for m in members if m["role"] == "mentee"
    ]
    if as_of is None:
        latest = max((r.last_event_at for r in rows), default=None)
        as_of = (latest or datetime.now().astimezone()).date()
    return evaluate(program, cohort_id, [_facts(r, departments) for r in rows], mentees,
                    as_of=as_of)
