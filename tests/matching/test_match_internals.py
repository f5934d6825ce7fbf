"""Properties of the vectorised engine: block size, popcount fallback, wide skill sets, and the
name-free profile projection."""

from __future__ import annotations

import random
from datetime import date

import numpy as np
import pytest

from domain.matching import candidates, match
from domain.matching import encoding as engine
from domain.people import MatchProfile, Person, Role, to_profiles
from tests.matching.matchkit import TODAY, mentee, mentor, program, random_cohort, ref_score


def snapshot(result):  # type: ignore[no-untyped-def]
    return (
        [(p.mentor, p.mentee, p.score) for p in result.pairs],
        [(u.employee_id, u.reason) for u in result.unmatched],
        result.candidates.scores(),
    )


def test_results_do_not_depend_on_the_block_size(monkeypatch: pytest.MonkeyPatch):
    people = random_cohort(random.Random(8), 30, 50)
    prog = program(max_level_gap=2)
    default = snapshot(match(prog, people, today=TODAY))
    monkeypatch.setattr(engine, "_BLOCK_PAIRS", 7)
    assert snapshot(match(prog, people, today=TODAY)) == default


def test_popcount_fallback_for_older_numpy(monkeypatch: pytest.MonkeyPatch):
    people = random_cohort(random.Random(4), 20, 30)
    prog = program(max_level_gap=3)
    default = snapshot(match(prog, people, today=TODAY))
    monkeypatch.delattr(np, "bitwise_count", raising=False)
    values = np.array([0, 1, 255, 2**40 + 7], dtype=np.uint64)
    assert engine._popcount(values).tolist() == [0, 1, 8, 4]
    assert snapshot(match(prog, people, today=TODAY)) == default


def test_many_distinct_skills_use_several_mask_words():
    rng = random.Random(1)
    skills = [f"skill {k}" for k in range(150)]
    mentors = [mentor(f"M{k}", offered=rng.sample(skills, 40)) for k in range(5)]
    mentees = [mentee(f"E{k}", wanted=rng.sample(skills, 30)) for k in range(5)]
    prog = program(
        weights={"questionnaire": 0, "skills": 1, "cross_functional": 0, "recent_hire": 0}
    )
    found = candidates(prog, mentors, mentees, today=TODAY)
    by_id = {p.employee_id: p for p in [*mentors, *mentees]}
    for c in found:
        expected = ref_score(prog, by_id[c.mentor], by_id[c.mentee], prog.start_date)
        assert c.score == pytest.approx(expected, abs=1e-6)


def test_duplicate_ids_are_refused():
    with pytest.raises(ValueError, match="more than once"):
        match(program(), [mentor("X"), mentee("X")], today=TODAY)


def test_profiles_carry_no_names_and_resolve_chains():
    def person(eid: str, manager: str | None, role: Role = Role.MENTEE) -> Person:
        return Person(
            employee_id=eid,
            name=f"Nama {eid}",
            email=f"{eid.lower()}@example.co.id",
            role=role,
            level=2,
            department="Sales",
            manager_id=manager,
            hire_date=date(2026, 1, 1),
            timezone="Asia/Jakarta",
            capacity=1 if role is Role.MENTOR else 0,
            skills_wanted=frozenset({" Public  Speaking "}),
        )

    people = [person("A", None, Role.MENTOR), person("B", "A"), person("C", "B"), person("D", "Z")]
    profiles = {p.employee_id: p for p in to_profiles(people)}
    assert profiles["C"].manager_chain == ("B", "A")
    assert profiles["C"].manager_id == "B"
    assert profiles["D"].manager_chain == ("Z",)  # a manager outside the list ends the chain
    assert profiles["B"].skills_wanted == frozenset({"public speaking"})
    dumped = profiles["C"].model_dump()
    assert "name" not in dumped and "email" not in dumped
    assert set(MatchProfile.model_fields) & {"name", "email"} == set()
    # match() accepts people directly and projects them itself
    assert (
        match(program(), people, today=TODAY).input_digest
        == match(program(), list(profiles.values()), today=TODAY).input_digest
    )


@pytest.mark.parametrize(
    ("role", "capacity", "message"),
    [(Role.MENTOR, 0, "at least 1"), (Role.MENTEE, 1, "no capacity")],
)
def test_capacity_rules_of_the_model(role: Role, capacity: int, message: str):
    with pytest.raises(ValueError, match=message):
        MatchProfile(
            employee_id="X",
            role=role,
            level=1,
            department="HR",
            hire_date=date(2026, 1, 1),
            timezone="Asia/Jakarta",
            capacity=capacity,
        )


def test_unknown_time_zone_is_refused_by_the_model():
    with pytest.raises(ValueError, match="unknown IANA time zone"):
        mentee("E", tz="Asia/Atlantis")


def test_profiles_and_summaries_survive_json_round_trips():
    """Both cross the Temporal boundary through the pydantic data converter."""
    people = random_cohort(random.Random(2), 6, 8)
    for p in people:
        assert MatchProfile.model_validate_json(p.model_dump_json()) == p
    summary = match(program(), people, today=TODAY).summary()
    assert type(summary).model_validate_json(summary.model_dump_json()) == summary
