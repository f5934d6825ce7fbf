"""Commands to a cohort, in the imperative: what operations ask for, and what the cohort's
workflow asks its own state machine once an activity or a pairing reported back.

``domain.cohort.decide`` turns each into events or refuses it with a ``domain.errors``
class. The two that arrive as workflow updates (``ApproveProposal``,
``RecordParticipantLeft``) keep the JSON shape the updates always had, so histories of
running cohorts still decode. Their ``exclude=True`` fields are facts from outside the
cohort's stream (the matcher's scores, the roster) that the workflow adds before deciding;
callers never send them.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from domain import cohort_events as ce
from domain.events import ExitInitiator, ExitReason
from domain.program import ProgramSpec
from domain.roster import RosterDiff


class PairKey(NamedTuple):
    """A (mentor, mentee) pair by employee ids; travels as a two-item JSON list."""

    mentor: str
    mentee: str


class LaunchSpec(BaseModel):
    """One pairing to launch: its id, its people and the match run that proposed it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pairing_id: str
    mentor_id: str
    mentee_id: str
    score: float
    run_id: str
    rematch_of: str | None = None


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StartCohort(Command):
    cohort_id: str = Field(min_length=1)
    program: ProgramSpec
    people_digest: str
    mentors: int = Field(ge=0)
    mentees: int = Field(ge=0)


class ApproveProposal(Command):
    """Operations accept the proposed pairs, after dropping or swapping some."""

    approved_by: str = Field(min_length=1)
    drop: tuple[PairKey, ...] = ()
    # Swap the mentors of two proposed pairs: ((mentor_a, mentee_a), (mentor_b, mentee_b)).
    swap: tuple[tuple[PairKey, PairKey], ...] = ()
    # The matcher's scores for the pairs the swaps create; only pairs that pass every hard
    # constraint are scored. Filled in by the workflow after asking the matcher, never sent
    # by a caller (excluded from the wire shape). ``None``: not asked yet.
    swap_scores: tuple[ce.ProposedPair, ...] | None = Field(default=None, exclude=True)


class RecordPairingsLaunched(Command):
    """The launch activity started these pairings' workflows."""

    specs: tuple[LaunchSpec, ...] = Field(min_length=1)
    starts_at: datetime


class RecordPairingEnded(Command):
    """A pairing's workflow reported its end (completed, or exited early)."""

    pairing_id: str
    outcome: ce.PairingEndOutcome
    initiated_by: ExitInitiator | None = None
    reason: ExitReason | None = None
    phase_at_exit: str | None = None
    leaving_employee_id: str | None = None
    ended_at: datetime
    meetings_held: int
    meetings_missed: int


class RecordRematchNotPossible(Command):
    """The matcher found nobody for a waiting person."""

    employee_id: str = Field(min_length=1)
    reason: str = Field(min_length=1)


class RecordParticipantLeft(Command):
    """HR says a participant left the company."""

    employee_id: str = Field(min_length=1)
    left_on: date
    recorded_by: str = Field(min_length=1)
    # Everyone on the cohort's roster, added by the workflow (like ``swap_scores``).
    roster: frozenset[str] | None = Field(default=None, exclude=True)


class SyncRoster(Command):
    """Apply a fresh HR export's difference to the roster (``sebaya cohort sync --apply``).

    ``base_digest`` is the roster digest the diff was computed against and ``digest_after``
    the digest once it is applied: a sync computed against a roster that has since changed is
    refused rather than applied twice or on top of something it did not see."""

    source: str = Field(min_length=1)
    source_digest: str = Field(min_length=1)
    synced_by: str = Field(min_length=1)
    # The leavers' last day as recorded; default: the day of the sync in the program's zone.
    synced_on: date | None = None
    base_digest: str = Field(min_length=1)
    digest_after: str = Field(min_length=1)
    diff: RosterDiff
    # Everyone on the cohort's roster, added by the workflow (like ``swap_scores``).
    roster: frozenset[str] | None = Field(default=None, exclude=True)


class RosterConflict(BaseModel):
    """A running pair a roster change made break a hard constraint (found by the matcher)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pairing_id: str
    mentor_id: str
    mentee_id: str
    changed_employee_id: str
    constraint: str
    reason: str


class RecordRosterConflicts(Command):
    conflicts: tuple[RosterConflict, ...]


class CloseRematchWindow(Command):
    """Whoever still waits once the rematch window has closed will not be rematched."""


class CompleteCohort(Command):
    """Record the cohort's completion once nothing is running, pending or waiting."""


CohortCommand = (
    StartCohort
    | ApproveProposal
    | RecordPairingsLaunched
    | RecordPairingEnded
    | RecordRematchNotPossible
    | RecordParticipantLeft
    | SyncRoster
    | RecordRosterConflicts
    | CloseRematchWindow
    | CompleteCohort
)
