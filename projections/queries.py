"""Questions the read models answer, as typed results: what ``sebaya cohort status`` prints,
the pairing rows ``sebaya cohort report`` takes its facts from (the report's figures are
computed by ``domain.evaluation``, see ``sebaya/report_service.py``), and what a dashboard
would show.

Everything here reads the views only (``pairing_view``, ``cohort_view``, ``participant_view``),
so answers are as fresh as the projector's checkpoint; :func:`cohort_status` says how fresh.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict

from projections.pairing import JSON_COLUMNS, PAIRING_COLUMNS
from projections.projector import DEFAULT_NAME

OPEN_PHASES = ("goal_setting", "active", "final_evaluation")


class PairingRow(BaseModel):
    """One ``pairing_view`` row."""

    model_config = ConfigDict(frozen=True)

    pairing_id: str
    cohort_id: str
    mentor_id: str
    mentee_id: str
    phase: str
    started_at: datetime | None
    ended_at: datetime | None
    goal_deadline_at: datetime | None
    midpoint_opens_at: datetime | None
    program_ends_at: datetime | None
    goals_set_mentor: bool
    goals_set_mentee: bool
    goals: dict[str, list[dict[str, Any]]]
    goal_progress: dict[str, int]
    meetings_held: int
    meetings_missed: int
    consecutive_missed: int
    minutes_met: int
    last_meeting_at: datetime | None
    next_meeting_no: int | None
    next_meeting_at: datetime | None
    nudged: bool
    escalated: bool
    escalations: int
    goals_overdue: bool
    midpoint: dict[str, dict[str, Any]]
    midpoint_closed: bool
    final: dict[str, dict[str, Any]]
    exit_reason: str | None
    exit_initiated_by: str | None
    exit_phase: str | None
    leaving_employee_id: str | None
    rematch_of: str | None
    match_score: float | None
    cross_functional: bool | None
    topics_covered: dict[str, int]
    stream_version: int
    last_event_at: datetime
    updated_at: datetime

    @property
    def is_open(self) -> bool:
        return self.phase in OPEN_PHASES


class AtRisk(BaseModel):
    """An open pairing that needs a coordinator's attention, and why."""

    model_config = ConfigDict(frozen=True)

    pairing_id: str
    mentor_id: str
    mentee_id: str
    phase: str
    reasons: list[str]
    consecutive_missed: int
    meetings_missed: int
    escalations: int
    last_meeting_at: datetime | None


class WaitingPerson(BaseModel):
    model_config = ConfigDict(frozen=True)

    employee_id: str
    role: str
    after_pairing: str | None
    available_at: datetime | None
    since: datetime | None


class DueItem(BaseModel):
    """Something a pairing's calendar has coming up."""

    model_config = ConfigDict(frozen=True)

    pairing_id: str
    what: str  # meeting | goal_deadline | midpoint_review | program_end
    due_at: datetime


class CohortStatus(BaseModel):
    """``sebaya cohort status``: where a cohort stands now."""

    model_config = ConfigDict(frozen=True)

    cohort_id: str
    program_name: str | None
    phase: str
    starts_at: datetime | None
    ends_at: datetime | None
    rematch_until: datetime | None
    pairings_total: int
    by_phase: dict[str, int]
    launched: int
    rematches: int
    at_risk: list[AtRisk]
    waiting: list[WaitingPerson]
    left_company: dict[str, date]
    next_due: list[DueItem]
    as_of: datetime
    projected_until: datetime | None
    """When the projector last committed: the answers include every event recorded before."""


def _select(columns: Iterable[str]) -> str:
    return ", ".join(f"{c}::text AS {c}" if c in JSON_COLUMNS else c for c in columns)


_PAIRING_SELECT = f"SELECT {_select((*PAIRING_COLUMNS, 'updated_at'))} FROM pairing_view"


def _row(record: Mapping[str, Any]) -> PairingRow:
    values = dict(record)
    for column in JSON_COLUMNS:
        values[column] = json.loads(values[column])
    return PairingRow.model_validate(values)


async def pairing_row(pool: asyncpg.Pool, pairing_id: str) -> PairingRow | None:
    """The ``pairing_view`` row of one pairing, or ``None`` if it has not been projected."""
    record = await pool.fetchrow(f"{_PAIRING_SELECT} WHERE pairing_id = $1", pairing_id)
    return _row(record) if record is not None else None


async def pairings_of_cohort(pool: asyncpg.Pool, cohort_id: str) -> list[PairingRow]:
    """Every projected pairing of a cohort, oldest first."""
    records = await pool.fetch(
        f"{_PAIRING_SELECT} WHERE cohort_id = $1 ORDER BY started_at, pairing_id", cohort_id)
    return [_row(r) for r in records]


