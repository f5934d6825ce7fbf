"""Every feasible (mentor, mentee) pair with its score; explanations on demand."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import date
from functools import cached_property
from typing import overload

import numpy as np

from domain.matching.encoding import BoolMatrix, EncodedCohort, FloatArray, IntArray, all_indices
from domain.matching.results import SCORE_UNIT, Candidate
from domain.people import MatchProfile
from domain.program import ProgramSpec


class CandidateSet(Sequence[Candidate]):
    """Every feasible (mentor, mentee) pair with its score, ordered by (mentor id, mentee id).

    Backed by the dense matrices, so building it costs nothing; explanations are computed
    when an item is read (a 5,000 x 2,500 cohort has millions of candidates).
    """

    def __init__(self, cohort: EncodedCohort, feasible: BoolMatrix, units: FloatArray) -> None:
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
            (m[i], e[j], u / SCORE_UNIT)
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
    cohort = EncodedCohort(
        program,
        mentors,
        mentees,
        today=today,
        exclusions=exclusions,
        capacity_override=capacity_override,
    )
    rows, cols = all_indices(len(cohort.mentors)), all_indices(len(cohort.mentees))
    return CandidateSet(cohort, cohort.feasible(rows, cols), cohort.score_units(rows, cols))
