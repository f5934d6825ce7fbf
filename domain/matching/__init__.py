"""Questionnaire matching: which mentor may guide which mentee, how well they fit, and the
globally best set of pairs.

Pure and deterministic: no clock (``today`` is an argument), no I/O, people sorted by id before
anything else, scores in fixed point (micro-points) so equal scores are exactly equal.
See docs/matching.md for the formula, the optimality argument and the tie-breaking rules.

Everything runs on ``MatchProfile`` (no names, no e-mails) because matching runs inside a
Temporal activity and its inputs and outputs are recorded.

``results``: what a run decides and explains; ``encoding``: profiles as arrays, constraints
and scores; ``candidates``: the feasible pairs; ``explanations``: why someone is unmatched;
``solver``: ``match`` and ``rematch``.
"""

from domain.matching.candidates import CandidateSet, candidates
from domain.matching.results import (
    ALGORITHM_VERSION,
    CONSTRAINT_LABELS,
    REMATCH_ALGORITHM_VERSION,
    SCORE_DECIMALS,
    Candidate,
    ComponentScore,
    Constraint,
    Explanation,
    MatchedPair,
    MatchSummary,
    RematchResult,
    Unmatched,
)
from domain.matching.solver import (
    AssignmentProblem,
    MatchResult,
    assignment_problem,
    match,
    rematch,
)

__all__ = [
    "ALGORITHM_VERSION",
    "CONSTRAINT_LABELS",
    "REMATCH_ALGORITHM_VERSION",
    "SCORE_DECIMALS",
    "AssignmentProblem",
    "Candidate",
    "CandidateSet",
    "ComponentScore",
    "Constraint",
    "Explanation",
    "MatchResult",
    "MatchSummary",
    "MatchedPair",
    "RematchResult",
    "Unmatched",
    "assignment_problem",
    "candidates",
    "match",
    "rematch",
]
