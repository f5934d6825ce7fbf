"""Same input, any order -> same result; ties go by ids (docs/matching.md, "Ties")."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date

from domain.matching import ALGORITHM_VERSION, match
from domain.program import MatchObjective
from tests.matching.matchkit import TODAY, mentee, mentor, program, random_cohort


def outcome(result):  # type: ignore[no-untyped-def]
    return (
        [(p.mentor, p.mentee, p.score) for p in result.pairs],
        [(u.employee_id, u.reason) for u in result.unmatched],
        result.total_score,
        result.input_digest,
    )


def test_same_input_twice_and_shuffled_gives_the_same_result():
    rng = random.Random(5)
    prog = program(max_level_gap=2)
    people = random_cohort(rng, 25, 40)
    first = match(prog, people, today=TODAY)
    assert outcome(match(prog, people, today=TODAY)) == outcome(first)
    for seed in range(5):
        shuffled = list(people)
        random.Random(seed).shuffle(shuffled)
        assert outcome(match(prog, shuffled, today=TODAY)) == outcome(first)
    assert first.algorithm_version == ALGORITHM_VERSION


def test_input_digest_tracks_what_matters():
    prog = program()
    people = [mentor("M"), mentee("E")]
    base = match(prog, people, today=TODAY).input_digest
    assert len(base) == 64
    assert match(prog, list(reversed(people)), today=TODAY).input_digest == base
    assert match(prog, [mentor("M", level=4), mentee("E")], today=TODAY).input_digest != base
    assert match(program(max_level_gap=2), people, today=TODAY).input_digest != base
    excluded = match(prog, people, today=TODAY, exclusions=frozenset([("M", "E")]))
    assert excluded.input_digest != base
    # The reference date decides recency, so a later run date is another input.
    assert match(prog, people, today=date(2027, 3, 1)).input_digest != base


def twins(n: int, prefix: str, **kw):  # type: ignore[no-untyped-def]
    maker = mentor if prefix == "M" else mentee
    return [maker(f"{prefix}{k}", **kw) for k in range(1, n + 1)]


def test_identical_mentors_lowest_id_wins():
    for objective in MatchObjective:
        people = [*reversed(twins(3, "M")), mentee("E1")]
        result = match(program(objective=objective), people, today=TODAY)
        assert [(p.mentor, p.mentee) for p in result.pairs] == [("M1", "E1")]


def test_identical_mentees_lowest_id_is_matched():
    for objective in MatchObjective:
        people = [mentor("M1"), *reversed(twins(4, "E"))]
        result = match(program(objective=objective), people, today=TODAY)
        assert [(p.mentor, p.mentee) for p in result.pairs] == [("M1", "E1")]
        assert [u.employee_id for u in result.unmatched] == ["E2", "E3", "E4"]


def test_identical_pairs_are_paired_in_id_order():
    people = [*twins(3, "M"), *twins(3, "E")]
    result = match(program(), people, today=TODAY)
    assert [(p.mentor, p.mentee) for p in result.pairs] == [
        ("M1", "E1"),
        ("M2", "E2"),
        ("M3", "E3"),
    ]


def test_load_is_spread_before_second_places_are_used():
    people = [mentor("M1", capacity=2), mentor("M2", capacity=2), *twins(2, "E")]
    result = match(program(), people, today=TODAY)
    assert sorted(p.mentor for p in result.pairs) == ["M1", "M2"]


def test_ties_resolve_the_same_in_a_large_tied_cohort():
    # Many equal scores: the canonical pass must not depend on input order.
    people = [*twins(8, "M", capacity=2), *twins(12, "E")]
    results = set()
    for seed in range(4):
        shuffled = list(people)
        random.Random(seed).shuffle(shuffled)
        results.add(tuple(outcome(match(program(), shuffled, today=TODAY))[0]))
    assert len(results) == 1
    pairs = next(iter(results))
    load = Counter(m for m, _, _ in pairs)
    # Everyone takes one before anyone takes two; second places go to the lowest ids.
    assert load == {**{f"M{k}": 2 for k in range(1, 5)}, **{f"M{k}": 1 for k in range(5, 9)}}
    assert sorted(e for _, e, _ in pairs) == sorted(f"E{k}" for k in range(1, 13))
