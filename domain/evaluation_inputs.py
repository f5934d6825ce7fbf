"""The facts a cohort evaluation is computed from, as the read models provide them.

Kept apart from the maths (``domain.evaluation``) so the projections can produce these
without knowing how the report is computed, and tests can build them by hand.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field


class SideFinal(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    goal_attainment: dict[str, int] = Field(default_factory=dict)
    relationship_rating: int
    program_rating: int
    learned: str
    would_recommend: bool


class PairingFacts(BaseModel):
    """One pairing as the cohort report sees it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pairing_id: str
    mentor_id: str
    mentee_id: str
    mentor_department: str | None = None
    mentee_department: str | None = None
    phase: str  # goal_setting | active | final_evaluation | completed | exited
    meetings_held: int = 0
    meetings_missed: int = 0
    goals: dict[str, list[str]] = Field(default_factory=dict)  # side -> goal ids
    exit_reason: str | None = None
    exit_phase: str | None = None
    exit_initiated_by: str | None = None
    rematch_of: str | None = None
    midpoint_satisfaction: dict[str, int] = Field(default_factory=dict)  # side -> 1..5
    final: dict[str, SideFinal] = Field(default_factory=dict)  # side -> evaluation


class MenteeFacts(BaseModel):
    """A mentee's employment dates, for retention against the program's baseline."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    employee_id: str
    hire_date: date
    # Last day of employment; None while still employed.
    left_on: date | None = None
    # First day the mentee was in a pairing. None means the program's start date. A retention
    # window that had already closed by then cannot show the program's effect, so the report
    # leaves such mentees out of that window's population (docs/evaluation.md, "Retention").
    paired_on: date | None = None