def at_risk(row: PairingRow) -> list[str]:
    """Why an open pairing needs attention (empty: it does not)."""
    if not row.is_open:
        return []
    reasons = []
    if row.escalated:
        reasons.append(f"escalated to the coordinator ({row.escalations}x)")
    if row.consecutive_missed:
        reasons.append(f"{row.consecutive_missed} meeting(s) missed in a row")
    if row.goals_overdue:
        missing = [side for side, done in (("mentor", row.goals_set_mentor),
                                           ("mentee", row.goals_set_mentee)) if not done]
        reasons.append(f"goals overdue ({', '.join(missing)})")
    return reasons


def _due(row: PairingRow, now: datetime, until: datetime) -> list[DueItem]:
    items: list[DueItem] = []
    if not row.is_open:
        return items
    candidates = [("meeting", row.next_meeting_at)]
    if not (row.goals_set_mentor and row.goals_set_mentee):
        candidates.append(("goal_deadline", row.goal_deadline_at))
    if not row.midpoint_closed:
        candidates.append(("midpoint_review", row.midpoint_opens_at))
    candidates.append(("program_end", row.program_ends_at))
    for what, at in candidates:
        if at is not None and now <= at <= until:
            items.append(DueItem(pairing_id=row.pairing_id, what=what, due_at=at))
    return items


async def _unreachable(pool: asyncpg.Pool, people: list[str]) -> set[str]:
    """People whose notifications keep failing: since the last one that reached them, one was
    given up (``dead``, e.g. a bounced address) or two are failing (docs/notifications.md)."""
    rows = await pool.fetch(
        """
        SELECT d.recipient
          FROM deliveries d
         WHERE d.recipient = ANY($1::text[]) AND d.status IN ('failed', 'dead')
           AND d.created_at > COALESCE((SELECT max(s.delivered_at) FROM deliveries s
                                         WHERE s.recipient = d.recipient
                                           AND s.status = 'sent'), '-infinity')
         GROUP BY d.recipient
        HAVING bool_or(d.status = 'dead') OR count(*) >= 2
        """, people)
    return {r["recipient"] for r in rows}


async def _cohort_record(pool: asyncpg.Pool, cohort_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT cohort_id, program_name, starts_at, ends_at, rematch_until, phase, "
        "pairings_total, pairings_by_phase::text AS pairings_by_phase, launched, rematches, "
        "waiting::text AS waiting, left_company::text AS left_company "
        "FROM cohort_view WHERE cohort_id = $1", cohort_id)


async def cohort_status(
    pool: asyncpg.Pool,
    cohort_id: str,
    *,
    now: datetime | None = None,
    due_within: timedelta = timedelta(days=14),
) -> CohortStatus | None:
    """Counts by phase, pairings at risk, the waiting pool and what falls due within
    ``due_within`` of ``now`` (default: the current time). ``None`` for an unknown cohort."""
    cohort = await _cohort_record(pool, cohort_id)
    if cohort is None:
        return None
    now = now or datetime.now(UTC)
    rows = await pairings_of_cohort(pool, cohort_id)
    unreachable = await _unreachable(
        pool, [p for r in rows if r.is_open for p in (r.mentor_id, r.mentee_id)])
    risky = [
        AtRisk(pairing_id=r.pairing_id, mentor_id=r.mentor_id, mentee_id=r.mentee_id,
               phase=r.phase, reasons=reasons, consecutive_missed=r.consecutive_missed,
               meetings_missed=r.meetings_missed, escalations=r.escalations,
               last_meeting_at=r.last_meeting_at)
        for r in rows
        if (reasons := at_risk(r) + [
            f"notifications to the {side} ({who}) keep failing"
            for side, who in (("mentor", r.mentor_id), ("mentee", r.mentee_id))
            if r.is_open and who in unreachable])
    ]
    due = sorted((item for r in rows for item in _due(r, now, now + due_within)),
                 key=lambda item: (item.due_at, item.pairing_id))
    waiting = [
        WaitingPerson(employee_id=employee, role=info.get("role", ""),
                      after_pairing=info.get("after_pairing"),
                      available_at=_parse(info.get("available_at")),
                      since=_parse(info.get("since")))
        for employee, info in sorted(json.loads(cohort["waiting"]).items())
    ]
    checkpoint = await pool.fetchval(
        "SELECT updated_at FROM projection_checkpoints WHERE name = $1", DEFAULT_NAME)
    return CohortStatus(
        cohort_id=cohort_id,
        program_name=cohort["program_name"],
        phase=cohort["phase"],
        starts_at=cohort["starts_at"],
        ends_at=cohort["ends_at"],
        rematch_until=cohort["rematch_until"],
        pairings_total=cohort["pairings_total"],
        by_phase=json.loads(cohort["pairings_by_phase"]),
        launched=cohort["launched"],
        rematches=cohort["rematches"],
        at_risk=risky,
        waiting=waiting,
        left_company={k: date.fromisoformat(v)
                      for k, v in json.loads(cohort["left_company"]).items()},
        next_due=due,
        as_of=now,
        projected_until=checkpoint,
    )


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
