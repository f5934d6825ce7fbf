"""Why someone was left unmatched: the hard constraints that ruled out every counterpart,
or the capacity that ran out, in words an operator can act on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from domain.matching.encoding import IntArray, all_indices
from domain.matching.results import CONSTRAINT_LABELS, Constraint, Unmatched
from domain.people import Role

if TYPE_CHECKING:
    from domain.matching.solver import AssignmentProblem


def reason_counts(counts: Mapping[Constraint, IntArray], k: int) -> dict[str, int]:
    found = {code: int(v[k]) for code, v in counts.items() if int(v[k]) > 0}
    order = list(Constraint)
    ranked = sorted(found.items(), key=lambda kv: (-kv[1], order.index(kv[0])))
    return {code.value: n for code, n in ranked}


def describe_exclusions(counts: Mapping[str, int]) -> str:
    parts = [f"{n} by {CONSTRAINT_LABELS[Constraint(code)]}" for code, n in counts.items()]
    return ", ".join(parts)


def _preview(ids: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f", +{len(ids) - limit} more" if len(ids) > limit else "")


def unmatched_report(problem: AssignmentProblem, mentor_of: Mapping[int, int]) -> list[Unmatched]:
    cohort, feasible = problem.cohort, problem.feasible
    n_m, n_e = len(cohort.mentors), len(cohort.mentees)
    out: list[Unmatched] = []

    lonely = np.array([j for j in range(n_e) if j not in mentor_of], dtype=np.int64)
    if len(lonely):
        eligible = feasible[:, lonely].sum(axis=0)
        none_idx = np.nonzero(eligible == 0)[0]
        counts = (
            cohort.first_violations(all_indices(n_m), lonely[none_idx], axis=0)
            if len(none_idx) else {}
        )
        position = {int(k): pos for pos, k in enumerate(none_idx.tolist())}
        for k, j in enumerate(lonely.tolist()):
            mentee = cohort.mentee_ids[j]
            if n_m == 0:
                out.append(
                    Unmatched(
                        employee_id=mentee,
                        role=Role.MENTEE,
                        eligible=0,
                        reason="no mentors in the cohort",
                    )
                )
                continue
            if eligible[k] == 0:
                excluded = reason_counts(counts, position[k])
                reason = f"no eligible mentor among {n_m}: {describe_exclusions(excluded)}"
                out.append(
                    Unmatched(
                        employee_id=mentee,
                        role=Role.MENTEE,
                        eligible=0,
                        reason=reason,
                        excluded_by=excluded,
                    )
                )
                continue
            ids = [cohort.mentor_ids[i] for i in np.nonzero(feasible[:, j])[0].tolist()]
            noun = "mentor is" if len(ids) == 1 else f"{len(ids)} eligible mentors are"
            prefix = "the only eligible " if len(ids) == 1 else "all "
            reason = f"{prefix}{noun} at capacity ({_preview(ids)})"
            out.append(
                Unmatched(employee_id=mentee, role=Role.MENTEE, eligible=len(ids), reason=reason)
            )

    load = np.zeros(n_m, dtype=np.int64)
    for i in mentor_of.values():
        load[i] += 1
    spare = np.nonzero(load < cohort.capacity)[0].astype(np.int64)
    if len(spare):
        eligible = feasible[spare].sum(axis=1)
        none_idx = np.nonzero(eligible == 0)[0]
        counts = (
            cohort.first_violations(spare[none_idx], all_indices(n_e), axis=1)
            if len(none_idx) else {}
        )
        position = {int(k): pos for pos, k in enumerate(none_idx.tolist())}
        for k, i in enumerate(spare.tolist()):
            cap, used = int(cohort.capacity[i]), int(load[i])
            head = f"{used} of {cap} places used"
            mentor = cohort.mentor_ids[i]
            if n_e == 0:
                reason, excluded = f"{head}: no mentees in the cohort", {}
            elif eligible[k] == 0:
                excluded = reason_counts(counts, position[k])
                reason = f"{head}: no eligible mentee among {n_e}: {describe_exclusions(excluded)}"
            else:
                excluded = {}
                n = int(eligible[k])
                which = "the only eligible mentee is" if n == 1 else f"all {n} eligible mentees are"
                reason = f"{head}: {which} matched"
            out.append(
                Unmatched(
                    employee_id=mentor,
                    role=Role.MENTOR,
                    eligible=int(eligible[k]),
                    reason=reason,
                    excluded_by=excluded,
                    unused_capacity=cap - used,
                )
            )
    return out
