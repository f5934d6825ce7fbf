"""What matching decides and explains: the result models, the hard constraints and the
algorithm version a match run records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from domain.people import Role
from domain.program import MatchObjective

ALGORITHM_VERSION = "sebaya-match/1"
# What a rematch run records (``rematch`` picks one partner, no assignment problem).
REMATCH_ALGORITHM_VERSION = "sebaya-rematch/1"
SCORE_DECIMALS = 6
# Scores are computed in float64 and rounded to integer micro-points: the solver then sees
# exact integers (sums stay below 2**53), and two pairs whose scores print the same are tied.
SCORE_UNIT = 10**SCORE_DECIMALS


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
