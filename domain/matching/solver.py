"""The solver: the globally best pairs under mentor capacity (``match``) and the best new
partner for one person whose pairing ended (``rematch``). See docs/matching.md for the
optimality argument and the tie-breaking rules."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from domain.matching.candidates import CandidateSet
from domain.matching.encoding import (
    BoolMatrix,
    EncodedCohort,
    FloatArray,
    IntArray,
    all_indices,
    row_blocks,
    split_roles,
)
from domain.matching.explanations import describe_exclusions, reason_counts, unmatched_report
from domain.matching.results import (
    ALGORITHM_VERSION,
    SCORE_UNIT,
    MatchedPair,
    MatchSummary,
    RematchResult,
    Unmatched,
)
from domain.people import MatchProfile, Person, Role
from domain.program import MatchObjective, ProgramSpec

# Solver values must stay exact integers in float64.
_EXACT_LIMIT = 2**52


@dataclass(frozen=True)
class AssignmentProblem:
    """The rectangular problem handed to the solver: one row per mentor *slot*, one column per
    mentee that has at least one candidate. ``matrix`` is maximised."""

    cohort: EncodedCohort = field(repr=False)
    feasible: BoolMatrix = field(repr=False)  # mentors x mentees
    units: FloatArray = field(repr=False)  # mentors x mentees, micro-points
    slot_mentor: IntArray = field(repr=False)  # row -> mentor index
    columns: IntArray = field(repr=False)  # column -> mentee index
    matrix: FloatArray = field(repr=False)

    def pairs_from(self, rows: IntArray, cols: IntArray) -> list[tuple[int, int]]:
        """Solver output -> feasible (mentor index, mentee index) pairs."""
        mi, ej = self.slot_mentor[rows], self.columns[cols]
        keep = self.feasible[mi, ej]
        return list(zip(mi[keep].tolist(), ej[keep].tolist(), strict=True))

    def score_of(self, pairs: Sequence[tuple[int, int]]) -> float:
        return sum(int(self.units[i, j]) for i, j in pairs) / SCORE_UNIT


def assignment_problem(
    program: ProgramSpec,
    people: Sequence[MatchProfile] | Sequence[Person],
    *,
    today: date,
    exclusions: Collection[tuple[str, str]] = frozenset(),
    capacity_override: Mapping[str, int] | None = None,
) -> AssignmentProblem:
    """Constraint filtering, scoring and the solver matrix: everything ``match`` does before
    calling the solver (exposed so the benchmark can time the solver alone on it)."""
    mentors, mentees = split_roles(people)
    cohort = EncodedCohort(
        program,
        mentors,
        mentees,
        today=today,
        exclusions=exclusions,
        capacity_override=capacity_override,
    )
    return _problem(cohort)


def _problem(cohort: EncodedCohort) -> AssignmentProblem:
    n_m, n_e = len(cohort.mentors), len(cohort.mentees)
    rows, cols = all_indices(n_m), all_indices(n_e)
    feasible = cohort.feasible(rows, cols)
    units = cohort.score_units(rows, cols)

    # A mentor never needs more slots than it has candidates, and a mentee without candidates
    # only makes the matrix bigger.
    per_mentor = feasible.sum(axis=1)
    slots = np.minimum(cohort.capacity, per_mentor)
    columns = np.nonzero(feasible.any(axis=0))[0].astype(np.int64)
    # Slot-major order: every mentor's first slot, then every second slot, ... so that, at
    # equal scores, load is spread before anyone takes a second mentee.
    slot_mentor = np.concatenate(
        [np.nonzero(slots > k)[0] for k in range(int(slots.max(initial=0)))]
        or [np.zeros(0, dtype=np.int64)]
    ).astype(np.int64)

    n = min(len(slot_mentor), len(columns))
    max_units = float(units.max(initial=0.0, where=feasible))
    if cohort.policy.objective is MatchObjective.MAX_MATCHED:
        # Lexicographic (pairs, then score): one more pair outweighs any score difference.
        scale, offset = 1.0, max_units * n + 1
    else:
        # Lexicographic (score, then pairs): the +1 makes a zero-score pair still worth taking.
        scale, offset = float(n + 1), 1.0
    if n * (max_units * scale + offset) >= _EXACT_LIMIT:
        raise ValueError("cohort too large for exact scoring; lower the weights")

    matrix = np.empty((len(slot_mentor), len(columns)), dtype=np.float64)
    every_column = len(columns) == n_e
    for part, block in row_blocks(slot_mentor, len(columns)):
        if every_column:
            value, feas = units[block], feasible[block]
        else:
            value, feas = units[np.ix_(block, columns)], feasible[np.ix_(block, columns)]
        if scale != 1.0:
            value *= scale
        value += offset
        # Forbidden pairs are worth nothing: choosing one equals leaving both unmatched.
        np.multiply(value, feas, out=matrix[part])
    return AssignmentProblem(cohort, feasible, units, slot_mentor, columns, matrix)


def _solve(problem: AssignmentProblem) -> list[tuple[int, int]]:
    if problem.matrix.size == 0:
        return []
    rows, cols = linear_sum_assignment(problem.matrix, maximize=True)
    return problem.pairs_from(rows.astype(np.int64), cols.astype(np.int64))


def _canonicalise(problem: AssignmentProblem, pairs: list[tuple[int, int]]) -> dict[int, int]:
    """Among assignments with the same number of pairs and the same score, move towards lower
    ids with exchanges that keep both exactly (see docs/matching.md, "Ties"):

    A. an unmatched mentee with a lower id takes a matched mentee's place at the same score;
    B. a mentee moves to a mentor with free capacity and the same score when that mentor is
       less loaded, or equally loaded and has a lower id.

    Each move lowers (sum of matched mentee ranks, sum of slot ranks) lexicographically, so the
    loop ends; neither changes the objective, so the result stays optimal.
    """
    feasible, units, cap = problem.feasible, problem.units, problem.cohort.capacity
    mentor_of = dict((j, i) for i, j in pairs)  # mentee -> mentor
    load = np.zeros(len(cap), dtype=np.int64)
    for i, _ in pairs:
        load[i] += 1
    has_candidate = feasible.any(axis=0)

    changed = True
    while changed:
        changed = False
        # Move A, in batches: each unmatched mentee can be used once per pass.
        matched = np.array(sorted(mentor_of), dtype=np.int64)
        unmatched = np.array(
            [j for j in np.nonzero(has_candidate)[0].tolist() if j not in mentor_of],
            dtype=np.int64,
        )
        if len(matched) and len(unmatched):
            mi = np.array([mentor_of[j] for j in matched.tolist()], dtype=np.int64)
            block = np.ix_(mi, unmatched)
            same = feasible[block] & (units[block] == units[mi, matched][:, None])
            same &= unmatched[None, :] < matched[:, None]
            taken: set[int] = set()
            for k in np.nonzero(same.any(axis=1))[0].tolist():
                options = [u for u in unmatched[same[k]].tolist() if u not in taken]
                if not options:
                    continue
                j, u = int(matched[k]), options[0]
                taken.add(u)
                mentor_of[u] = mentor_of.pop(j)
                changed = True
        # Move B: spread load / prefer lower mentor ids at equal score.
        free = np.nonzero(load < cap)[0].astype(np.int64)
        if len(free) and mentor_of:
            matched = np.array(sorted(mentor_of), dtype=np.int64)
            mi = np.array([mentor_of[j] for j in matched.tolist()], dtype=np.int64)
            block = np.ix_(free, matched)
            same = feasible[block] & (units[block] == units[mi, matched])
            for k in np.nonzero(same.any(axis=0))[0].tolist():
                j = int(matched[k])
                current = mentor_of[j]
                best: tuple[int, int] | None = None
                for f in free[same[:, k]].tolist():
                    if f == current or load[f] >= cap[f]:
                        continue
                    better = load[f] < load[current] - 1 or (
                        load[f] == load[current] - 1 and f < current
                    )
                    if better and (best is None or (load[f], f) < best):
                        best = (int(load[f]), f)
                if best is not None:
                    target = best[1]
                    load[current] -= 1
                    load[target] += 1
                    mentor_of[j] = target
                    changed = True
    return mentor_of


@dataclass(frozen=True)
class MatchResult:
    """The outcome of one match run (a dry run until someone records it as an event)."""

    pairs: tuple[MatchedPair, ...]
    unmatched: tuple[Unmatched, ...]
    total_score: float
    candidates: CandidateSet = field(repr=False)
    algorithm_version: str
    input_digest: str
    objective: MatchObjective
    reference_date: date

    def summary(self) -> MatchSummary:
        return MatchSummary(
            algorithm_version=self.algorithm_version,
            input_digest=self.input_digest,
            objective=self.objective,
            reference_date=self.reference_date,
            pairs=self.pairs,
            unmatched=self.unmatched,
            total_score=self.total_score,
        )

    def to_json(self, *, include_candidates: bool = True) -> dict[str, Any]:
        """The ``sebaya cohort match --json`` document."""
        doc: dict[str, Any] = {
            "pairs": [
                {
                    "mentor": p.mentor,
                    "mentee": p.mentee,
                    "score": p.score,
                    "explanation": p.explanation.model_dump(mode="json"),
                }
                for p in self.pairs
            ],
            "unmatched": [
                {"employee_id": u.employee_id, "reason": u.reason} for u in self.unmatched
            ],
            "total_score": self.total_score,
        }
        if include_candidates:
            doc["candidates"] = [
                {"mentor": m, "mentee": e, "score": s} for m, e, s in self.candidates.scores()
            ]
        doc["algorithm_version"] = self.algorithm_version
        doc["input_digest"] = self.input_digest
        doc["objective"] = self.objective.value
        doc["reference_date"] = self.reference_date.isoformat()
        return doc


def match(
    program: ProgramSpec,
    people: Sequence[MatchProfile] | Sequence[Person],
    *,
    today: date,
    exclusions: Collection[tuple[str, str]] = frozenset(),
    capacity_override: Mapping[str, int] | None = None,
) -> MatchResult:
    """The globally best pairs for ``program.matching.objective`` under mentor capacity.

    Mentors are expanded into capacity slots and the slots x mentees problem is solved with
    ``scipy.optimize.linear_sum_assignment``. ``capacity_override`` replaces a mentor's capacity
    (e.g. with what is left of it mid-program). Same input, in any order -> same result.
    """
    problem = assignment_problem(
        program, people, today=today, exclusions=exclusions, capacity_override=capacity_override
    )
    cohort = problem.cohort
    mentor_of = _canonicalise(problem, _solve(problem))
    ordered = sorted(mentor_of.items(), key=lambda je: (je[1], je[0]))  # by mentor, mentee
    mi = np.array([i for _, i in ordered], dtype=np.int64)
    ej = np.array([j for j, _ in ordered], dtype=np.int64)
    pairs = tuple(
        MatchedPair(
            mentor=cohort.mentor_ids[int(i)],
            mentee=cohort.mentee_ids[int(j)],
            score=score,
            explanation=explanation,
        )
        for i, j, (score, explanation) in zip(mi, ej, cohort.explain(mi, ej), strict=True)
    )
    total_units = sum(int(problem.units[i, j]) for j, i in ordered)
    return MatchResult(
        pairs=pairs,
        unmatched=tuple(unmatched_report(problem, mentor_of)),
        total_score=total_units / SCORE_UNIT,
        candidates=CandidateSet(cohort, problem.feasible, problem.units),
        algorithm_version=ALGORITHM_VERSION,
        input_digest=cohort.digest(),
        objective=program.matching.objective,
        reference_date=cohort.reference,
    )


def rematch(
    program: ProgramSpec,
    waiting: MatchProfile,
    pool: Sequence[MatchProfile],
    *,
    today: date,
    exclusions: Collection[tuple[str, str]] = frozenset(),
    remaining_capacity: Mapping[str, int] | None = None,
    exited_on: date | None = None,
) -> RematchResult:
    """The best eligible new partner for one person whose pairing ended, or why there is none.

    ``pool`` holds the available counterparts (mentors for a waiting mentee, mentees for a
    waiting mentor); ``remaining_capacity`` says how many places each mentor still has (default:
    its capacity). Ties go to the lowest employee id. The program's rematch policy applies:
    no rematch after ``allowed_until_share`` of the program, none during the cool-off after
    ``exited_on``.
    """
    who = waiting.employee_id
    deadline = program.rematch_deadline()
    if deadline is not None and today > deadline:
        return RematchResult(
            employee_id=who,
            partner=None,
            reason=f"rematching closed on {deadline.isoformat()} "
            f"({program.rematch.allowed_until_share:.0%} of the program)",
        )
    if exited_on is not None:
        ready = exited_on + timedelta(days=program.rematch.cool_off_days)
        if today < ready:
            return RematchResult(
                employee_id=who, partner=None, reason=f"cooling off until {ready.isoformat()}"
            )
    capacity = dict(remaining_capacity or {})
    if waiting.role is Role.MENTEE:
        mentors = [p for p in pool if p.role is Role.MENTOR and p.employee_id != who]
        mentees = [waiting]
    else:
        if capacity.get(who, waiting.capacity) < 1:
            return RematchResult(employee_id=who, partner=None, reason="no capacity left")
        mentors = [waiting]
        mentees = [p for p in pool if p.role is Role.MENTEE and p.employee_id != who]
    cohort = EncodedCohort(
        program,
        mentors,
        mentees,
        today=today,
        exclusions=exclusions,
        capacity_override=capacity,
    )
    rows, cols = all_indices(len(cohort.mentors)), all_indices(len(cohort.mentees))
    feasible = cohort.feasible(rows, cols)
    units = np.where(feasible, cohort.score_units(rows, cols), -1.0)
    # Flattened in id order, so argmax's first maximum is the lowest partner id.
    flat = units.ravel()
    eligible = int(feasible.sum())
    counterpart = "mentor" if waiting.role is Role.MENTEE else "mentee"
    if eligible == 0:
        if flat.size == 0:
            return RematchResult(
                employee_id=who, partner=None, reason=f"no {counterpart}s available"
            )
        axis = 0 if waiting.role is Role.MENTEE else 1
        counts = cohort.first_violations(rows, cols, axis=axis)
        excluded = reason_counts(counts, 0)
        n = flat.size
        return RematchResult(
            employee_id=who,
            partner=None,
            reason=f"no eligible {counterpart} among {n}: {describe_exclusions(excluded)}",
        )
    best = int(np.argmax(flat))
    i, j = divmod(best, len(cohort.mentees))
    score, explanation = cohort.explain(np.array([i]), np.array([j]))[0]
    partner = cohort.mentor_ids[i] if waiting.role is Role.MENTEE else cohort.mentee_ids[j]
    return RematchResult(
        employee_id=who,
        partner=partner,
        score=score,
        explanation=explanation,
        eligible=eligible,
    )
