"""Questionnaire matching: which mentor may guide which mentee, how well they fit, and the
globally best set of pairs.

Pure and deterministic: no clock (``today`` is an argument), no I/O, people sorted by id before
anything else, scores in fixed point (micro-points) so equal scores are exactly equal.
See docs/matching.md for the formula, the optimality argument and the tie-breaking rules.

Everything runs on ``MatchProfile`` (no names, no e-mails) because matching runs inside a
Temporal activity and its inputs and outputs are recorded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Any, overload
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict
from scipy.optimize import linear_sum_assignment

from domain.people import MatchProfile, Person, Role, to_profiles
from domain.program import MatchObjective, ProgramSpec, QuestionKind

ALGORITHM_VERSION = "sebaya-match/1"
SCORE_DECIMALS = 6
# Scores are computed in float64 and rounded to integer micro-points: the solver then sees
# exact integers (sums stay below 2**53), and two pairs whose scores print the same are tied.
_UNIT = 10**SCORE_DECIMALS
_EXACT_LIMIT = 2**52

BoolMatrix = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class Constraint(StrEnum):
    """Hard constraints, in the order used to attribute a rejected pair to one reason."""

    CAPACITY = "capacity"
    LEVEL_GAP = "level_gap"
    EXPERIENCE = "experience"
    REPORTING_CHAIN = "reporting_chain"
    SAME_MANAGER = "same_manager"
    SAME_DEPARTMENT = "same_department"
    TIMEZONE = "timezone"
    DO_NOT_PAIR = "do_not_pair"
    PREVIOUS_PAIRING = "previous_pairing"


CONSTRAINT_LABELS: dict[Constraint, str] = {
    Constraint.CAPACITY: "no capacity",
    Constraint.LEVEL_GAP: "level gap",
    Constraint.EXPERIENCE: "not more experienced",
    Constraint.REPORTING_CHAIN: "reporting chain",
    Constraint.SAME_MANAGER: "same manager",
    Constraint.SAME_DEPARTMENT: "same department",
    Constraint.TIMEZONE: "time-zone gap",
    Constraint.DO_NOT_PAIR: "do-not-pair request",
    Constraint.PREVIOUS_PAIRING: "earlier pairing",
}


# --- results -------------------------------------------------------------------------------


class ComponentScore(BaseModel):
    """One score component: ``value`` in [0, 1] times ``weight`` gives ``points``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    value: float
    weight: float
    points: float


class Explanation(BaseModel):
    """Why a pair scores what it scores (and the facts behind the hard constraints)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    questionnaire: ComponentScore
    skills: ComponentScore
    cross_functional: ComponentScore
    recent_hire: ComponentScore
    per_question: dict[str, float]
    skills_covered: tuple[str, ...]
    mentee_days_since_hire: int
    level_gap: int
    timezone_gap_hours: float


class MatchedPair(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    mentor: str
    mentee: str
    score: float
    explanation: Explanation


class Unmatched(BaseModel):
    """A mentee left without a mentor, or a mentor with places left, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    employee_id: str
    role: Role
    reason: str
    eligible: int
    excluded_by: dict[str, int] = {}
    unused_capacity: int = 0


