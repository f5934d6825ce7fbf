"""What a participant sees of their pairing: the fold of its stream in the event store,
seen from one side.

Folding the stream (not querying the workflow) answers even for ended pairings and while
Temporal is down, and is exactly the workflow's state (ADR 0005). The partner's private
answers (mid-point review, final evaluation) and the reason of an exit the partner asked for
are left out.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel

from domain import events as e
from domain.ids import pairing_stream
from domain.pairing import PairingState, Phase, fold
from eventstore import EventStore

Action = Literal["set_goals", "log_meeting", "reschedule_meeting", "submit_midpoint_review",
                 "request_exit", "submit_final_evaluation"]


class GoalView(BaseModel):
    goal_id: str
    title: str
    success_measure: str
    target_date: date | None
    progress: int | None


class Partner(BaseModel):
    employee_id: str
    side: e.Side
    name: str | None
    email: str | None


class NextMeeting(BaseModel):
    meeting_no: int
    scheduled_at: datetime


class MeetingView(BaseModel):
    meeting_no: int
    held: bool
    at: datetime
    minutes: int
    topics: list[str]


class WindowView(BaseModel):
    """The mid-point review or final evaluation: open?, and who has answered (not what)."""

    open: bool
    closed: bool
    submitted_by_me: bool
    submitted_by_partner: bool


class ExitView(BaseModel):
    initiated_by: str
    """``me``, ``partner``, ``coordinator`` or ``system``."""
    at: datetime
    reason: e.ExitReason | None
    """Only when I asked for the exit myself."""


class TimelineItem(BaseModel):
    version: int
    at: datetime
    type: str
    by: Literal["me", "partner", "coordinator", "system"]
    meeting_no: int | None = None


class PairingSummary(BaseModel):
    pairing_id: str
    cohort_id: str
    my_side: e.Side
    partner_id: str
    phase: str
    next_meeting_at: datetime | None
    meetings_held: int
    meetings_missed: int


class PairingDetail(BaseModel):
    pairing_id: str
    cohort_id: str
    my_side: e.Side
    phase: Phase
    partner: Partner
    started_at: datetime | None
    program_ends_at: datetime | None
    topics: list[str]
    timezone: str
    """The program's time zone: times on the pages are shown and read in it."""
    my_goals: list[GoalView]
    partner_goals: list[GoalView]
    next_meeting: NextMeeting | None
    meetings_held: int
    meetings_missed: int
    recent_meetings: list[MeetingView]
    midpoint_review: WindowView
    final_evaluation: WindowView
    exit: ExitView | None
    allowed_actions: list[Action]
    timeline: list[TimelineItem]
    version: int


def allowed_actions(state: PairingState, side: e.Side) -> list[Action]:
    """What this side may do now, as the domain would judge it (the validator has the last
    word; this drives which buttons a page shows)."""
    if state.is_closed or state.phase is Phase.NOT_STARTED:
        return []
    actions: list[Action] = []
    if state.phase in (Phase.GOAL_SETTING, Phase.ACTIVE):
        actions.append("set_goals")
    if state.next_meeting is not None:
        actions += ["log_meeting", "reschedule_meeting"]
    if state.midpoint_open and side not in state.midpoint_reviews:
        actions.append("submit_midpoint_review")
    if state.final_open and side not in state.final_evaluations:
        actions.append("submit_final_evaluation")
    actions.append("request_exit")
    return actions


def _by(actor: str, me: str, partner: str) -> Literal["me", "partner", "coordinator", "system"]:
    kind, _, ident = actor.partition(":")
    if kind == "employee":
        return "me" if ident == me else "partner" if ident == partner else "coordinator"
    return "coordinator" if kind == "ops" else "system"


# Reminders to the other side are theirs, not part of my timeline.
_HIDDEN = {"ReminderSent"}


