"""Questions the read models answer, as typed results: what ``sebaya cohort status`` and
``sebaya cohort report`` print, and what a dashboard would show.

Everything here reads the views only (``pairing_view``, ``cohort_view``, ``participant_view``),
so answers are as fresh as the projector's checkpoint; :func:`cohort_status` says how fresh.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from statistics import fmean
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


class SideFigures(BaseModel):
    """An average over the evaluations one side submitted (``n`` of them)."""

    model_config = ConfigDict(frozen=True)

    n: int
    mean: float | None


class RetentionFigure(BaseModel):
    """Mentees still employed ``days`` after their first pairing started, among those whose
    window has fully passed by ``as_of``; ``baseline`` is the program's figure without
    mentoring (``CohortStarted.baseline``)."""

    model_config = ConfigDict(frozen=True)

    days: int
    eligible: int
    retained: int
    share: float | None
    baseline: float | None


class CohortReport(BaseModel):
    """``sebaya cohort report``: what the cohort achieved."""

    model_config = ConfigDict(frozen=True)

    cohort_id: str
    program_name: str | None
    objective: dict[str, Any] | None
    as_of: datetime
    pairings_total: int
    by_phase: dict[str, int]
    goals_set: dict[str, float | None]
    goal_attainment: dict[str, SideFigures]
    meetings_held: int
    meetings_missed: int
    meeting_adherence: float | None
    minutes_per_pairing: float | None
    escalated_pairings: int
    midpoint_satisfaction: dict[str, SideFigures]
    midpoint_wants_to_continue: dict[str, float | None]
    final_relationship_rating: dict[str, SideFigures]
    final_program_rating: dict[str, SideFigures]
    would_recommend: dict[str, float | None]
    mentors_learned: list[tuple[str, str]]
    exits_by_reason: dict[str, int]
    exits_by_phase: dict[str, int]
    exits_by_initiator: dict[str, int]
    rematches: int
    rematches_completed: int
    cross_functional_share: float | None
    retention: list[RetentionFigure]
    departments_known: bool
    """False while no event carries departments (``participant_view.department`` is NULL)."""


_SIDES = ("mentor", "mentee")


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
        "SELECT cohort_id, program_name, objective::text AS objective, "
        "baseline::text AS baseline, starts_at, ends_at, rematch_until, phase, "
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


def _side_mean(values: Iterable[float]) -> SideFigures:
    numbers = list(values)
    return SideFigures(n=len(numbers), mean=round(fmean(numbers), 3) if numbers else None)


def _share(flags: Iterable[bool]) -> float | None:
    values = list(flags)
    return round(sum(values) / len(values), 3) if values else None


async def cohort_report(
    pool: asyncpg.Pool, cohort_id: str, *, as_of: datetime | None = None
) -> CohortReport | None:
    """Goal attainment and satisfaction per side, meeting adherence, exits, rematches,
    cross-functional share and mentee retention at 45 days and one year (judged at
    ``as_of``, default now). ``None`` for an unknown cohort."""
    cohort = await _cohort_record(pool, cohort_id)
    if cohort is None:
        return None
    as_of = as_of or datetime.now(UTC)
    rows = await pairings_of_cohort(pool, cohort_id)
    baseline = json.loads(cohort["baseline"]) if cohort["baseline"] else {}

    finals = {side: [r.final[side] for r in rows if side in r.final] for side in _SIDES}
    reviews = {side: [r.midpoint[side] for r in rows if side in r.midpoint] for side in _SIDES}

    def attainment(evaluation: Mapping[str, Any]) -> float | None:
        # One figure per evaluation: the mean over the goals it scored.
        scores = list(evaluation.get("goal_attainment", {}).values())
        return fmean(scores) if scores else None

    held = sum(r.meetings_held for r in rows)
    missed = sum(r.meetings_missed for r in rows)
    exits = [r for r in rows if r.phase == "exited"]
    rematched = [r for r in rows if r.rematch_of]
    known_cross = [r.cross_functional for r in rows if r.cross_functional is not None]
    people = await pool.fetch(
        "SELECT employee_id, first_started_at, left_on, department FROM participant_view "
        "WHERE cohort_id = $1 AND role = 'mentee'", cohort_id)
    retention = []
    for days, key in ((45, "retention_45d"), (365, "retention_1y")):
        eligible = retained = 0
        for person in people:
            started = person["first_started_at"]
            if started is None or started + timedelta(days=days) > as_of:
                continue  # the window has not passed yet: not counted either way
            eligible += 1
            left = person["left_on"]
            if left is None or left > (started + timedelta(days=days)).date():
                retained += 1
        retention.append(RetentionFigure(
            days=days, eligible=eligible, retained=retained,
            share=round(retained / eligible, 3) if eligible else None,
            baseline=baseline.get(key)))
    return CohortReport(
        cohort_id=cohort_id,
        program_name=cohort["program_name"],
        objective=json.loads(cohort["objective"]) if cohort["objective"] else None,
        as_of=as_of,
        pairings_total=len(rows),
        by_phase=dict(Counter(r.phase for r in rows)),
        goals_set={
            "mentor": _share(r.goals_set_mentor for r in rows),
            "mentee": _share(r.goals_set_mentee for r in rows),
        },
        goal_attainment={side: _side_mean(a for ev in finals[side]
                                          if (a := attainment(ev)) is not None)
                         for side in _SIDES},
        meetings_held=held,
        meetings_missed=missed,
        meeting_adherence=round(held / (held + missed), 3) if held + missed else None,
        minutes_per_pairing=round(fmean(r.minutes_met for r in rows), 1) if rows else None,
        escalated_pairings=sum(1 for r in rows if r.escalations),
        midpoint_satisfaction={side: _side_mean(ev["satisfaction"] for ev in reviews[side])
                               for side in _SIDES},
        midpoint_wants_to_continue={
            side: _share(ev["wants_to_continue"] for ev in reviews[side]) for side in _SIDES},
        final_relationship_rating={
            side: _side_mean(ev["relationship_rating"] for ev in finals[side])
            for side in _SIDES},
        final_program_rating={side: _side_mean(ev["program_rating"] for ev in finals[side])
                              for side in _SIDES},
        would_recommend={side: _share(ev["would_recommend"] for ev in finals[side])
                         for side in _SIDES},
        mentors_learned=[(r.pairing_id, r.final["mentor"]["learned"]) for r in rows
                         if "mentor" in r.final],
        exits_by_reason=dict(Counter(r.exit_reason or "unknown" for r in exits)),
        exits_by_phase=dict(Counter(r.exit_phase or "unknown" for r in exits)),
        exits_by_initiator=dict(Counter(r.exit_initiated_by or "unknown" for r in exits)),
        rematches=len(rematched),
        rematches_completed=sum(1 for r in rematched if r.phase == "completed"),
        cross_functional_share=_share(known_cross),
        retention=retention,
        departments_known=any(p["department"] is not None for p in people),
    )
