"""Rows of ``cohort_view`` and ``participant_view`` and how events change them.

Pure and mutable on purpose: the projector keeps these rows in memory across batches and
changes them in place; if a batch fails it throws every cached row away and reloads from the
database, so an in-place change never outlives a rolled-back transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from domain import cohort_events as ce
from domain import events as e

# Cohort phases in the order they happen; a late event never moves a cohort backwards.
COHORT_PHASES = ("unknown", "matching", "running", "completed")

COHORT_COLUMNS: tuple[str, ...] = (
    "cohort_id", "program_name", "objective", "baseline", "starts_at", "ends_at",
    "rematch_until", "cool_off_days", "approval", "mentors_enrolled", "mentees_enrolled",
    "phase", "pairings_total", "pairings_by_phase", "launched", "rematches", "waiting",
    "rematch_not_possible", "left_company", "match_runs", "completed_at", "stream_version",
)
COHORT_JSON_COLUMNS = frozenset({"objective", "baseline", "pairings_by_phase", "waiting",
                                 "rematch_not_possible", "left_company", "match_runs"})

PARTICIPANT_COLUMNS: tuple[str, ...] = (
    "cohort_id", "employee_id", "role", "department", "pairing_ids", "current_pairing_id",
    "first_started_at", "last_ended_at", "waiting_since", "available_at",
    "rematch_not_possible", "left_on",
)


_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode


def _iso(moment: datetime) -> str:
    return moment.isoformat()


@dataclass(slots=True)
class CohortRow:
    """A ``cohort_view`` row in memory."""

    cohort_id: str
    program_name: str | None = None
    objective: dict[str, Any] | None = None
    baseline: dict[str, Any] | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    rematch_until: datetime | None = None
    cool_off_days: int | None = None
    approval: str | None = None
    mentors_enrolled: int | None = None
    mentees_enrolled: int | None = None
    phase: str = "unknown"
    pairings_total: int = 0
    pairings_by_phase: dict[str, int] = field(default_factory=dict)
    launched: int = 0
    rematches: int = 0
    waiting: dict[str, dict[str, Any]] = field(default_factory=dict)
    rematch_not_possible: dict[str, str] = field(default_factory=dict)
    left_company: dict[str, str] = field(default_factory=dict)
    match_runs: list[dict[str, Any]] = field(default_factory=list)
    completed_at: datetime | None = None
    stream_version: int = 0

    @classmethod
    def from_record(cls, record: Any) -> CohortRow:
        """From a ``cohort_view`` row read with jsonb columns cast to text."""
        values = {name: record[name] for name in COHORT_COLUMNS}
        for name in COHORT_JSON_COLUMNS:
            if values[name] is not None:
                values[name] = json.loads(values[name])
        return cls(**values)

    def values(self) -> tuple[Any, ...]:
        """In :data:`COHORT_COLUMNS` order, jsonb columns as JSON text."""
        return tuple(
            (_dumps(value) if value is not None else None) if name in COHORT_JSON_COLUMNS else value
            for name in COHORT_COLUMNS
            for value in (getattr(self, name),)
        )

    def advance_phase(self, phase: str) -> None:
        if COHORT_PHASES.index(phase) > COHORT_PHASES.index(self.phase):
            self.phase = phase

    def count_pairing(self, old_phase: str | None, new_phase: str) -> None:
        """A pairing of this cohort moved from ``old_phase`` (``None``: it is new)."""
        if old_phase == new_phase:
            return
        counts = self.pairings_by_phase
        if old_phase is None:
            self.pairings_total += 1
        else:
            left = counts.get(old_phase, 0) - 1
            if left > 0:
                counts[old_phase] = left
            else:
                counts.pop(old_phase, None)
        counts[new_phase] = counts.get(new_phase, 0) + 1


@dataclass(slots=True)
class ParticipantRow:
    """A ``participant_view`` row in memory."""

    cohort_id: str
    employee_id: str
    role: str
    department: str | None = None
    pairing_ids: list[str] = field(default_factory=list)
    current_pairing_id: str | None = None
    first_started_at: datetime | None = None
    last_ended_at: datetime | None = None
    waiting_since: datetime | None = None
    available_at: datetime | None = None
    rematch_not_possible: str | None = None
    left_on: date | None = None

    @classmethod
    def from_record(cls, record: Any) -> ParticipantRow:
        values = {name: record[name] for name in PARTICIPANT_COLUMNS}
        values["pairing_ids"] = json.loads(values["pairing_ids"])
        return cls(**values)

    def values(self) -> tuple[Any, ...]:
        return (
            self.cohort_id, self.employee_id, self.role, self.department,
            _dumps(self.pairing_ids), self.current_pairing_id, self.first_started_at,
            self.last_ended_at, self.waiting_since, self.available_at,
            self.rematch_not_possible, self.left_on,
        )

    def joined(self, pairing_id: str, started_at: datetime) -> None:
        """Part of ``pairing_id`` from ``started_at`` (idempotent: the pairing's own stream and
        the cohort's ``PairingLaunched`` both say so)."""
        if pairing_id not in self.pairing_ids:
            self.pairing_ids.append(pairing_id)
            self.current_pairing_id = pairing_id
            self.waiting_since = None
            self.available_at = None
        if self.first_started_at is None or started_at < self.first_started_at:
            self.first_started_at = started_at

    def ended(self, pairing_id: str, at: datetime) -> None:
        if self.current_pairing_id == pairing_id:
            self.current_pairing_id = None
        if self.last_ended_at is None or at > self.last_ended_at:
            self.last_ended_at = at


ParticipantKey = tuple[str, str]


def participant_keys(event: Any, cohort_id: str) -> list[tuple[ParticipantKey, str]]:
    """The participants (``(cohort, employee)``, role) a cohort event is about."""
    match event:
        case ce.PairingLaunched():
            return [((cohort_id, event.mentor_id), "mentor"),
                    ((cohort_id, event.mentee_id), "mentee")]
        case ce.ParticipantWaiting():
            return [((cohort_id, event.employee_id), event.role)]
        case ce.RematchNotPossible() | ce.ParticipantLeft():
            return [((cohort_id, event.employee_id), "")]
    return []


def apply_cohort_event(
    cohort: CohortRow,
    event: Any,
    occurred_at: datetime,
    participant: Any,
) -> None:
    """Fold one cohort-stream event into ``cohort``; ``participant(key, role)`` returns the
    (loaded or new) participant row for ``(cohort_id, employee_id)``."""
    cid = cohort.cohort_id
    match event:
        case ce.CohortStarted():
            cohort.program_name = event.program_name
            cohort.objective = dict(event.objective)
            cohort.baseline = dict(event.baseline)
            cohort.starts_at = event.starts_at
            cohort.ends_at = event.ends_at
            cohort.rematch_until = event.rematch_until
            cohort.cool_off_days = event.cool_off_days
            cohort.approval = event.approval
            cohort.mentors_enrolled = event.mentors
            cohort.mentees_enrolled = event.mentees
            cohort.advance_phase("matching")
        case ce.MatchRunRecorded():
            cohort.match_runs.append({
                "run_id": event.run_id,
                "kind": event.kind,
                "input_digest": event.input_digest,
                "algorithm_version": event.algorithm_version,
                "total_score": event.total_score,
                "pair_count": event.pair_count,
                "unmatched_count": event.unmatched_count,
                "recorded_at": _iso(occurred_at),
                "adjustments": 0,
                "approved_by": None,
                "approved_at": None,
            })
        case ce.ProposalAdjusted():
            # Adjustments apply to the proposal on the table: the latest run.
            if cohort.match_runs:
                cohort.match_runs[-1]["adjustments"] += 1
        case ce.ProposalApproved():
            for run in cohort.match_runs:
                if run["run_id"] == event.run_id:
                    run["approved_by"] = event.approved_by
                    run["approved_at"] = _iso(occurred_at)
            cohort.advance_phase("running")
        case ce.PairingLaunched():
            cohort.launched += 1
            if event.rematch_of:
                cohort.rematches += 1
            for employee, role in ((event.mentor_id, "mentor"), (event.mentee_id, "mentee")):
                cohort.waiting.pop(employee, None)
                participant((cid, employee), role).joined(event.pairing_id, event.starts_at)
            cohort.advance_phase("running")
        case ce.ParticipantWaiting():
            cohort.waiting[event.employee_id] = {
                "role": event.role,
                "after_pairing": event.after_pairing,
                "available_at": _iso(event.available_at),
                "since": _iso(occurred_at),
            }
            row = participant((cid, event.employee_id), event.role)
            row.waiting_since = occurred_at
            row.available_at = event.available_at
        case ce.RematchNotPossible():
            cohort.waiting.pop(event.employee_id, None)
            cohort.rematch_not_possible[event.employee_id] = event.reason
            row = participant((cid, event.employee_id), "")
            row.rematch_not_possible = event.reason
            row.waiting_since = None
        case ce.ParticipantLeft():
            cohort.waiting.pop(event.employee_id, None)
            cohort.left_company[event.employee_id] = event.left_on.isoformat()
            row = participant((cid, event.employee_id), "")
            row.left_on = event.left_on
            row.waiting_since = None
        case ce.CohortCompleted():
            cohort.completed_at = event.completed_at
            cohort.advance_phase("completed")
        case ce.RosterSynced() | ce.RosterConflictFlagged():
            # Roster syncs (docs/roster-sync.md): the roster lives in cohort_members and the
            # departures arrive as ParticipantLeft; nothing else to project yet.
            pass
        case ce.MatchRunContinued() | ce.PairingEnded():
            # The pairs of a run live in the stream (audit history reads them); how a pairing
            # ended is projected from the pairing's own stream.
            pass
        case _:
            raise TypeError(f"cohort projection does not know {type(event).__name__}")


def closes_pairing(event: Any) -> datetime | None:
    """When a pairing-stream event ends the pairing, the instant it ended."""
    if isinstance(event, e.PairingCompleted):
        return event.completed_at
    if isinstance(event, e.PairingExited):
        return event.exited_at
    return None
