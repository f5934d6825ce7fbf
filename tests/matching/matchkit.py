"""Builders for matching tests: a small program and profiles with sensible defaults, a random
cohort generator, and a plain-Python reference of the rules to check the vectorised code."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from domain.people import MatchProfile, Role
from domain.program import (
    Baseline,
    MatchingPolicy,
    MatchingWeights,
    Objective,
    ObjectiveKind,
    ProgramSpec,
    Question,
    QuestionKind,
    Questionnaire,
)
from domain.rules import GroundRules

START = date(2027, 1, 11)
TODAY = date(2026, 12, 1)  # before the start: recency is measured from START
ZONES = ("Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura")
QUESTIONS = (
    Question(id="style", text="Style?", kind=QuestionKind.SINGLE, options=("a", "b", "c")),
    Question(
        id="topics",
        text="Topics?",
        kind=QuestionKind.MULTI,
        options=("w", "x", "y", "z"),
        weight=2,
    ),
)


def program(*, weights: dict[str, float] | None = None, **policy: Any) -> ProgramSpec:
    """A program with two questions; ``policy`` overrides MatchingPolicy fields."""
    matching = MatchingPolicy(weights=MatchingWeights(**(weights or {})), **policy)
    return ProgramSpec(
        name="Test program",
        objective=Objective(
            kind=ObjectiveKind.NEW_HIRE_RETENTION,
            description="keep new hires",
            metric="retention_45d",
        ),
        baseline=Baseline(retention_45d=0.78, retention_1y=0.6),
        start_date=START,
        ground_rules=GroundRules(topics=("karier",)),
        questionnaire=Questionnaire(questions=QUESTIONS),
        matching=matching,
    )


def _profile(
    employee_id: str,
    role: Role,
    *,
    level: int,
    dept: str,
    hire: date,
    tz: str = "Asia/Jakarta",
    capacity: int,
    chain: Iterable[str] = (),
    offered: Iterable[str] = (),
    wanted: Iterable[str] = (),
    answers: dict[str, Iterable[str]] | None = None,
    avoid: Iterable[str] = (),
) -> MatchProfile:
    return MatchProfile(
        employee_id=employee_id,
        role=role,
        level=level,
        department=dept,
        hire_date=hire,
        timezone=tz,
        capacity=capacity,
        manager_chain=tuple(chain),
        skills_offered=frozenset(offered),
        skills_wanted=frozenset(wanted),
        answers={k: frozenset(v) for k, v in (answers or {}).items()},
        do_not_pair_with=frozenset(avoid),
    )


def mentor(
    employee_id: str,
    *,
    level: int = 3,
    dept: str = "Engineering",
    hire: date = date(2020, 1, 1),
    capacity: int = 1,
    **kw: Any,
) -> MatchProfile:
    return _profile(
        employee_id, Role.MENTOR, level=level, dept=dept, hire=hire, capacity=capacity, **kw
    )


def mentee(
    employee_id: str,
    *,
    level: int = 2,
    dept: str = "Sales",
    hire: date = date(2026, 12, 20),
    **kw: Any,
) -> MatchProfile:
    return _profile(employee_id, Role.MENTEE, level=level, dept=dept, hire=hire, capacity=0, **kw)


def random_cohort(
    rng: random.Random, n_mentors: int, n_mentees: int, *, max_capacity: int = 2
) -> list[MatchProfile]:
    """Random but constraint-rich people: every rule fires somewhere."""
    ids = [f"P{k:03d}" for k in range(n_mentors + n_mentees)]
    rng.shuffle(ids)
    mentor_ids, mentee_ids = ids[:n_mentors], ids[n_mentors:]
    people: list[MatchProfile] = []
    for k, eid in enumerate(ids):
        is_mentor = k < n_mentors
        others = [i for i in ids if i != eid]
        chain = tuple(rng.sample(others, min(len(others), rng.choice([0, 0, 1, 2]))))
        counterparts = mentee_ids if is_mentor else mentor_ids
        avoid = (
            frozenset(rng.sample(counterparts, 1)) if counterparts and rng.random() < 0.15 else ()
        )
        answers = {
            "style": rng.sample(["a", "b", "c"], rng.choice([0, 1, 1, 1])),
            "topics": rng.sample(["w", "x", "y", "z"], rng.randint(0, 3)),
        }
        common = {
            "dept": rng.choice(["Eng", "Sales", "HR"]),
            "tz": rng.choice(ZONES),
            "chain": chain,
            "offered": rng.sample(["s1", "s2", "s3", "s4"], rng.randint(0, 3)),
            "wanted": rng.sample(["s1", "s2", "s3", "s5"], rng.randint(0, 3)),
            "answers": answers,
            "avoid": avoid,
        }
        if is_mentor:
            people.append(
                mentor(
                    eid,
                    level=rng.randint(2, 5),
                    hire=START - timedelta(days=rng.randint(200, 3000)),
                    capacity=rng.randint(1, max_capacity),
                    **common,
                )
            )
        else:
            people.append(
                mentee(
                    eid,
                    level=rng.randint(1, 4),
                    hire=START - timedelta(days=rng.randint(-10, 900)),
                    **common,
                )
            )
    return people


# --- plain-Python reference of the rules (docs/matching.md), one pair at a time -------------

_OFFSETS = {"Asia/Jakarta": 7, "Asia/Makassar": 8, "Asia/Jayapura": 9}


def ref_violation(
    p: ProgramSpec, m: MatchProfile, e: MatchProfile, exclusions: frozenset[tuple[str, str]]
) -> str | None:
    """First broken constraint, in the documented order, or None."""
    pol = p.matching
    gap = m.level - e.level
    if m.capacity < 1:
        return "capacity"
    if not pol.min_level_gap <= gap <= pol.max_level_gap:
        return "level_gap"
    if gap == 0 and (e.hire_date - m.hire_date).days < pol.min_tenure_gap_days:
        return "experience"
    if pol.forbid_reporting_chain and (
        m.employee_id in e.manager_chain or e.employee_id in m.manager_chain
    ):
        return "reporting_chain"
    if pol.forbid_same_manager and m.manager_id is not None and m.manager_id == e.manager_id:
        return "same_manager"
    if pol.require_cross_functional and m.department.casefold() == e.department.casefold():
        return "same_department"
    if (
        pol.max_timezone_gap_hours is not None
        and abs(_OFFSETS[m.timezone] - _OFFSETS[e.timezone]) > pol.max_timezone_gap_hours
    ):
        return "timezone"
    if e.employee_id in m.do_not_pair_with or m.employee_id in e.do_not_pair_with:
        return "do_not_pair"
    if (m.employee_id, e.employee_id) in exclusions or (e.employee_id, m.employee_id) in exclusions:
        return "previous_pairing"
    return None


def ref_score(p: ProgramSpec, m: MatchProfile, e: MatchProfile, reference: date) -> float:
    w, pol = p.matching.weights, p.matching
    total_w = sum(q.weight for q in p.questionnaire.questions)
    q_sum = 0.0
    for q in p.questionnaire.questions:
        a, b = m.answers.get(q.id, frozenset()), e.answers.get(q.id, frozenset())
        if q.kind is QuestionKind.SINGLE:
            sim = 1.0 if a and a == b else 0.0
        else:
            sim = len(a & b) / len(a | b) if a | b else 0.0
        q_sum += q.weight * sim
    questionnaire = q_sum / total_w if total_w else 0.0
    skills = (
        len(m.skills_offered & e.skills_wanted) / len(e.skills_wanted) if e.skills_wanted else 0.0
    )
    cross = 1.0 if m.department.casefold() != e.department.casefold() else 0.0
    days = (reference - e.hire_date).days
    recent = 1.0 if days <= pol.recent_hire_days else 0.5 if days <= pol.first_year_days else 0.0
    return (
        w.questionnaire * questionnaire
        + w.skills * skills
        + w.cross_functional * cross
        + w.recent_hire * recent
    )
