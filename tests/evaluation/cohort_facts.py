"""A hand-built cohort of 30 pairings for the evaluation tests.

Program "Onboarding 2027" starts 2027-01-11 with the article's baseline (78% retained at 45
days, 60% at one year). Twenty pairs completed with both final evaluations, six exited (three
of them were rematched), four are still running. Mentees were hired in the weeks around the
start, two of them left within 45 days and one more before the year was out.
"""

from __future__ import annotations

from datetime import date, timedelta

from domain.evaluation_inputs import MenteeFacts, PairingFacts, SideFinal
from domain.program import Baseline, Objective, ObjectiveKind, ProgramSpec
from domain.rules import GroundRules

START = date(2027, 1, 11)
# After every six-month pairing has ended; every 45-day window has closed, no 1-year one has.
AS_OF = date(2027, 8, 2)


def program(
    *,
    retention_45d: float | None = 0.78,
    retention_1y: float | None = 0.60,
    other: dict[str, float] | None = None,
    metric: str = "retention_45d",
) -> ProgramSpec:
    return ProgramSpec(
        name="Program Mentoring Sebaya 2027 — Onboarding",
        objective=Objective(
            kind=ObjectiveKind.NEW_HIRE_RETENTION,
            description="Menurunkan angka karyawan baru yang keluar dalam 45 hari pertama.",
            metric=metric,
        ),
        baseline=Baseline(
            retention_45d=retention_45d,
            retention_1y=retention_1y,
            other=other or {},
            source="Work Institute 2022 Retention Report",
        ),
        start_date=START,
        ground_rules=GroundRules(topics=("adaptasi budaya kerja", "karier")),
    )


def final(
    goals: dict[str, int],
    relationship: int,
    program_rating: int,
    learned: str,
    recommend: bool = True,
) -> SideFinal:
    return SideFinal(
        goal_attainment=goals,
        relationship_rating=relationship,
        program_rating=program_rating,
        learned=learned,
        would_recommend=recommend,
    )


MENTOR_LEARNED = (
    "Cara menjelaskan proses dengan lebih sederhana",
    "Perspektif baru dari tim lain",
    "Cara menjelaskan proses dengan lebih sederhana",
    "Kesabaran dan mendengarkan",
    "Tools baru yang dipakai tim IT",
    "perspektif baru dari tim lain ",
)
MENTEE_LEARNED = (
    "Memahami budaya kerja dan siapa yang harus ditanya",
    "Manajemen waktu",
    "Navigasi sistem internal",
    "Memahami budaya kerja dan siapa yang harus ditanya",
    "Percaya diri saat presentasi",
)
DEPARTMENTS = ("Finance", "IT", "HR", "Sales", "Operations")


def completed(i: int) -> PairingFacts:
    """Completed pair number ``i`` (0..19): both sides evaluated, mostly good."""
    mentor_dept = DEPARTMENTS[i % 5]
    # Every third pair stays inside one department.
    mentee_dept = mentor_dept if i % 3 == 0 else DEPARTMENTS[(i + 1) % 5]
    weak = i % 7 == 6  # a few pairs that went less well
    return PairingFacts(
        pairing_id=f"P{i + 1:03d}",
        mentor_id=f"M{i + 1:03d}",
        mentee_id=f"E{i + 1:03d}",
        mentor_department=mentor_dept,
        mentee_department=mentee_dept,
        phase="completed",
        meetings_held=22 - (i % 4) - (6 if weak else 0),
        meetings_missed=(i % 4) + (6 if weak else 0),
        goals={"mentor": ["g1"], "mentee": ["g1", "g2"]},
        midpoint_satisfaction={"mentor": 3 if weak else 4, "mentee": 2 if weak else 4 + i % 2},
        final={
            "mentor": final(
                {"g1": 55 if weak else 75 + i % 4 * 5},
                3 if weak else 4 + i % 2,
                4,
                MENTOR_LEARNED[i % len(MENTOR_LEARNED)],
                recommend=not weak,
            ),
            "mentee": final(
                {"g1": 40 if weak else 80 + i % 3 * 5, "g2": 60 + i % 5 * 8},
                2 if weak else 4 + i % 2,
                3 if weak else 5,
                MENTEE_LEARNED[i % len(MENTEE_LEARNED)],
                recommend=not weak,
            ),
        },
    )


def exited(
    n: int, reason: str, phase: str, by: str, held: int, missed: int, *, left: bool = False
) -> PairingFacts:
    return PairingFacts(
        pairing_id=f"P{n:03d}",
        mentor_id=f"M{n:03d}",
        mentee_id=f"E{n:03d}",
        mentor_department="Sales",
        mentee_department="IT" if n % 2 else "Sales",
        phase="exited",
        meetings_held=held,
        meetings_missed=missed,
        goals={"mentor": ["g1"], "mentee": ["g1"]} if phase != "goal_setting" else {},
        exit_reason=reason,
        exit_phase=phase,
        exit_initiated_by=by,
        midpoint_satisfaction={"mentor": 2, "mentee": 1} if reason == "not_a_fit" else {},
    )


def cohort_pairings() -> list[PairingFacts]:
    pairings = [completed(i) for i in range(20)]
    pairings += [
        exited(21, "not_a_fit", "active", "mentee", 10, 2),
        exited(22, "schedule_conflict", "active", "mentor", 4, 3),
        exited(23, "left_company", "goal_setting", "system", 0, 0, left=True),
        exited(24, "workload", "active", "mentor", 6, 5),
        exited(25, "left_company", "active", "system", 3, 0, left=True),
        exited(26, "not_a_fit", "final_evaluation", "ops", 20, 4),
    ]
    # Rematches of 21, 22 and 24: the mentee of the exited pair with a new mentor.
    for n, of, mentee in ((27, "P021", "E021"), (28, "P022", "E022"), (29, "P024", "E024")):
        pairings.append(
            PairingFacts(
                pairing_id=f"P{n:03d}",
                mentor_id=f"M{n:03d}",
                mentee_id=mentee,
                mentor_department="HR",
                mentee_department="IT",
                phase="active",
                meetings_held=8,
                meetings_missed=1,
                goals={"mentor": ["g1"], "mentee": ["g1"]},
                rematch_of=of,
                midpoint_satisfaction={"mentor": 4, "mentee": 5},
            )
        )
    pairings.append(
        PairingFacts(
            pairing_id="P030",
            mentor_id="M030",
            mentee_id="E030",
            mentor_department=None,  # department not recorded
            mentee_department="Finance",
            phase="goal_setting",
        )
    )
    return pairings


def cohort_mentees() -> list[MenteeFacts]:
    """One mentee per distinct mentee id (26 ids: 27-29 reuse 21, 22, 24, 30 is new)."""
    mentees: list[MenteeFacts] = []
    for n in [*range(1, 27), 30]:
        hired = START - timedelta(days=n % 20)  # hired 0..19 days before the start
        left: date | None = None
        if n == 23:
            left = hired + timedelta(days=20)  # left on day 20: not retained at 45 days
        elif n == 25:
            left = hired + timedelta(days=40)  # left on day 40: not retained at 45 days
        elif n == 7:
            left = hired + timedelta(days=150)  # retained at 45 days, not at one year
        mentees.append(MenteeFacts(employee_id=f"E{n:03d}", hire_date=hired, left_on=left))
    # Someone hired before the program who was never paired: not part of the evaluation.
    mentees.append(MenteeFacts(employee_id="E999", hire_date=START - timedelta(days=5)))
    return mentees
