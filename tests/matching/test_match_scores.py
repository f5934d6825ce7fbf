"""The score formula, component by component (docs/matching.md, "Score")."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from domain.matching import candidates, match
from domain.people import Role
from tests.matching.matchkit import START, TODAY, mentee, mentor, program, random_cohort, ref_score

ONLY = {"questionnaire": 0.0, "skills": 0.0, "cross_functional": 0.0, "recent_hire": 0.0}


def only(component: str, weight: float = 1.0) -> dict[str, float]:
    return {**ONLY, component: weight}


def score(prog, m, e, today=TODAY):  # type: ignore[no-untyped-def]
    found = candidates(prog, [m], [e], today=today)
    assert len(found) == 1
    return found[0]


def test_single_choice_questions_score_equality():
    prog = program(weights=only("questionnaire"))
    same = score(prog, mentor("M", answers={"style": ["a"]}), mentee("E", answers={"style": ["a"]}))
    other = score(
        prog, mentor("M", answers={"style": ["a"]}), mentee("E", answers={"style": ["b"]})
    )
    assert same.explanation.per_question["style"] == 1.0
    assert other.explanation.per_question["style"] == 0.0
    # style weighs 1 of the questionnaire's 3 (topics weighs 2)
    assert same.score == pytest.approx(1 / 3, abs=1e-6)
    assert other.score == 0.0


def test_unanswered_questions_never_match():
    prog = program(weights=only("questionnaire"))
    assert score(prog, mentor("M"), mentee("E")).score == 0.0


def test_multi_choice_questions_score_jaccard():
    prog = program(weights=only("questionnaire"))
    c = score(
        prog,
        mentor("M", answers={"topics": ["w", "x", "y"]}),
        mentee("E", answers={"topics": ["x", "y", "z"]}),
    )
    assert c.explanation.per_question["topics"] == pytest.approx(2 / 4, abs=1e-6)
    assert c.score == pytest.approx(2 / 3 * 0.5, abs=1e-6)


def test_skills_complementarity_is_the_share_of_wanted_skills_covered():
    prog = program(weights=only("skills"))
    c = score(
        prog,
        mentor("M", offered=["Python", "SQL", "excel"]),
        mentee("E", wanted=["python", "sql", "negosiasi", "cloud"]),
    )
    assert c.score == pytest.approx(0.5, abs=1e-6)
    assert c.explanation.skills_covered == ("python", "sql")
    assert score(prog, mentor("M", offered=["x"]), mentee("E")).score == 0.0


def test_cross_functional_bonus():
    prog = program(weights=only("cross_functional", 0.3))
    assert score(prog, mentor("M", dept="Finance"), mentee("E", dept="Sales")).score == 0.3
    assert score(prog, mentor("M", dept="Sales"), mentee("E", dept="SALES")).score == 0.0


@pytest.mark.parametrize(
    ("days_before_start", "value"),
    [(-5, 1.0), (0, 1.0), (45, 1.0), (46, 0.5), (365, 0.5), (366, 0.0), (2000, 0.0)],
)
def test_recent_hire_priority(days_before_start, value):  # type: ignore[no-untyped-def]
    prog = program(weights=only("recent_hire"))
    e = mentee("E", hire=START - timedelta(days=days_before_start))
    c = score(prog, mentor("M"), e)
    assert c.explanation.recent_hire.value == value
    assert c.explanation.mentee_days_since_hire == days_before_start


def test_recency_counts_from_today_once_the_program_has_started():
    prog = program(weights=only("recent_hire"))
    e = mentee("E", hire=START - timedelta(days=10))
    assert score(prog, mentor("M"), e, today=START + timedelta(days=30)).score == 1.0
    assert score(prog, mentor("M"), e, today=START + timedelta(days=40)).score == 0.5


def test_score_is_the_weighted_sum_of_components():
    prog = program(
        weights={"questionnaire": 0.4, "skills": 0.3, "cross_functional": 0.1, "recent_hire": 0.2}
    )
    c = score(
        prog,
        mentor("M", dept="Eng", offered=["a", "b"], answers={"style": ["a"], "topics": ["w"]}),
        mentee("E", dept="Ops", wanted=["a", "c"], answers={"style": ["a"], "topics": ["w", "x"]}),
    )
    x = c.explanation
    assert x.questionnaire.value == pytest.approx((1 + 2 * 0.5) / 3, abs=1e-6)
    assert x.skills.value == 0.5
    assert x.cross_functional.value == 1.0
    assert x.recent_hire.value == 1.0
    parts = [x.questionnaire, x.skills, x.cross_functional, x.recent_hire]
    assert all(0 <= p.value <= 1 for p in parts)
    assert all(p.points == pytest.approx(p.value * p.weight, abs=1e-6) for p in parts)
    assert c.score == pytest.approx(sum(p.points for p in parts), abs=4e-6)
    assert x.level_gap == 1
    assert x.timezone_gap_hours == 0.0


@pytest.mark.parametrize("seed", range(10))
def test_vectorised_scores_agree_with_the_reference(seed):  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    prog = program(
        max_level_gap=4,
        forbid_reporting_chain=False,
        weights={k: rng.choice([0, 0.1, 0.25, 1, 3]) for k in ONLY} | {"skills": 0.3},
    )
    people = random_cohort(rng, 10, 15)
    mentors = [p for p in people if p.role is Role.MENTOR]
    mentees = [p for p in people if p.role is Role.MENTEE]
    by_id = {p.employee_id: p for p in people}
    found = candidates(prog, mentors, mentees, today=TODAY)
    assert len(found) > 0
    reference = max(prog.start_date, TODAY)
    for c in found:
        expected = ref_score(prog, by_id[c.mentor], by_id[c.mentee], reference)
        assert c.score == pytest.approx(expected, abs=1e-6)
    # the cheap score listing and the explained items agree exactly
    assert [(c.mentor, c.mentee, c.score) for c in found] == found.scores()


def test_explanations_reproduce_the_matrix_scores_exactly():
    rng = random.Random(99)
    prog = program(max_level_gap=3)
    people = random_cohort(rng, 30, 40)
    result = match(prog, people, today=TODAY)
    listed = {(m, e): s for m, e, s in result.candidates.scores()}
    for pair in result.pairs:
        assert listed[(pair.mentor, pair.mentee)] == pair.score


def test_reference_date_is_reported():
    result = match(program(), [mentor("M"), mentee("E")], today=date(2026, 1, 1))
    assert result.reference_date == START
