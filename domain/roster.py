"""A cohort's roster over time: what a fresh HR export changes, and the roster as of a date.

Pure. The roster is the cohort's ``MatchProfile`` list (ids and matching facts, never names
or e-mails). A sync compares the roster with a fresh export and yields a :class:`RosterDiff`;
applying it is recorded on the cohort stream as a ``RosterSynced`` event that carries the
joiners' profiles and every changed field with its value before and after, so the roster as
of any moment can be rebuilt by rolling the current one back (:func:`roll_back`), and the
roll-back to the very start must reproduce the digest recorded when the cohort started.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from domain.people import MatchProfile, Role

# What a sync compares, in the order it reports changes. ``employee_id`` is the identity.
COMPARED_FIELDS: tuple[str, ...] = (
    "role", "manager_chain", "department", "level", "timezone", "capacity", "hire_date",
    "skills_offered", "skills_wanted", "answers", "do_not_pair_with",
)
# A change of role would turn a mentor into a mentee mid-program: not something a sync may
# decide on its own. It is reported as a problem and nothing is applied.
UNSUPPORTED_CHANGES = frozenset({"role"})


def people_digest(profiles: Iterable[MatchProfile]) -> str:
    """SHA-256 over the profiles in canonical JSON, in employee id order: the roster's
    fingerprint (recorded when a cohort starts, and in every sync)."""
    # Sets sorted (see _json): pydantic dumps a frozenset in iteration order, which differs
    # between processes, and a digest that did so could not recognise the same roster twice.
    rows = sorted((profile_json(p) for p in profiles), key=lambda r: r["employee_id"])
    canonical = json.dumps(rows, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def profile_json(profile: MatchProfile) -> dict[str, Any]:
    """A profile as canonical JSON (sets sorted): how a joiner is recorded in an event."""
    document = profile.model_dump(mode="json")
    # Sets dump in iteration order: sort them so equal rosters compare (and hash) equal.
    for name in ("skills_offered", "skills_wanted", "do_not_pair_with"):
        document[name] = sorted(document[name])
    document["answers"] = {q: sorted(a) for q, a in sorted(document["answers"].items())}
    return document


class FieldChange(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    field: str
    before: Any
    after: Any


class MemberChange(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    employee_id: str
    changes: tuple[FieldChange, ...]

    def fields(self) -> tuple[str, ...]:
        return tuple(c.field for c in self.changes)


class RosterDiff(BaseModel):
    """What a fresh export changes: joiners (their full profiles), leavers (ids) and changed
    members (field by field). ``problems`` are changes a sync refuses to apply."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    joiners: tuple[MatchProfile, ...] = ()
    leavers: tuple[str, ...] = ()
    changed: tuple[MemberChange, ...] = ()
    problems: tuple[str, ...] = ()
    # Members recorded as having left who are still in the export: ignored, shown to ops.
    departed_but_listed: tuple[str, ...] = ()

    @property
    def mentor_capacity_added(self) -> bool:
        """Whether the diff brings new mentor places (a mentor joins or raises capacity)."""
        return any(j.role is Role.MENTOR for j in self.joiners) or any(
            c.field == "capacity" and c.after > c.before
            for m in self.changed for c in m.changes)

    @property
    def is_empty(self) -> bool:
        return not (self.joiners or self.leavers or self.changed)

    def summary(self) -> str:
        if self.is_empty:
            return "no changes"
        parts = []
        if self.joiners:
            parts.append(f"{len(self.joiners)} joining")
        if self.leavers:
            parts.append(f"{len(self.leavers)} leaving")
        if self.changed:
            parts.append(f"{len(self.changed)} changed")
        return ", ".join(parts)


def diff_roster(current: Sequence[MatchProfile], incoming: Sequence[MatchProfile],
                departed: Collection[str] = ()) -> RosterDiff:
    """How ``incoming`` (a fresh export) differs from ``current`` (the cohort's roster).

    ``departed`` are members already recorded as having left: they stay on the roster (they
    count in retention) but a sync neither leaves them again nor follows their later changes;
    one still (or again) in the export is listed in ``departed_but_listed`` and otherwise
    ignored: HR exports often lag a departure recorded by hand, and a returning employee joins
    a new cohort rather than resuming a pairing that ended."""
    gone = set(departed)
    before = {p.employee_id: p for p in current}
    after = {p.employee_id: p for p in incoming}
    joiners = tuple(after[i] for i in sorted(after.keys() - before.keys()))
    leavers = tuple(sorted(before.keys() - after.keys() - gone))
    changed: list[MemberChange] = []
    problems: list[str] = []
    for employee_id in sorted(before.keys() & after.keys() - gone):
        old, new = profile_json(before[employee_id]), profile_json(after[employee_id])
        changes = tuple(FieldChange(field=name, before=old[name], after=new[name])
                        for name in COMPARED_FIELDS if old[name] != new[name])
        if not changes:
            continue
        refused = [c.field for c in changes if c.field in UNSUPPORTED_CHANGES]
        if refused:
            problems.append(
                f"{employee_id}: {', '.join(refused)} changed from {old['role']} to "
                f"{new['role']}; end their participation (participant-left) and enrol them in a "
                "later cohort in the new role")
        changed.append(MemberChange(employee_id=employee_id, changes=changes))
    return RosterDiff(joiners=joiners, leavers=leavers, changed=tuple(changed),
                      problems=tuple(problems),
                      departed_but_listed=tuple(sorted(after.keys() & gone)))


def apply_diff(current: Sequence[MatchProfile], diff: RosterDiff) -> list[MatchProfile]:
    """The roster after ``diff``: leavers stay on it (they are members who left, and count in
    retention), joiners are added, changed members take their new values."""
    return _patched(current, diff.joiners, diff.changed, forward=True)


def roll_back(current: Sequence[MatchProfile], diffs: Sequence[RosterDiff]) -> list[MatchProfile]:
    """The roster before ``diffs`` (applied in the given order) were applied to it."""
    roster = list(current)
    for diff in reversed(diffs):
        joined = {p.employee_id for p in diff.joiners}
        roster = _patched([p for p in roster if p.employee_id not in joined], (),
                          diff.changed, forward=False)
    return roster


def _patched(current: Sequence[MatchProfile], joiners: Sequence[MatchProfile],
             changed: Sequence[MemberChange], *, forward: bool) -> list[MatchProfile]:
    by_id: dict[str, MatchProfile] = {p.employee_id: p for p in current}
    for member in changed:
        profile = by_id.get(member.employee_id)
        if profile is None:
            raise ValueError(f"{member.employee_id} changed but is not on the roster")
        values: Mapping[str, Any] = {c.field: (c.after if forward else c.before)
                                     for c in member.changes}
        by_id[member.employee_id] = MatchProfile.model_validate(
            {**profile.model_dump(mode="json"), **values})
    for joiner in joiners:
        by_id[joiner.employee_id] = joiner
    return [by_id[i] for i in sorted(by_id)]
