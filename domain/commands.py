"""Commands to a pairing, in the imperative. Each carries the actor who asks.

A command is a request that ``decide`` may refuse; an event is a fact. Participants are
named by ``employee_id`` only: names and e-mails never enter workflows or events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from domain.events import ExitReason, Goal
from domain.rules import GroundRules

# Everything here may come from a participant's app or an ops tool: free text and ids are
# bounded where they enter, before they reach a workflow's history (Goal, in domain.events,
# bounds its own title and measure).
MAX_ID_CHARS = 64  # an employee id (domain.people.EMPLOYEE_ID_PATTERN)
MAX_TOPIC_CHARS = 200
MAX_TOPICS = 20
MAX_GOAL_ID_CHARS = 40  # as Goal.goal_id
MAX_GOAL_ENTRIES = 20  # ten goals a side
MAX_LEARNED_CHARS = 2000

EmployeeRef = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]
Topic = Annotated[str, Field(min_length=1, max_length=MAX_TOPIC_CHARS)]
GoalRef = Annotated[str, Field(min_length=1, max_length=MAX_GOAL_ID_CHARS)]
GoalPercentages = Annotated[dict[GoalRef, int], Field(max_length=MAX_GOAL_ENTRIES)]


class Actor(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["employee", "ops", "system"]
    id: str = Field(min_length=1, max_length=120)

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"

    @classmethod
    def employee(cls, employee_id: str) -> Actor:
        return cls(kind="employee", id=employee_id)

    @classmethod
    def ops(cls, name: str) -> Actor:
        return cls(kind="ops", id=name)

    @classmethod
    def system(cls) -> Actor:
        return cls(kind="system", id="sebaya")


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    actor: Actor


class StartPairing(Command):
    pairing_id: str = Field(min_length=1, max_length=200)
    cohort_id: str = Field(min_length=1, max_length=120)
    mentor_id: EmployeeRef
    mentee_id: EmployeeRef
    ground_rules: GroundRules
    match_score: float = 0.0
    explanation: dict[str, Any] = Field(default_factory=dict)
    rematch_of: str | None = Field(default=None, max_length=200)


class SetGoals(Command):
    goals: tuple[Goal, ...] = Field(min_length=1, max_length=10)


class LogMeeting(Command):
    meeting_no: int = Field(ge=1)
    held: bool
    held_at: datetime | None = None
    minutes: int | None = Field(default=None, ge=1, le=600)
    topics: tuple[Topic, ...] = Field(default=(), max_length=MAX_TOPICS)
    goal_progress: GoalPercentages = Field(default_factory=dict)


class RescheduleMeeting(Command):
    meeting_no: int = Field(ge=1)
    new_time: datetime


class SubmitMidpointReview(Command):
    satisfaction: int = Field(ge=1, le=5)
    goal_progress: GoalPercentages = Field(default_factory=dict)
    wants_to_continue: bool


class RequestExit(Command):
    reason: ExitReason
    # Set by operations when one person leaves (HR event); names whose pairing ends.
    leaving_employee_id: EmployeeRef | None = None


class OfferExit(Command):
    """Operations (or the cohort, after a roster change) offer both sides a no-fault exit."""

    because: Literal["roster_change"] = "roster_change"


class SubmitFinalEvaluation(Command):
    goal_attainment: GoalPercentages = Field(default_factory=dict)
    relationship_rating: int = Field(ge=1, le=5)
    program_rating: int = Field(ge=1, le=5)
    learned: str = Field(min_length=1, max_length=MAX_LEARNED_CHARS)
    would_recommend: bool


class AdvanceClock(Command):
    """Emit whatever is due by ``now``: reminders, missed meetings, windows opening/closing."""


PairingCommand = (
    StartPairing
    | SetGoals
    | LogMeeting
    | RescheduleMeeting
    | SubmitMidpointReview
    | RequestExit
    | OfferExit
    | SubmitFinalEvaluation
    | AdvanceClock
)
