"""Roster sync, pure: the difference a fresh HR export makes, applied and rolled back."""

from __future__ import annotations

import subprocess
import sys
from datetime import date

from domain.people import MatchProfile, Role
from domain.roster import apply_diff, diff_roster, people_digest, roll_back


def profile(employee_id: str, role: Role = Role.MENTEE, **overrides: object) -> MatchProfile:
    fields: dict[str, object] = dict(
        employee_id=employee_id, role=role, level=3, department="IT",
        hire_date=date(2026, 9, 1), timezone="Asia/Jakarta",
        capacity=2 if role is Role.MENTOR else 0,
        skills_wanted=frozenset({"python", "sql", "go", "excel"}),
    )
    fields.update(overrides)
    return MatchProfile.model_validate(fields)


ROSTER = [profile("M1", Role.MENTOR), profile("M2", Role.MENTOR), profile("E1"), profile("E2")]


def test_the_same_export_changes_nothing() -> None:
    diff = diff_roster(ROSTER, list(reversed(ROSTER)))
    assert diff.is_empty and diff.summary() == "no changes"


def test_joiners_leavers_and_changed_fields_with_before_and_after() -> None:
    incoming = [
        profile("M1", Role.MENTOR, capacity=1),
        profile("M2", Role.MENTOR, manager_chain=("E1",), department="Finance"),
        profile("E1"),
        profile("E3"),
    ]
    diff = diff_roster(ROSTER, incoming)
    assert [p.employee_id for p in diff.joiners] == ["E3"]
    assert diff.leavers == ("E2",)
    changes = {m.employee_id: {c.field: (c.before, c.after) for c in m.changes}
               for m in diff.changed}
    assert changes == {
        "M1": {"capacity": (2, 1)},
        "M2": {"manager_chain": ([], ["E1"]), "department": ("IT", "Finance")},
    }
    assert not diff.problems


def test_a_role_change_is_a_problem_not_a_change_to_apply() -> None:
    diff = diff_roster(ROSTER, [*ROSTER[:3], profile("E2", Role.MENTOR)])
    assert len(diff.problems) == 1 and diff.problems[0].startswith("E2: role changed")


def test_apply_then_roll_back_returns_the_original_roster_and_digest() -> None:
    first = diff_roster(ROSTER, [profile("M1", Role.MENTOR, level=5), *ROSTER[1:],
                                 profile("E3")])
    after_first = apply_diff(ROSTER, first)
    second = diff_roster(after_first, [p for p in after_first if p.employee_id != "E1"]
                         + [profile("E4", timezone="Europe/Amsterdam")])
    after_second = apply_diff(after_first, second)
    # Leavers stay members (they count in retention); the joiners and changes are in.
    assert {p.employee_id for p in after_second} == {"M1", "M2", "E1", "E2", "E3", "E4"}
    assert next(p for p in after_second if p.employee_id == "M1").level == 5

    assert people_digest(roll_back(after_second, [first, second])) == people_digest(ROSTER)
    assert people_digest(roll_back(after_second, [second])) == people_digest(after_first)


def test_the_digest_is_the_same_in_every_process() -> None:
    """Sets must not leak their per-process iteration order into the fingerprint."""
    code = ("from tests.domain.test_roster import ROSTER; "
            "from domain.roster import people_digest; print(people_digest(ROSTER))")
    digests = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True, env={"PYTHONHASHSEED": str(seed)}).stdout
               for seed in (1, 2, 3)}
    assert len(digests) == 1