class MatchSummary(BaseModel):
    """What a match run decided, small enough to store as an event or return from an activity
    (the candidate list is left out: it can be recomputed from ``input_digest``'s inputs)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    algorithm_version: str
    input_digest: str
    objective: MatchObjective
    reference_date: date
    pairs: tuple[MatchedPair, ...]
    unmatched: tuple[Unmatched, ...]
    total_score: float


@dataclass(frozen=True, slots=True)
class Candidate:
    mentor: str
    mentee: str
    score: float
    explanation: Explanation


class RematchResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    employee_id: str
    partner: str | None
    score: float | None = None
    explanation: Explanation | None = None
    reason: str | None = None
    eligible: int = 0


# --- encoding: profiles -> arrays -----------------------------------------------------------


def _recency(days_since_hire: npt.NDArray[np.int64], program: ProgramSpec) -> FloatArray:
    """1 within ``recent_hire_days`` of the reference date (or hired later), 0.5 within
    ``first_year_days``, else 0: the people most likely to leave come first."""
    policy = program.matching
    out = np.zeros(days_since_hire.shape, dtype=np.float64)
    out[days_since_hire <= policy.first_year_days] = 0.5
    out[days_since_hire <= policy.recent_hire_days] = 1.0
    return out


def _zone_gap_table(zones: Sequence[str], first: date, last: date) -> FloatArray:
    """Largest |UTC offset difference| in hours between each pair of zones over the program,
    sampled weekly at noon (enough to see every daylight-saving period)."""
    days = max((last - first).days, 0)
    samples = [first + timedelta(days=d) for d in range(0, days + 1, 7)]
    offsets = np.zeros((len(zones), len(samples)), dtype=np.float64)
    for zi, name in enumerate(zones):
        zone = ZoneInfo(name)
        for si, day in enumerate(samples):
            delta = datetime.combine(day, time(12), tzinfo=zone).utcoffset()
            offsets[zi, si] = 0.0 if delta is None else delta.total_seconds() / 3600
    gaps: FloatArray = np.abs(offsets[:, None, :] - offsets[None, :, :]).max(axis=2)
    return gaps


def _one_hot(sets: Sequence[Collection[str]], vocab: Mapping[str, int]) -> FloatArray:
    out = np.zeros((len(sets), len(vocab)), dtype=np.float64)
    for row, values in enumerate(sets):
        for value in values:
            col = vocab.get(value)
            if col is not None:
                out[row, col] = 1.0
    return out


_POPCOUNT_TABLE = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _popcount(x: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """Set bits per element (numpy >= 2 has a SIMD ufunc; older numpy uses a byte table)."""
    count = getattr(np, "bitwise_count", None)
    if count is not None:
        return np.asarray(count(x), dtype=np.uint8)
    as_bytes = x.view(np.uint8).reshape(*x.shape, x.dtype.itemsize)
    return np.asarray(_POPCOUNT_TABLE[as_bytes].sum(axis=-1), dtype=np.uint8)


def _bitmasks(one_hot: FloatArray) -> npt.NDArray[Any]:
    """Sets as bit masks, shape (people, words), in the narrowest unsigned type that fits (an
    AND and a popcount per pair are ~50x cheaper than a matrix product with a tiny inner
    dimension)."""
    n, width = one_hot.shape
    dtype: type[np.unsignedinteger[Any]] = np.uint64
    for candidate, bits in ((np.uint8, 8), (np.uint16, 16), (np.uint32, 32)):
        if width <= bits:
            dtype = candidate
            break
    bits = np.dtype(dtype).itemsize * 8
    words = max(1, -(-width // bits))
    out = np.zeros((n, words), dtype=dtype)
    for col in range(width):
        word, bit = divmod(col, bits)
        out[:, word] |= (one_hot[:, col] > 0).astype(dtype) << dtype(bit)
    return out


def _codes(one_hot: FloatArray, blank: int) -> npt.NDArray[np.int16]:
    """Index of the chosen option of a single-answer question, ``blank`` if none."""
    codes = np.where(one_hot.any(axis=1), one_hot.argmax(axis=1), blank)
    return codes.astype(np.int16)


def _pair_positions(
    pairs: Sequence[tuple[int, int]],
) -> tuple[IntArray, IntArray]:
    if not pairs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    arr = np.asarray(sorted(set(pairs)), dtype=np.int64)
    return arr[:, 0], arr[:, 1]


@dataclass(frozen=True)
class _QuestionCode:
    id: str
    kind: QuestionKind
    weight: float
    # single: option index per person (-1 / -2 = unanswered, so two blanks never match);
    # multi: chosen options as bit masks (see _bitmasks), plus how many were chosen.
    mentor_codes: npt.NDArray[np.int16]
    mentee_codes: npt.NDArray[np.int16]
    mentors: npt.NDArray[Any]  # bit masks, see _bitmasks
    mentees: npt.NDArray[Any]
    mentor_sizes: FloatArray
    mentee_sizes: FloatArray


class _Cohort:
    """Mentors and mentees (sorted by id) encoded as arrays, with vectorised constraint checks
    and scoring over any block of (mentor rows, mentee columns)."""

    def __init__(
        self,
        program: ProgramSpec,
        mentors: Sequence[MatchProfile],
        mentees: Sequence[MatchProfile],
        *,
        today: date,
        exclusions: Collection[tuple[str, str]],
        capacity_override: Mapping[str, int] | None,
    ) -> None:
        self.program = program
        self.policy = program.matching
        self.reference = max(program.start_date, today)
        self.mentors = sorted(mentors, key=lambda p: p.employee_id)
        self.mentees = sorted(mentees, key=lambda p: p.employee_id)
        ids = [p.employee_id for p in self.mentors] + [p.employee_id for p in self.mentees]
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"employee ids appear more than once: {', '.join(dupes)}")
        self.mentor_ids = tuple(p.employee_id for p in self.mentors)
        self.mentee_ids = tuple(p.employee_id for p in self.mentees)
        self.mentor_index = {e: i for i, e in enumerate(self.mentor_ids)}
        self.mentee_index = {e: j for j, e in enumerate(self.mentee_ids)}
        override = capacity_override or {}
        self.capacity = np.array(
            [max(0, int(override.get(p.employee_id, p.capacity))) for p in self.mentors],
            dtype=np.int64,
        )
        self.exclusions = frozenset(exclusions)

        m, e = self.mentors, self.mentees
        self.m_level = np.array([p.level for p in m], dtype=np.int64)
        self.e_level = np.array([p.level for p in e], dtype=np.int64)
        self.m_hire = np.array([p.hire_date.toordinal() for p in m], dtype=np.int64)
        self.e_hire = np.array([p.hire_date.toordinal() for p in e], dtype=np.int64)
        depts = {d: k for k, d in enumerate(sorted({p.department.casefold() for p in [*m, *e]}))}
        self.m_dept = np.array([depts[p.department.casefold()] for p in m], dtype=np.int64)
        self.e_dept = np.array([depts[p.department.casefold()] for p in e], dtype=np.int64)
        managers = {
            x: k for k, x in enumerate(sorted({p.manager_id for p in [*m, *e] if p.manager_id}))
        }
        # Distinct sentinels so "no manager" never equals "no manager".
        self.m_mgr = np.array([managers.get(p.manager_id or "", -1) for p in m], dtype=np.int64)
        self.e_mgr = np.array([managers.get(p.manager_id or "", -2) for p in e], dtype=np.int64)

        zones = sorted({p.timezone for p in [*m, *e]})
        zone_code = {z: k for k, z in enumerate(zones)}
        self.zones = zones
        self.m_tz = np.array([zone_code[p.timezone] for p in m], dtype=np.int64)
        self.e_tz = np.array([zone_code[p.timezone] for p in e], dtype=np.int64)
        # Open-ended programs: look a year ahead.
        end = program.end_date() or self.reference + timedelta(days=365)
        self.zone_gap = _zone_gap_table(zones, self.reference, max(end, self.reference))

        self.days_since_hire = np.array(
            [(self.reference - p.hire_date).days for p in e], dtype=np.int64
        )
        self.recency = _recency(self.days_since_hire, program)
        self.recency_points = program.matching.weights.recent_hire * self.recency

        self.questions: list[_QuestionCode] = []
        for q in program.questionnaire.questions:
            vocab = {o: k for k, o in enumerate(q.options)}
            mq = _one_hot([p.answers.get(q.id, frozenset()) for p in m], vocab)
            eq = _one_hot([p.answers.get(q.id, frozenset()) for p in e], vocab)
            self.questions.append(
                _QuestionCode(
                    q.id,
                    q.kind,
                    q.weight,
                    _codes(mq, -1),
                    _codes(eq, -2),
                    _bitmasks(mq),
                    _bitmasks(eq),
                    mq.sum(1),
                    eq.sum(1),
                )
            )
        self.question_weight = float(sum(q.weight for q in self.questions))

        skills = {s: k for k, s in enumerate(sorted({s for p in m for s in p.skills_offered}))}
        self.skill_names = tuple(skills)
        self.offered = _bitmasks(_one_hot([p.skills_offered for p in m], skills))
        self.wanted = _bitmasks(_one_hot([p.skills_wanted for p in e], skills))
        # Coverage is over everything wanted, including skills no mentor offers.
        self.wanted_sizes = np.array([len(p.skills_wanted) for p in e], dtype=np.float64)

        chain: list[tuple[int, int]] = []
        for j, p in enumerate(e):
            chain += [(self.mentor_index[a], j) for a in p.manager_chain if a in self.mentor_index]
        for i, p in enumerate(m):
            chain += [(i, self.mentee_index[a]) for a in p.manager_chain if a in self.mentee_index]
        self.chain_pairs = _pair_positions(chain)
        dnp: list[tuple[int, int]] = []
        for j, p in enumerate(e):
            dnp += [(self.mentor_index[a], j) for a in p.do_not_pair_with if a in self.mentor_index]
        for i, p in enumerate(m):
            dnp += [(i, self.mentee_index[a]) for a in p.do_not_pair_with if a in self.mentee_index]
        self.dnp_pairs = _pair_positions(dnp)
        excl: list[tuple[int, int]] = []
        for a, b in self.exclusions:
            # An exclusion is a pair of people, whichever way round it was recorded.
            for x, y in ((a, b), (b, a)):
                if x in self.mentor_index and y in self.mentee_index:
                    excl.append((self.mentor_index[x], self.mentee_index[y]))
        self.excluded_pairs = _pair_positions(excl)

    # -- hard constraints -------------------------------------------------------------------

    def _sparse_block(
        self, pairs: tuple[IntArray, IntArray], rows: IntArray, cols: IntArray
    ) -> BoolMatrix:
        out = np.zeros((len(rows), len(cols)), dtype=np.bool_)
        pi, pj = pairs
        if len(pi) == 0:
            return out
        row_pos = np.full(len(self.mentor_ids), -1, dtype=np.int64)
        row_pos[rows] = np.arange(len(rows))
        col_pos = np.full(len(self.mentee_ids), -1, dtype=np.int64)
        col_pos[cols] = np.arange(len(cols))
        r, c = row_pos[pi], col_pos[pj]
        keep = (r >= 0) & (c >= 0)
        out[r[keep], c[keep]] = True
        return out

    def violations(self, rows: IntArray, cols: IntArray) -> Iterator[tuple[Constraint, BoolMatrix]]:
        """For each active constraint, which (row, col) pairs of the block break it."""
        p = self.policy
        shape = (len(rows), len(cols))
        yield Constraint.CAPACITY, np.broadcast_to((self.capacity[rows] < 1)[:, None], shape)
        ml, el = self.m_level[rows][:, None], self.e_level[cols][None, :]
        # Written as comparisons against shifted vectors so no int matrix of gaps is built.
        yield Constraint.LEVEL_GAP, (el < ml - p.max_level_gap) | (el > ml - p.min_level_gap)
        # Same level: the mentor must have joined at least min_tenure_gap_days earlier.
        joined_too_late = (
            self.e_hire[cols][None, :] < (self.m_hire[rows] + p.min_tenure_gap_days)[:, None]
        )
        yield Constraint.EXPERIENCE, (ml == el) & joined_too_late
        if p.forbid_reporting_chain:
            yield Constraint.REPORTING_CHAIN, self._sparse_block(self.chain_pairs, rows, cols)
        if p.forbid_same_manager:
            yield Constraint.SAME_MANAGER, self.m_mgr[rows][:, None] == self.e_mgr[cols][None, :]
        if p.require_cross_functional:
            same = self.m_dept[rows][:, None] == self.e_dept[cols][None, :]
            yield Constraint.SAME_DEPARTMENT, same
        if p.max_timezone_gap_hours is not None:
            too_far = self.zone_gap > p.max_timezone_gap_hours + 1e-9
            yield Constraint.TIMEZONE, too_far[self.m_tz[rows][:, None], self.e_tz[cols][None, :]]
        yield Constraint.DO_NOT_PAIR, self._sparse_block(self.dnp_pairs, rows, cols)
        yield Constraint.PREVIOUS_PAIRING, self._sparse_block(self.excluded_pairs, rows, cols)

    def feasible(self, rows: IntArray, cols: IntArray) -> BoolMatrix:
        out = np.empty((len(rows), len(cols)), dtype=np.bool_)
        for part, block in _row_blocks(rows, len(cols)):
            bad = np.zeros((len(block), len(cols)), dtype=np.bool_)
            for _, mask in self.violations(block, cols):
                bad |= mask
            np.logical_not(bad, out=out[part])
        return out

    def first_violations(
        self, rows: IntArray, cols: IntArray, axis: int
    ) -> dict[Constraint, IntArray]:
        """Rejected pairs attributed to the first constraint they break (in ``Constraint``
        order), counted along ``axis`` (0: per column, 1: per row)."""
        remaining = np.ones((len(rows), len(cols)), dtype=np.bool_)
        counts: dict[Constraint, IntArray] = {}
        for code, mask in self.violations(rows, cols):
            hit = mask & remaining
            counts[code] = hit.sum(axis=axis).astype(np.int64)
            remaining &= ~mask
        return counts

    # -- scores -----------------------------------------------------------------------------

    def _components(
        self, rows: IntArray, cols: IntArray, *, dense: bool, keep_parts: bool = False
    ) -> tuple[FloatArray, dict[str, FloatArray]]:
        """Score components either for the dense block rows x cols or for the aligned pairs
        (rows[k], cols[k]). Both paths run the same element-wise float operations in the same
        order (intersection counts are exact integers either way), so a pair's explanation
        reproduces its matrix score bit for bit, whatever the block shape."""
        w = self.policy.weights

        def inner(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> FloatArray:
            """|A & B| per pair, from bit masks: an exact integer in either path."""
            count: npt.NDArray[Any] | None = None
            for word in range(a.shape[1]):
                aw, bw = a[rows, word], b[cols, word]
                both = aw[:, None] & bw[None, :] if dense else aw & bw
                bits = _popcount(both)
                # uint16: more than 255 skills must not wrap around.
                count = bits.astype(np.uint16) if count is None else count + bits
            assert count is not None
            return count.astype(np.float64)

        def row(v: npt.NDArray[Any]) -> npt.NDArray[Any]:
            return v[rows][:, None] if dense else v[rows]

        def col(v: npt.NDArray[Any]) -> npt.NDArray[Any]:
            return v[cols][None, :] if dense else v[cols]

        parts: dict[str, FloatArray] = {}
        shape = (len(rows), len(cols)) if dense else (len(rows),)
        questionnaire = np.zeros(shape, dtype=np.float64)
        for q in self.questions:
            if q.weight == 0:
                continue
            if q.kind is QuestionKind.MULTI:
                inter = inner(q.mentors, q.mentees)
                union = row(q.mentor_sizes) + col(q.mentee_sizes)
                union -= inter
                sim = np.divide(inter, union, out=inter, where=union > 0)  # Jaccard
                if keep_parts:
                    parts[f"q:{q.id}"] = sim.copy()
                sim *= q.weight
                questionnaire += sim
            else:
                same = row(q.mentor_codes) == col(q.mentee_codes)
                if keep_parts:
                    parts[f"q:{q.id}"] = same.astype(np.float64)
                np.add(questionnaire, q.weight, out=questionnaire, where=same)
        if self.question_weight > 0:
            questionnaire /= self.question_weight
        sizes = col(self.wanted_sizes)
        covered = inner(self.offered, self.wanted)
        skills = np.divide(covered, sizes, out=covered, where=sizes > 0)
        cross = row(self.m_dept) != col(self.e_dept)

        total = w.questionnaire * questionnaire
        total += w.skills * skills
        np.add(total, w.cross_functional, out=total, where=cross)
        total += col(self.recency_points)
        if keep_parts:
            parts.update(
                questionnaire=questionnaire,
                skills=skills,
                cross_functional=cross.astype(np.float64),
                recent_hire=np.broadcast_to(col(self.recency), shape),
            )
        return total, parts

    def score_units(self, rows: IntArray, cols: IntArray) -> FloatArray:
        """Dense scores of the block in integer micro-points (as float64 for the solver)."""
        out = np.empty((len(rows), len(cols)), dtype=np.float64)
        for part, block in _row_blocks(rows, len(cols)):
            total, _ = self._components(block, cols, dense=True)
            total *= _UNIT
            np.rint(total, out=out[part])
        return out

    def explain(self, mi: IntArray, ej: IntArray) -> list[tuple[float, Explanation]]:
        """(score, explanation) for aligned pairs (mi[k], ej[k])."""
        if len(mi) == 0:
            return []
        total, parts = self._components(mi, ej, dense=False, keep_parts=True)
        units = np.rint(total * _UNIT)
        w = self.policy.weights
        out: list[tuple[float, Explanation]] = []
        for k in range(len(mi)):
            i, j = int(mi[k]), int(ej[k])

            def comp(name: str, weight: float, k: int = k) -> ComponentScore:
                value = float(parts[name][k])
                return ComponentScore(
                    value=round(value, SCORE_DECIMALS),
                    weight=weight,
                    points=round(weight * value, SCORE_DECIMALS),
                )

            covered = sorted(self.mentors[i].skills_offered & self.mentees[j].skills_wanted)
            explanation = Explanation(
                questionnaire=comp("questionnaire", w.questionnaire),
                skills=comp("skills", w.skills),
                cross_functional=comp("cross_functional", w.cross_functional),
                recent_hire=comp("recent_hire", w.recent_hire),
                per_question={
                    q.id: round(float(parts[f"q:{q.id}"][k]), SCORE_DECIMALS)
                    for q in self.questions
                    if f"q:{q.id}" in parts
                },
                skills_covered=tuple(covered),
                mentee_days_since_hire=int(self.days_since_hire[j]),
                level_gap=int(self.m_level[i] - self.e_level[j]),
                timezone_gap_hours=float(self.zone_gap[self.m_tz[i], self.e_tz[j]]),
            )
            out.append((float(units[k]) / _UNIT, explanation))
        return out

    # -- canonical input ---------------------------------------------------------------------

    def digest(self) -> str:
        """sha256 of everything that can change the outcome, in canonical JSON."""
        program = self.program
        payload = {
            "program": {
                "start_date": program.start_date.isoformat(),
                "program_length_days": program.ground_rules.program_length_days,
                "questionnaire": program.questionnaire.model_dump(mode="json"),
                "matching": program.matching.model_dump(mode="json"),
            },
            "reference_date": self.reference.isoformat(),
            "profiles": [_canonical_profile(p) for p in [*self.mentors, *self.mentees]],
            "capacity": dict(zip(self.mentor_ids, self.capacity.tolist(), strict=True)),
            "exclusions": sorted({tuple(sorted(pair)) for pair in self.exclusions}),
        }
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _canonical_profile(p: MatchProfile) -> dict[str, Any]:
    return {
        "employee_id": p.employee_id,
        "role": p.role.value,
        "level": p.level,
        "department": p.department,
        "hire_date": p.hire_date.isoformat(),
        "timezone": p.timezone,
        "capacity": p.capacity,
        "skills_offered": sorted(p.skills_offered),
        "skills_wanted": sorted(p.skills_wanted),
        "answers": {k: sorted(v) for k, v in sorted(p.answers.items())},
        "do_not_pair_with": sorted(p.do_not_pair_with),
        "manager_chain": list(p.manager_chain),
    }


# Dense work is done a few hundred thousand pairs at a time: the dozen temporaries of the
# scoring formula then stay in cache instead of each touching 100 MB of fresh memory.
_BLOCK_PAIRS = 1 << 18


def _row_blocks(rows: IntArray, n_cols: int) -> Iterator[tuple[slice, IntArray]]:
    step = max(1, _BLOCK_PAIRS // max(1, n_cols))
    for start in range(0, len(rows), step):
        part = slice(start, start + step)
        yield part, rows[part]


def _all(n: int) -> IntArray:
    return np.arange(n, dtype=np.int64)


def _split(
    people: Sequence[MatchProfile] | Sequence[Person],
) -> tuple[list[MatchProfile], list[MatchProfile]]:
    profiles: list[MatchProfile]
    if any(isinstance(p, Person) for p in people):
        if not all(isinstance(p, Person) for p in people):
            raise TypeError("pass either Person or MatchProfile objects, not both")
        profiles = to_profiles([p for p in people if isinstance(p, Person)])
    else:
        profiles = [p for p in people if isinstance(p, MatchProfile)]
    mentors = [p for p in profiles if p.role is Role.MENTOR]
    mentees = [p for p in profiles if p.role is Role.MENTEE]
    return mentors, mentees


# --- candidates -----------------------------------------------------------------------------


class CandidateSet(Sequence[Candidate]):
    """Every feasible (mentor, mentee) pair with its score, ordered by (mentor id, mentee id).

    Backed by the dense matrices, so building it costs nothing; explanations are computed
    when an item is read (a 5,000 x 2,500 cohort has millions of candidates).
    """

    def __init__(self, cohort: _Cohort, feasible: BoolMatrix, units: FloatArray) -> None:
        self._cohort = cohort
        self._feasible = feasible
        self._units = units

    @cached_property
    def _where(self) -> tuple[IntArray, IntArray]:
        rows, cols = np.nonzero(self._feasible)
        return rows.astype(np.int64), cols.astype(np.int64)

    def __len__(self) -> int:
        return len(self._where[0])

    @overload
    def __getitem__(self, index: int) -> Candidate: ...

    @overload
    def __getitem__(self, index: slice) -> list[Candidate]: ...

    def __getitem__(self, index: int | slice) -> Candidate | list[Candidate]:
        rows, cols = self._where
        if isinstance(index, slice):
            return self._materialise(rows[index], cols[index])
        return self._materialise(rows[[index]], cols[[index]])[0]

    def __iter__(self) -> Iterator[Candidate]:
        rows, cols = self._where
        for start in range(0, len(rows), 1024):
            yield from self._materialise(rows[start : start + 1024], cols[start : start + 1024])

    def _materialise(self, rows: IntArray, cols: IntArray) -> list[Candidate]:
        c = self._cohort
        return [
            Candidate(c.mentor_ids[int(i)], c.mentee_ids[int(j)], score, explanation)
            for i, j, (score, explanation) in zip(rows, cols, c.explain(rows, cols), strict=True)
        ]

    def scores(self) -> list[tuple[str, str, float]]:
        """(mentor, mentee, score) for every candidate, without explanations (cheap)."""
        rows, cols = self._where
        units = self._units[rows, cols]
        m, e = self._cohort.mentor_ids, self._cohort.mentee_ids
        return [
            (m[i], e[j], u / _UNIT)
            for i, j, u in zip(rows.tolist(), cols.tolist(), units.tolist(), strict=True)
        ]

    def is_eligible(self, mentor: str, mentee: str) -> bool:
        i = self._cohort.mentor_index.get(mentor)
        j = self._cohort.mentee_index.get(mentee)
        return i is not None and j is not None and bool(self._feasible[i, j])

    def for_mentee(self, mentee: str) -> list[Candidate]:
        """Candidates of one mentee, best first (ties by mentor id)."""
        j = self._cohort.mentee_index[mentee]
        rows = np.nonzero(self._feasible[:, j])[0].astype(np.int64)
        order = np.lexsort((rows, -self._units[rows, j]))
        rows = rows[order]
        return self._materialise(rows, np.full(len(rows), j, dtype=np.int64))


def candidates(
    program: ProgramSpec,
    mentors: Sequence[MatchProfile],
    mentees: Sequence[MatchProfile],
    *,
    today: date,
    exclusions: Collection[tuple[str, str]] = frozenset(),
    capacity_override: Mapping[str, int] | None = None,
) -> CandidateSet:
    """Every pair that passes the hard constraints, with score and explanation.

    ``exclusions`` are pairs (either order) that must never be matched again, e.g. because they
    exited each other; ``do_not_pair_with`` is honoured in both directions.
    """
    cohort = _Cohort(
        program,
        mentors,
        mentees,
        today=today,
        exclusions=exclusions,
        capacity_override=capacity_override,
    )
    rows, cols = _all(len(cohort.mentors)), _all(len(cohort.mentees))
    return CandidateSet(cohort, cohort.feasible(rows, cols), cohort.score_units(rows, cols))


# --- assignment -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AssignmentProblem:
    """The rectangular problem handed to the solver: one row per mentor *slot*, one column per
    mentee that has at least one candidate. ``matrix`` is maximised."""

    cohort: _Cohort = field(repr=False)
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
        return sum(int(self.units[i, j]) for i, j in pairs) / _UNIT


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
    mentors, mentees = _split(people)
    cohort = _Cohort(
        program,
        mentors,
        mentees,
        today=today,
        exclusions=exclusions,
        capacity_override=capacity_override,
    )
    return _problem(cohort)


def _problem(cohort: _Cohort) -> AssignmentProblem:
    n_m, n_e = len(cohort.mentors), len(cohort.mentees)
    rows, cols = _all(n_m), _all(n_e)
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
    for part, block in _row_blocks(slot_mentor, len(columns)):
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


def _reason_counts(counts: Mapping[Constraint, IntArray], k: int) -> dict[str, int]:
    found = {code: int(v[k]) for code, v in counts.items() if int(v[k]) > 0}
    order = list(Constraint)
    ranked = sorted(found.items(), key=lambda kv: (-kv[1], order.index(kv[0])))
    return {code.value: n for code, n in ranked}


def _describe(counts: Mapping[str, int]) -> str:
    parts = [f"{n} by {CONSTRAINT_LABELS[Constraint(code)]}" for code, n in counts.items()]
    return ", ".join(parts)


def _preview(ids: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f", +{len(ids) - limit} more" if len(ids) > limit else "")


def _unmatched(problem: AssignmentProblem, mentor_of: Mapping[int, int]) -> list[Unmatched]:
    cohort, feasible = problem.cohort, problem.feasible
    n_m, n_e = len(cohort.mentors), len(cohort.mentees)
    out: list[Unmatched] = []

    lonely = np.array([j for j in range(n_e) if j not in mentor_of], dtype=np.int64)
    if len(lonely):
        eligible = feasible[:, lonely].sum(axis=0)
        none_idx = np.nonzero(eligible == 0)[0]
        counts = (
            cohort.first_violations(_all(n_m), lonely[none_idx], axis=0) if len(none_idx) else {}
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
                excluded = _reason_counts(counts, position[k])
                reason = f"no eligible mentor among {n_m}: {_describe(excluded)}"
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
            cohort.first_violations(spare[none_idx], _all(n_e), axis=1) if len(none_idx) else {}
        )
        position = {int(k): pos for pos, k in enumerate(none_idx.tolist())}
        for k, i in enumerate(spare.tolist()):
            cap, used = int(cohort.capacity[i]), int(load[i])
            head = f"{used} of {cap} places used"
            mentor = cohort.mentor_ids[i]
            if n_e == 0:
                reason, excluded = f"{head}: no mentees in the cohort", {}
            elif eligible[k] == 0:
                excluded = _reason_counts(counts, position[k])
                reason = f"{head}: no eligible mentee among {n_e}: {_describe(excluded)}"
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
        unmatched=tuple(_unmatched(problem, mentor_of)),
        total_score=total_units / _UNIT,
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
    cohort = _Cohort(
        program,
        mentors,
        mentees,
        today=today,
        exclusions=exclusions,
        capacity_override=capacity,
    )
    rows, cols = _all(len(cohort.mentors)), _all(len(cohort.mentees))
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
        excluded = _reason_counts(counts, 0)
        n = flat.size
        return RematchResult(
            employee_id=who,
            partner=None,
            reason=f"no eligible {counterpart} among {n}: {_describe(excluded)}",
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
