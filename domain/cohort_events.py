"""Domain events of a program cohort (stream ``cohort-<id>``), in the past tense.

The cohort's stream says who was matched with whom and why (the match runs), when each
pairing was launched and how it ended, who waited for a rematch, and who left the company.
People appear by ``employee_id`` only.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from domain.events import DomainEvent, ExitInitiator, ExitReason
from domain.people import Role
from domain.program import Approval
from domain.roster import MemberChange

# The enums below are string enums: stored events keep the plain strings they always had.


class MatchRunKind(StrEnum):
    INITIAL = "initial"
    REMATCH = "rematch"
    # Mid-program: people who joined with a roster sync (and mentees never paired yet) matched
    # against the mentors' remaining places; existing pairs are never disturbed.
    JOINERS = "joiners"


class AdjustmentAction(StrEnum):
    DROP = "drop"
    SWAP = "swap"


class PairingEndOutcome(StrEnum):
    COMPLETED = "completed"
    EXITED = "exited"


class ProposedPair(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    mentor: str
    mentee: str
    score: float


class UnmatchedPerson(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    employee_id: str
    reason: str


class CohortStarted(DomainEvent):
    event_type: ClassVar[str] = "CohortStarted"

    cohort_id: str
    program_name: str
    objective: dict[str, Any]
    baseline: dict[str, Any]
    starts_at: datetime
    ends_at: datetime | None
    rematch_until: datetime | None
    cool_off_days: int
    approval: Approval
    people_digest: str
    mentors: int
    mentees: int


class MatchRunRecorded(DomainEvent):
    """One run of the matcher: enough to re-run it and compare (digest, policy, version).

    Large results are split: this event carries the first chunk of pairs, and
    ``MatchRunContinued`` events carry the rest, so no single event grows without bound.
    """

    event_type: ClassVar[str] = "MatchRunRecorded"

    run_id: str
    kind: MatchRunKind
    input_digest: str
    algorithm_version: str
    policy: dict[str, Any]
    total_score: float
    pair_count: int
    unmatched_count: int
    pairs: tuple[ProposedPair, ...] = ()
    unmatched: tuple[UnmatchedPerson, ...] = ()


class MatchRunContinued(DomainEvent):
    event_type: ClassVar[str] = "MatchRunContinued"

    run_id: str
    chunk: int = Field(ge=1)
    pairs: tuple[ProposedPair, ...] = ()
    unmatched: tuple[UnmatchedPerson, ...] = ()


class ProposalAdjusted(DomainEvent):
    """Operations changed a proposed match before approving (manual approval)."""

    event_type: ClassVar[str] = "ProposalAdjusted"

    action: AdjustmentAction
    pairs_before: tuple[ProposedPair, ...]
    pairs_after: tuple[ProposedPair, ...]
    adjusted_by: str


class ProposalApproved(DomainEvent):
    event_type: ClassVar[str] = "ProposalApproved"

    run_id: str
    approved_by: str
    pairs: int


class PairingLaunched(DomainEvent):
    event_type: ClassVar[str] = "PairingLaunched"

    pairing_id: str
    mentor_id: str
    mentee_id: str
    score: float
    starts_at: datetime
    rematch_of: str | None = None


class PairingEnded(DomainEvent):
    event_type: ClassVar[str] = "PairingEnded"

    pairing_id: str
    outcome: PairingEndOutcome
    initiated_by: ExitInitiator | None = None
    reason: ExitReason | None = None
    phase_at_exit: str | None = None
    leaving_employee_id: str | None = None
    ended_at: datetime
    meetings_held: int
    meetings_missed: int


class ParticipantWaiting(DomainEvent):
    """A person whose pairing ended early waits in the pool for a rematch."""

    event_type: ClassVar[str] = "ParticipantWaiting"

    employee_id: str
    role: Role
    after_pairing: str
    available_at: datetime


class RematchNotPossible(DomainEvent):
    event_type: ClassVar[str] = "RematchNotPossible"

    employee_id: str
    reason: str


class ParticipantLeft(DomainEvent):
    """HR says a participant left the company; counted in retention."""

    event_type: ClassVar[str] = "ParticipantLeft"

    employee_id: str
    left_on: date
    recorded_by: str


class RosterSynced(DomainEvent):
    """A fresh HR export was applied to the roster: who joined (their full matching profile,
    canonical JSON), who left, and every changed field with its value before and after, so the
    roster as of any moment is the current one rolled back (``domain.roster.roll_back``).
    Leavers are also recorded one by one as ``ParticipantLeft`` right after this event."""

    event_type: ClassVar[str] = "RosterSynced"

    source: str
    source_digest: str
    synced_by: str
    synced_on: date
    joiners: tuple[dict[str, Any], ...] = ()
    leavers: tuple[str, ...] = ()
    changed: tuple[MemberChange, ...] = ()
    roster_digest_before: str
    roster_digest_after: str


class RosterConflictFlagged(DomainEvent):
    """A roster change makes a running pair break a hard matching constraint (for example the
    mentor entered the mentee's reporting chain). Nothing ends: the coordinators are told and
    the pair is offered a no-fault exit (and, after it, a rematch)."""

    event_type: ClassVar[str] = "RosterConflictFlagged"

    pairing_id: str
    mentor_id: str
    mentee_id: str
    changed_employee_id: str
    constraint: str
    reason: str


class CohortCompleted(DomainEvent):
    event_type: ClassVar[str] = "CohortCompleted"

    completed_at: datetime
    pairings: int
    completed: int
    exited: int


COHORT_EVENTS: tuple[type[DomainEvent], ...] = (
    CohortStarted,
    MatchRunRecorded,
    MatchRunContinued,
    ProposalAdjusted,
    ProposalApproved,
    PairingLaunched,
    PairingEnded,
    ParticipantWaiting,
    RematchNotPossible,
    ParticipantLeft,
    CohortCompleted,
    RosterSynced,
    RosterConflictFlagged,
)
