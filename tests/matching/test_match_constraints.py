"""Each hard constraint, alone: a pair breaking it is never a candidate and never matched."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from domain.matching import candidates, match
from domain.people import Role
from tests.matching.matchkit import TODAY, mentee, mentor, program, random_cohort, ref_violation


def eligible(prog, m, e, **kw) -> bool:  # type: ignore[no-untyped-def]
    return candidates(prog, [m], [e], today=TODAY, **kw).is_eligible(m.employee_id, e.employee_id)


@pytest.mark.parametrize(
    ("mentor_level", "mentee_level", "ok"),
    [(3, 2, True), (4, 2, True), (5, 2, False), (2, 3, False), (1, 5, False)],
)
def test_level_gap_upper_bound_and_mentor_not_junior(mentor_level, mentee_level, ok):  # type: ignore[no-untyped-def]
    prog = program(max_level_gap=2)
    assert eligible(prog, mentor("M", level=mentor_level), mentee("E", level=mentee_level)) is ok


def test_min_level_gap_rejects_peers_at_the_same_level():
    prog = program(min_level_gap=1, max_level_gap=2, min_tenure_gap_days=0)
    assert not eligible(prog, mentor("M", level=2), mentee("E", level=2))
    assert eligible(prog, mentor("M", level=3), mentee("E", level=2))


def test_same_level_needs_the_tenure_gap():
    prog = program(min_tenure_gap_days=180)
    e = mentee("E", level=3, hire=date(2026, 6, 1))
    assert eligible(prog, mentor("M", level=3, hire=date(2026, 6, 1) - timedelta(days=180)), e)
    assert not eligible(prog, mentor("M", level=3, hire=date(2026, 6, 1) - timedelta(days=179)), e)
    # A mentee who joined earlier than the mentor at the same level is not the junior one.
    assert not eligible(prog, mentor("M", level=3, hire=date(2026, 7, 1)), e)
    # The tenure rule only breaks ties: a higher level is experience enough.
    assert eligible(prog, mentor("M", level=4, hire=date(2026, 7, 1)), e)


def test_direct_manager_is_never_a_mentor():
    prog = program()
    assert not eligible(prog, mentor("M"), mentee("E", chain=["M", "X"]))


def test_skip_level_manager_is_never_a_mentor():
    prog = program()
    assert not eligible(prog, mentor("M"), mentee("E", chain=["L", "M"]))


def test_reporting_chain_is_checked_downwards_too():
    # The mentee manages the mentor (a lateral hire at a lower grade): still the same chain.
    prog = program()
    assert not eligible(prog, mentor("M", chain=["E"]), mentee("E"))
    assert not eligible(prog, mentor("M", chain=["X", "E"]), mentee("E"))


def test_reporting_chain_rule_can_be_switched_off():
    prog = program(forbid_reporting_chain=False)
    assert eligible(prog, mentor("M"), mentee("E", chain=["M"]))


def test_same_manager_policy():
    m, e = mentor("M", chain=["BOSS"]), mentee("E", chain=["BOSS"])
    assert eligible(program(forbid_same_manager=False), m, e)
    assert not eligible(program(forbid_same_manager=True), m, e)
    # Two people without a manager do not share one.
    assert eligible(program(forbid_same_manager=True), mentor("M"), mentee("E"))


def test_capacity_limits_the_number_of_mentees():
    prog = program()
    people = [mentor("M", capacity=1), mentee("E1"), mentee("E2")]
    assert len(match(prog, people, today=TODAY).pairs) == 1
    people[0] = mentor("M", capacity=2)
    assert len(match(prog, people, today=TODAY).pairs) == 2


def test_capacity_override_replaces_capacity():
    prog = program()
    people = [mentor("M", capacity=2), mentee("E1"), mentee("E2")]
    assert len(match(prog, people, today=TODAY, capacity_override={"M": 1}).pairs) == 1
    result = match(prog, people, today=TODAY, capacity_override={"M": 0})
    assert result.pairs == ()
    assert "no capacity" in next(u.reason for u in result.unmatched if u.employee_id == "E1")


def test_time_zone_window():
    prog = program(max_timezone_gap_hours=1)
    jakarta, makassar = mentor("M", tz="Asia/Jakarta"), mentor("M", tz="Asia/Makassar")
    e = mentee("E", tz="Asia/Jayapura")
    assert not eligible(prog, jakarta, e)  # 2 hours apart
    assert eligible(prog, makassar, e)
    assert eligible(program(max_timezone_gap_hours=None), jakarta, e)


def test_time_zone_gap_is_the_largest_during_the_program():
    # London and UTC differ by one hour in summer only; a program over the summer sees it.
    m, e = mentor("M", tz="Europe/London"), mentee("E", tz="UTC")
    assert not eligible(program(max_timezone_gap_hours=0), m, e)
    winter_only = program(max_timezone_gap_hours=0).model_copy(
        update={"start_date": date(2026, 11, 2)}
    )
    # 182 days from 2 Nov 2026 reaches May 2027: summer time again.
    assert not eligible(winter_only, m, e)
    short = winter_only.model_copy(
        update={
            "ground_rules": winter_only.ground_rules.model_copy(update={"program_length_days": 60})
        }
    )
    assert eligible(short, m, e)


def test_cross_functional_requirement():
    prog = program(require_cross_functional=True)
    assert not eligible(prog, mentor("M", dept="Sales"), mentee("E", dept="sales"))
    assert eligible(prog, mentor("M", dept="Finance"), mentee("E", dept="Sales"))


@pytest.mark.parametrize("side", ["mentor", "mentee"])
def test_do_not_pair_with_works_both_ways(side):  # type: ignore[no-untyped-def]
    prog = program()
    m = mentor("M", avoid=["E"] if side == "mentor" else [])
    e = mentee("E", avoid=["M"] if side == "mentee" else [])
    assert not eligible(prog, m, e)


@pytest.mark.parametrize("pair", [("M", "E"), ("E", "M")])
def test_exclusions_in_either_order(pair):  # type: ignore[no-untyped-def]
    prog = program()
    assert not eligible(prog, mentor("M"), mentee("E"), exclusions=frozenset([pair]))
    result = match(prog, [mentor("M"), mentee("E")], today=TODAY, exclusions=frozenset([pair]))
    assert result.pairs == ()
    assert "earlier pairing" in result.unmatched[0].reason


@pytest.mark.parametrize("seed", range(12))
def test_vectorised_rules_agree_with_the_reference(seed):  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    prog = program(
        max_level_gap=rng.choice([1, 2]),
        min_level_gap=rng.choice([0, 0, 1]),
        forbid_same_manager=rng.random() < 0.5,
        forbid_reporting_chain=rng.random() < 0.8,
        max_timezone_gap_hours=rng.choice([None, 0, 1]),
        require_cross_functional=rng.random() < 0.3,
    )
    people = random_cohort(rng, 12, 18)
    mentors = [p for p in people if p.role is Role.MENTOR]
    mentees = [p for p in people if p.role is Role.MENTEE]
    exclusions = frozenset(
        (rng.choice(mentors).employee_id, rng.choice(mentees).employee_id) for _ in range(4)
    )
    found = candidates(prog, mentors, mentees, today=TODAY, exclusions=exclusions)
    expected = {
        (m.employee_id, e.employee_id)
        for m in mentors
        for e in mentees
        if ref_violation(prog, m, e, exclusions) is None
    }
    assert {(c.mentor, c.mentee) for c in found} == expected
    result = match(prog, people, today=TODAY, exclusions=exclusions)
    assert {(p.mentor, p.mentee) for p in result.pairs} <= expected
