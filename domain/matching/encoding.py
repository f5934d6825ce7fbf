"""Inputs and encoding: mentors and mentees (sorted by id) as arrays, with vectorised
constraint checks, scores in fixed point and per-pair explanations over any block of
(mentor rows, mentee columns)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from domain.matching.results import (
    SCORE_DECIMALS,
    SCORE_UNIT,
    ComponentScore,
    Constraint,
    Explanation,
)
from domain.people import MatchProfile, Person, Role, to_profiles
from domain.program import ProgramSpec, QuestionKind

BoolMatrix = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


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


class EncodedCohort:
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
        for part, block in row_blocks(rows, len(cols)):
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
        for part, block in row_blocks(rows, len(cols)):
            total, _ = self._components(block, cols, dense=True)
            total *= SCORE_UNIT
            np.rint(total, out=out[part])
        return out

    def explain(self, mi: IntArray, ej: IntArray) -> list[tuple[float, Explanation]]:
        """(score, explanation) for aligned pairs (mi[k], ej[k])."""
        if len(mi) == 0:
            return []
        total, parts = self._components(mi, ej, dense=False, keep_parts=True)
        units = np.rint(total * SCORE_UNIT)
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
            out.append((float(units[k]) / SCORE_UNIT, explanation))
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


def row_blocks(rows: IntArray, n_cols: int) -> Iterator[tuple[slice, IntArray]]:
    step = max(1, _BLOCK_PAIRS // max(1, n_cols))
    for start in range(0, len(rows), step):
        part = slice(start, start + step)
        yield part, rows[part]


def all_indices(n: int) -> IntArray:
    return np.arange(n, dtype=np.int64)


def split_roles(
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