async def load_pairing(store: EventStore, pool: asyncpg.Pool, pairing_id: str,
                       employee_id: str) -> PairingDetail | None:
    """The pairing as ``employee_id`` sees it; None when it does not exist or is not theirs
    (the caller answers 404 either way, so nobody learns which pairings exist)."""
    records = await store.read_stream(pairing_stream(pairing_id))
    if not records:
        return None
    registry = store.registry
    assert registry is not None
    decoded: list[tuple[Any, e.DomainEvent]] = [
        (r, registry.decode(r)) for r in records]  # type: ignore[misc]
    state = fold(ev for _, ev in decoded)
    side = state.side_of(employee_id)
    if side is None:
        return None
    partner_id = state.employee_of(side.other)
    contact = await pool.fetchrow(
        "SELECT name, email FROM participants WHERE employee_id = $1 AND erased_at IS NULL",
        partner_id)
    timeline: list[TimelineItem] = []
    for record, event in decoded:
        if record.type in _HIDDEN:
            continue
        timeline.append(TimelineItem(
            version=record.version, at=record.metadata.occurred_at, type=record.type,
            by=_by(record.metadata.actor, employee_id, partner_id),
            meeting_no=getattr(event, "meeting_no", None)))
    rules = state.rules

    def goals(of: e.Side) -> list[GoalView]:
        return [GoalView(goal_id=g.goal_id, title=g.title, success_measure=g.success_measure,
                         target_date=g.target_date, progress=state.goal_progress.get(g.goal_id))
                for g in state.goals.get(of, ())]

    exit_view = None
    if state.exit is not None:
        by = state.exit.initiated_by.value
        who = "me" if by == side.value else "partner" if by == side.other.value \
            else "coordinator" if by == "ops" else "system"
        exit_view = ExitView(initiated_by=who, at=state.exit.exited_at,
                             reason=state.exit.reason if who == "me" else None)
    return PairingDetail(
        pairing_id=state.pairing_id, cohort_id=state.cohort_id, my_side=side,
        phase=state.phase,
        partner=Partner(employee_id=partner_id, side=side.other,
                        name=contact["name"] if contact else None,
                        email=contact["email"] if contact else None),
        started_at=state.started_at,
        program_ends_at=rules.program_end(state.started_at)
        if rules and state.started_at else None,
        topics=list(rules.topics) if rules else [],
        timezone=rules.timezone if rules else "UTC",
        my_goals=goals(side), partner_goals=goals(side.other),
        next_meeting=NextMeeting(meeting_no=state.next_meeting.meeting_no,
                                 scheduled_at=state.next_meeting.scheduled_at)
        if state.next_meeting else None,
        meetings_held=state.meetings_held, meetings_missed=state.meetings_missed,
        recent_meetings=[MeetingView(meeting_no=m.meeting_no, held=m.held, at=m.at,
                                     minutes=m.minutes, topics=list(m.topics))
                         for m in state.recent_meetings],
        midpoint_review=WindowView(open=state.midpoint_open, closed=state.midpoint_closed,
                                   submitted_by_me=side in state.midpoint_reviews,
                                   submitted_by_partner=side.other in state.midpoint_reviews),
        final_evaluation=WindowView(
            open=state.final_open, closed=state.is_closed,
            submitted_by_me=side in state.final_evaluations,
            submitted_by_partner=side.other in state.final_evaluations),
        exit=exit_view,
        allowed_actions=allowed_actions(state, side),
        timeline=timeline,
        version=state.version,
    )


async def my_pairings(pool: asyncpg.Pool, employee_id: str) -> list[PairingSummary]:
    """From the read model (as fresh as the projector), newest first."""
    rows = await pool.fetch(
        "SELECT pairing_id, cohort_id, mentor_id, mentee_id, phase, next_meeting_at, "
        "meetings_held, meetings_missed FROM pairing_view "
        "WHERE mentor_id = $1 OR mentee_id = $1 ORDER BY started_at DESC NULLS LAST, pairing_id",
        employee_id)
    out = []
    for r in rows:
        mine = e.Side.MENTOR if r["mentor_id"] == employee_id else e.Side.MENTEE
        out.append(PairingSummary(
            pairing_id=r["pairing_id"], cohort_id=r["cohort_id"], my_side=mine,
            partner_id=r["mentee_id"] if mine is e.Side.MENTOR else r["mentor_id"],
            phase=r["phase"], next_meeting_at=r["next_meeting_at"],
            meetings_held=r["meetings_held"], meetings_missed=r["meetings_missed"]))
    return out
