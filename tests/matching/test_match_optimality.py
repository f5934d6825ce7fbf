"""match() is globally optimal: brute force over every assignment of small random cohorts."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from domain.matching import candidates, match
from domain.people import MatchProfile, Role
from domain.program import MatchObjective
from tests.matching.matchkit import TODAY, mentee, mentor, program, random_cohort


def assignments(
    mentees: list[str], options: dict[str, list[str]], capacity: dict[str, int]
) -> Iterator[dict[str, str]]:
    """Every capacity-respecting assignment (a mentee may stay unmatched)."""
    if not mentees:
        yield {}
        return
    head, rest = mentees[0], mentees[1:]
    for sub in assignments(rest, options, capacity):
        yield sub
        used: dict[str, int] = {}
        for m in sub.values():
            used[m] = used.get(m, 0) + 1
        for m in options[head]:
            if used.get(m, 0) < capacity[m]:
                yield {**sub, head: m}


def brute_force(prog, people: list[MatchProfile]) -> tuple[int, float, int, float]:  # type: ignore[no-untyped-def]
    """(pairs, score) that max_matched wants, then (score, pairs) that max_total_score wants."""
    mentors = [p for p in people if p.role is Role.MENTOR]
    mentees = [p for p in people if p.role is Role.MENTEE]
    found = candidates(prog, mentors, mentees, today=TODAY)
    scores = {(m, e): s for m, e, s in found.scores()}
    options: dict[str, list[str]] = {e.employee_id: [] for e in mentees}
    for m, e in scores:
        options[e].append(m)
    capacity = {m.employee_id: m.capacity for m in mentors}
    best_matched = (0, 0.0)
    best_score = (0.0, 0)
    for a in assignments(sorted(options), options, capacity):
        total = round(sum(scores[(m, e)] for e, m in a.items()), 6)
        best_matched = max(best_matched, (len(a), total))
        best_score = max(best_score, (total, len(a)))
    return best_matched[0], best_matched[1], best_score[1], best_score[0]


@pytest.mark.parametrize("seed", range(40))
def test_optimal_for_both_objectives(seed):  # type: ignore[no-untyped-def]
    rng = random.Random(1000 + seed)
    n_mentors, n_mentees = rng.randint(1, 4), rng.randint(1, 6)
    people = random_cohort(rng, n_mentors, n_mentees, max_capacity=2)
    policy = {
        "max_level_gap": rng.choice([1, 2, 3]),
        "max_timezone_gap_hours": rng.choice([None, 1]),
        "weights": {
            "questionnaire": rng.choice([0.0, 0.4, 1.0]),
            "skills": rng.choice([0.0, 0.3]),
            "cross_functional": rng.choice([0.0, 0.1]),
            "recent_hire": rng.choice([0.0, 0.2, 2.0]),
        },
    }
    if sum(policy["weights"].values()) == 0:  # type: ignore[union-attr]
        policy["weights"]["skills"] = 0.3  # type: ignore[index]
    pairs_mm, score_mm, pairs_ts, score_ts = brute_force(program(**policy), people)

    by_count = match(program(**policy, objective=MatchObjective.MAX_MATCHED), people, today=TODAY)
    assert len(by_count.pairs) == pairs_mm
    assert by_count.total_score == pytest.approx(score_mm, abs=1e-6)

    by_score = match(
        program(**policy, objective=MatchObjective.MAX_TOTAL_SCORE), people, today=TODAY
    )
    assert by_score.total_score == pytest.approx(score_ts, abs=1e-6)
    assert len(by_score.pairs) == pairs_ts  # among the best-scoring, as many pairs as possible


def test_the_two_objectives_differ_when_coverage_costs_score():
    """M1 fits E1 perfectly; the alternative covers both mentees with weaker pairs."""
    people = [
        mentor("M1", answers={"style": ["a"], "topics": ["w", "x"]}),
        mentor("M2", answers={"style": ["b"], "topics": ["x"]}, avoid=["E2"]),
        mentee("E1", answers={"style": ["a"], "topics": ["w", "x"]}),
        mentee("E2", answers={"style": ["c"], "topics": ["w"]}),
    ]
    weights = {"questionnaire": 1.0, "skills": 0, "cross_functional": 0, "recent_hire": 0}
    both = match(
        program(weights=weights, objective=MatchObjective.MAX_MATCHED), people, today=TODAY
    )
    assert {(p.mentor, p.mentee) for p in both.pairs} == {("M1", "E2"), ("M2", "E1")}
    assert both.total_score == pytest.approx(2 / 3, abs=1e-6)
    best = match(
        program(weights=weights, objective=MatchObjective.MAX_TOTAL_SCORE), people, today=TODAY
    )
    assert {(p.mentor, p.mentee) for p in best.pairs} == {("M1", "E1")}
    assert best.total_score == 1.0
    assert "at capacity" in next(u.reason for u in best.unmatched if u.employee_id == "E2")
