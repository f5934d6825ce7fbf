"""Domain events of a pairing, in the past tense.

Each is a strict payload (unknown fields refused) registered in the event store by
``event_type`` and ``schema_version``. Who caused an event (the actor), when it happened in
domain time and which workflow wrote it travel in the store's metadata envelope, not here.
The catalogue with every field and its cause is ``docs/events.md``.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from domain.rules import GroundRules


class Side(StrEnum):
    MENTOR = "mentor"
    MENTEE = "mentee"

    @property
    def other(self) -> Side:
        return Side.MENTEE if self is Side.MENTOR else Side.MENTOR


class ExitInitiator(StrEnum):
    MENTOR = "mentor"
    MENTEE = "mentee"
    OPS = "ops"
    SYSTEM = "system"


class ExitReason(StrEnum):
    """Why a pair ended early. Private to operations: the other side is only told neutrally."""

    NOT_A_FIT = "not_a_fit"
    SCHEDULE_CONFLICT = "schedule_conflict"
    WORKLOAD = "workload"
    ROLE_CHANGE = "role_change"
    LEFT_COMPANY = "left_company"
    INACTIVITY = "inactivity"
    PERSONAL = "personal"
    OTHER = "other"


class ReminderKind(StrEnum):
    GOAL_DEADLINE = "goal_deadline"
    GOAL_OVERDUE = "goal_overdue"
    MEETING = "meeting"
    MIDPOINT_REVIEW = "midpoint_review"
    FINAL_EVALUATION = "final_evaluation"


class Goal(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    goal_id: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
    title: str = Field(min_length=3, max_length=200)
    success_measure: str = Field(min_length=3, max_length=300)
    target_date: date | None = None


class DomainEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1


class PairingMatched(DomainEvent):
    event_type: ClassVar[str] = "PairingMatched"

    pairing_id: str
    cohort_id: str
    mentor_id: str
    mentee_id: str
    started_at: datetime
    ground_rules: GroundRules
    match_score: float
    explanation: dict[str, Any] = Field(default_factory=dict)
    rematch_of: str | None = None


class GoalsSet(DomainEvent):
    """One side set (or revised) its own goals; a revision replaces that side's list."""

    event_type: ClassVar[str] = "GoalsSet"

    side: Side
    goals: tuple[Goal, ...]
    revision: int = Field(ge=1)


class MeetingScheduled(DomainEvent):
    event_type: ClassVar[str] = "MeetingScheduled"

    meeting_no: int = Field(ge=1)
    scheduled_at: datetime
    slot_index: int = Field(ge=1)


class MeetingRescheduled(DomainEvent):
    event_type: ClassVar[str] = "MeetingRescheduled"

    meeting_no: int = Field(ge=1)
    previous_at: datetime
    scheduled_at: datetime
    requested_by: Side | Literal["ops"]


class MeetingHeld(DomainEvent):
    event_type: ClassVar[str] = "MeetingHeld"

    meeting_no: int = Field(ge=1)
    held_at: datetime
    minutes: int = Field(ge=1, le=600)
    topics: tuple[str, ...]
    goal_progress: dict[str, int] = Field(default_factory=dict)
    logged_by: Side


class MeetingMissed(DomainEvent):
    event_type: ClassVar[str] = "MeetingMissed"

    meeting_no: int = Field(ge=1)
    scheduled_at: datetime
    reported_by: Side | Literal["system"]
    consecutive_missed: int = Field(ge=1)


class ReminderSent(DomainEvent):
    """A reminder was due and handed to the notification channel (delivered idempotently)."""

    event_type: ClassVar[str] = "ReminderSent"

    kind: ReminderKind
    recipients: tuple[Side, ...]
    due_at: datetime
    reference: str
    sequence: int = Field(ge=1)


class PairingNudged(DomainEvent):
    event_type: ClassVar[str] = "PairingNudged"

    consecutive_missed: int = Field(ge=1)


class PairingEscalated(DomainEvent):
    event_type: ClassVar[str] = "PairingEscalated"

    consecutive_missed: int = Field(ge=1)
    escalated_to: Literal["program_coordinator"] = "program_coordinator"


class MidpointReviewOpened(DomainEvent):
    event_type: ClassVar[str] = "MidpointReviewOpened"

    closes_at: datetime


class MidpointReviewSubmitted(DomainEvent):
    event_type: ClassVar[str] = "MidpointReviewSubmitted"

    side: Side
    satisfaction: int = Field(ge=1, le=5)
    goal_progress: dict[str, int] = Field(default_factory=dict)
    wants_to_continue: bool


class MidpointReviewClosed(DomainEvent):
    event_type: ClassVar[str] = "MidpointReviewClosed"

    missing: tuple[Side, ...]


class ExitOffered(DomainEvent):
    """A no-fault exit is offered: a side said at the mid-point it does not want to continue,
    or a roster change made the pair break a hard matching constraint (then both sides)."""

    event_type: ClassVar[str] = "ExitOffered"

    offered_to: tuple[Side, ...]
    # Widened with "roster_change": old payloads still validate, so no new schema version.
    because: Literal["midpoint_review", "roster_change"] = "midpoint_review"


class PairingExited(DomainEvent):
    """No-fault exit. ``reason`` is for operations only; participants see a neutral message."""

    event_type: ClassVar[str] = "PairingExited"

    initiated_by: ExitInitiator
    reason: ExitReason
    phase_at_exit: str
    exited_at: datetime
    leaving_employee_id: str | None = None


class FinalEvaluationOpened(DomainEvent):
    event_type: ClassVar[str] = "FinalEvaluationOpened"

    closes_at: datetime


class FinalEvaluationSubmitted(DomainEvent):
    event_type: ClassVar[str] = "FinalEvaluationSubmitted"

    side: Side
    goal_attainment: dict[str, int] = Field(default_factory=dict)
    relationship_rating: int = Field(ge=1, le=5)
    program_rating: int = Field(ge=1, le=5)
    learned: str = Field(min_length=1, max_length=2000)
    would_recommend: bool


class PairingCompleted(DomainEvent):
    event_type: ClassVar[str] = "PairingCompleted"

    completed_at: datetime
    evaluations_received: tuple[Side, ...]
    meetings_held: int
    meetings_missed: int


PAIRING_EVENTS: tuple[type[DomainEvent], ...] = (
    PairingMatched,
    GoalsSet,
    MeetingScheduled,
    MeetingRescheduled,
    MeetingHeld,
    MeetingMissed,
    ReminderSent,
    PairingNudged,
    PairingEscalated,
    MidpointReviewOpened,
    MidpointReviewSubmitted,
    MidpointReviewClosed,
    ExitOffered,
    PairingExited,
    FinalEvaluationOpened,
    FinalEvaluationSubmitted,
    PairingCompleted,
)

EVENTS_BY_TYPE: dict[str, type[DomainEvent]] = {e.event_type: e for e in PAIRING_EVENTS}
