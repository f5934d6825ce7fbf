"""The pairing state machine: ``decide(state, command, now) -> events`` and
``evolve(state, event) -> state``.

Pure and deterministic: no clock (``now`` is an argument; workflows pass ``workflow.now()``),
no ids (the workflow derives event ids from stream and version), no I/O. Folding a pairing's
stored stream with ``fold`` gives exactly the state its workflow holds.

Time-driven behaviour (reminders, missed meetings, the mid-point review, the end of the
program) is an *agenda*: ``next_due(state)`` says when something is next due, and
``decide(state, AdvanceClock(...), now)`` emits everything due by ``now``. The workflow sleeps
on one durable timer until ``next_due``; updates wake it early.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from domain import commands as c
from domain import errors
from domain import events as e
from domain.events import Side
from domain.rules import GroundRules

# Overdue goal reminders stop after this many; by then the coordinator sees "goals overdue".
MAX_GOAL_OVERDUE_REMINDERS = 3
# How far back a participant may date a meeting they log (forgot to log last week's).
MAX_BACKDATE = timedelta(days=14)
# A meeting may be moved at most this far from its regular slot.
MAX_RESCHEDULE_SHIFT = timedelta(days=30)


class Phase(StrEnum):
    NOT_STARTED = "not_started"
    GOAL_SETTING = "goal_setting"
    ACTIVE = "active"
    FINAL_EVALUATION = "final_evaluation"
    COMPLETED = "completed"
    EXITED = "exited"


class PendingMeeting(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    meeting_no: int
    scheduled_at: datetime
    slot_index: int
    reminded: bool = False


class MeetingRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    meeting_no: int
    held: bool
    at: datetime
    minutes: int = 0
    topics: tuple[str, ...] = ()


class PairingState(BaseModel):
    """Everything a decision needs; also the workflow's ``state`` query answer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pairing_id: str = ""
    cohort_id: str = ""
    mentor_id: str = ""
    mentee_id: str = ""
    rules: GroundRules | None = None
    started_at: datetime | None = None
    match_score: float = 0.0
    rematch_of: str | None = None
    phase: Phase = Phase.NOT_STARTED
    version: int = 0

    goals: dict[Side, tuple[e.Goal, ...]] = {}
    goal_revisions: dict[Side, int] = {}
    goal_progress: dict[str, int] = {}

    next_meeting: PendingMeeting | None = None
    last_meeting_no: int = 0
    last_slot_index: int = 0
    meetings_held: int = 0
    meetings_missed: int = 0
    consecutive_missed: int = 0
    minutes_met: int = 0
    topics_covered: dict[str, int] = {}
    last_activity_at: datetime | None = None
    # The last few meetings, for people; the full record is the event stream.
    recent_meetings: tuple[MeetingRecord, ...] = ()
    nudged: bool = False
    escalated: bool = False
    escalations: int = 0

    # Sequence numbers of bounded reminder series already sent, by series key.
    reminders_sent: dict[str, int] = {}

    midpoint_open: bool = False
    midpoint_closed: bool = False
    midpoint_reviews: dict[Side, e.MidpointReviewSubmitted] = {}
    exit_offered_to: tuple[Side, ...] = ()

    final_open: bool = False
    final_evaluations: dict[Side, e.FinalEvaluationSubmitted] = {}

    exit: e.PairingExited | None = None
    completed_at: datetime | None = None

    @property
    def is_closed(self) -> bool:
        return self.phase in (Phase.COMPLETED, Phase.EXITED)

    def side_of(self, employee_id: str) -> Side | None:
        if employee_id == self.mentor_id:
            return Side.MENTOR
        if employee_id == self.mentee_id:
            return Side.MENTEE
        return None

    def employee_of(self, side: Side) -> str:
        return self.mentor_id if side is Side.MENTOR else self.mentee_id

    @property
    def goals_overdue(self) -> bool:
        """Derived for read models; ``now``-free: true once an overdue reminder went out."""
        return self.reminders_sent.get("goals_overdue", 0) > 0 and len(self.goals) < 2

    def goal_ids(self) -> set[str]:
        return {g.goal_id for goals in self.goals.values() for g in goals}


# --------------------------------------------------------------------------------------------
# evolve: fold one event into the state. Never refuses: events are facts.
# --------------------------------------------------------------------------------------------


def evolve(state: PairingState, event: e.DomainEvent) -> PairingState:
    s = state
    update: dict[str, object] = {"version": s.version + 1}
    match event:
        case e.PairingMatched():
            update.update(
                pairing_id=event.pairing_id,
                cohort_id=event.cohort_id,
                mentor_id=event.mentor_id,
                mentee_id=event.mentee_id,
                rules=event.ground_rules,
                started_at=event.started_at,
                match_score=event.match_score,
                rematch_of=event.rematch_of,
                phase=Phase.GOAL_SETTING,
                last_activity_at=event.started_at,
            )
        case e.GoalsSet():
            goals = {**s.goals, event.side: event.goals}
            update.update(
                goals=goals,
                goal_revisions={**s.goal_revisions, event.side: event.revision},
                phase=Phase.ACTIVE if len(goals) == 2 and s.phase is Phase.GOAL_SETTING
                else s.phase,
            )
        case e.MeetingScheduled():
            update.update(
                next_meeting=PendingMeeting(
                    meeting_no=event.meeting_no,
                    scheduled_at=event.scheduled_at,
                    slot_index=event.slot_index,
                ),
                last_meeting_no=event.meeting_no,
                last_slot_index=event.slot_index,
            )
        case e.MeetingRescheduled():
            assert s.next_meeting is not None
            update["next_meeting"] = s.next_meeting.model_copy(
                update={"scheduled_at": event.scheduled_at, "reminded": False}
            )
        case e.MeetingHeld():
            topics = dict(s.topics_covered)
            for topic in event.topics:
                topics[topic] = topics.get(topic, 0) + 1
            record = MeetingRecord(
                meeting_no=event.meeting_no,
                held=True,
                at=event.held_at,
                minutes=event.minutes,
                topics=event.topics,
            )
            update.update(
                next_meeting=None,
                meetings_held=s.meetings_held + 1,
                consecutive_missed=0,
                nudged=False,
                escalated=False,
                minutes_met=s.minutes_met + event.minutes,
                topics_covered=topics,
                goal_progress={**s.goal_progress, **event.goal_progress},
                last_activity_at=max(event.held_at, s.last_activity_at or event.held_at),
                recent_meetings=(*s.recent_meetings, record)[-5:],
            )
        case e.MeetingMissed():
            record = MeetingRecord(meeting_no=event.meeting_no, held=False, at=event.scheduled_at)
            update.update(
                next_meeting=None,
                meetings_missed=s.meetings_missed + 1,
                consecutive_missed=event.consecutive_missed,
                recent_meetings=(*s.recent_meetings, record)[-5:],
            )
        case e.ReminderSent():
            if event.kind is e.ReminderKind.MEETING:
                if s.next_meeting is not None:
                    update["next_meeting"] = s.next_meeting.model_copy(update={"reminded": True})
            else:
                key = _series_key(event.kind)
                update["reminders_sent"] = {**s.reminders_sent, key: event.sequence}
        case e.PairingNudged():
            update["nudged"] = True
        case e.PairingEscalated():
            update.update(escalated=True, escalations=s.escalations + 1)
        case e.MidpointReviewOpened():
            update["midpoint_open"] = True
        case e.MidpointReviewSubmitted():
            update.update(
                midpoint_reviews={**s.midpoint_reviews, event.side: event},
                goal_progress={**s.goal_progress, **event.goal_progress},
            )
        case e.MidpointReviewClosed():
            update.update(midpoint_open=False, midpoint_closed=True)
        case e.ExitOffered():
            update["exit_offered_to"] = tuple(
                sorted(set(s.exit_offered_to) | set(event.offered_to))
            )
        case e.PairingExited():
            update.update(phase=Phase.EXITED, exit=event, next_meeting=None)
        case e.FinalEvaluationOpened():
            update.update(final_open=True, phase=Phase.FINAL_EVALUATION)
        case e.FinalEvaluationSubmitted():
            update["final_evaluations"] = {**s.final_evaluations, event.side: event}
        case e.PairingCompleted():
            update.update(
                phase=Phase.COMPLETED,
                completed_at=event.completed_at,
                final_open=False,
                next_meeting=None,
            )
        case _:
            raise TypeError(f"evolve does not know {type(event).__name__}")
    return s.model_copy(update=update)


def fold(events: Iterable[e.DomainEvent], state: PairingState | None = None) -> PairingState:
    current = state or PairingState()
    for event in events:
        current = evolve(current, event)
    return current


# --------------------------------------------------------------------------------------------
# decide: turn a command into events, or refuse it with a specific domain error.
# --------------------------------------------------------------------------------------------


def decide(state: PairingState, command: c.PairingCommand, now: datetime) -> list[e.DomainEvent]:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if isinstance(command, c.StartPairing):
        return _start(state, command, now)
    if state.phase is Phase.NOT_STARTED:
        raise errors.NotAllowedNow("the pairing has not started")
    if isinstance(command, c.AdvanceClock):
        return advance(state, now)
    if state.is_closed:
        raise errors.PairingClosed(f"the pairing is {state.phase.value}; nothing can change it")
    match command:
        case c.SetGoals():
            return _set_goals(state, command, now)
        case c.LogMeeting():
            return _log_meeting(state, command, now)
        case c.RescheduleMeeting():
            return _reschedule(state, command, now)
        case c.SubmitMidpointReview():
            return _midpoint_review(state, command)
        case c.RequestExit():
            return _exit(state, command, now)
        case c.OfferExit():
            if command.actor.kind == "employee":
                raise errors.NotAllowedNow("only operations offer a pair a no-fault exit")
            return [e.ExitOffered(offered_to=(Side.MENTOR, Side.MENTEE), because=command.because)]
        case c.SubmitFinalEvaluation():
            return _final_evaluation(state, command, now)
    raise errors.InvalidCommand(f"unknown command {type(command).__name__}")


def decide_and_fold(
    state: PairingState, command: c.PairingCommand, now: datetime
) -> tuple[list[e.DomainEvent], PairingState]:
    events = decide(state, command, now)
    return events, fold(events, state)


def _rules(state: PairingState) -> GroundRules:
    assert state.rules is not None, "a started pairing always has rules"
    return state.rules


def _started_at(state: PairingState) -> datetime:
    assert state.started_at is not None
    return state.started_at


def _participant(state: PairingState, actor: c.Actor) -> Side:
    if actor.kind != "employee":
        raise errors.NotAParticipant(
            f"only the mentor or the mentee can do this, not {actor}", field="actor"
        )
    side = state.side_of(actor.id)
    if side is None:
        raise errors.NotAParticipant(
            f"employee {actor.id} is not part of pairing {state.pairing_id}", field="actor"
        )
    return side


def _start(state: PairingState, cmd: c.StartPairing, now: datetime) -> list[e.DomainEvent]:
    if state.phase is not Phase.NOT_STARTED:
        raise errors.AlreadyStarted(f"pairing {state.pairing_id} has already started")
    if cmd.mentor_id == cmd.mentee_id:
        raise errors.InvalidCommand("mentor and mentee must be different people", field="mentee_id")
    matched = e.PairingMatched(
        pairing_id=cmd.pairing_id,
        cohort_id=cmd.cohort_id,
        mentor_id=cmd.mentor_id,
        mentee_id=cmd.mentee_id,
        started_at=now,
        ground_rules=cmd.ground_rules,
        match_score=cmd.match_score,
        explanation=cmd.explanation,
        rematch_of=cmd.rematch_of,
    )
    events: list[e.DomainEvent] = [matched]
    if not cmd.ground_rules.goals_required_before_meetings:
        events += _schedule_next(fold(events, state), now)
    return events


def _set_goals(state: PairingState, cmd: c.SetGoals, now: datetime) -> list[e.DomainEvent]:
    side = _participant(state, cmd.actor)
    if state.phase not in (Phase.GOAL_SETTING, Phase.ACTIVE):
        raise errors.NotAllowedNow(f"goals cannot change during {state.phase.value}")
    ids = [g.goal_id for g in cmd.goals]
    if len(set(ids)) != len(ids):
        raise errors.InvalidCommand("goal ids must be unique", field="goals")
    others = {g.goal_id for g in state.goals.get(side.other, ())}
    clash = sorted(others.intersection(ids))
    if clash:
        raise errors.InvalidCommand(
            f"goal id(s) {', '.join(clash)} already used by the {side.other.value}",
            field="goals",
        )
    end = _rules(state).program_end(_started_at(state))
    for i, goal in enumerate(cmd.goals):
        if goal.target_date is None:
            continue
        if goal.target_date < _started_at(state).date():
            raise errors.InvalidCommand(
                "target date is before the pairing started", field=f"goals[{i}].target_date"
            )
        if end is not None and goal.target_date > end.date():
            raise errors.InvalidCommand(
                "target date is after the program ends", field=f"goals[{i}].target_date"
            )
    events: list[e.DomainEvent] = [
        e.GoalsSet(side=side, goals=cmd.goals, revision=state.goal_revisions.get(side, 0) + 1)
    ]
    after = fold(events, state)
    if (
        _rules(state).goals_required_before_meetings
        and len(after.goals) == 2
        and after.next_meeting is None
        and after.last_meeting_no == 0
    ):
        events += _schedule_next(after, now)
    return events


def _check_progress(state: PairingState, progress: dict[str, int], field: str) -> None:
    known = state.goal_ids()
    for goal_id, value in progress.items():
        if goal_id not in known:
            raise errors.UnknownGoal(f"no goal {goal_id!r} in this pairing", field=field)
        if not 0 <= value <= 100:
            raise errors.InvalidCommand(
                f"progress of {goal_id!r} must be 0-100, got {value}", field=field
            )


def _log_meeting(state: PairingState, cmd: c.LogMeeting, now: datetime) -> list[e.DomainEvent]:
    side = _participant(state, cmd.actor)
    rules = _rules(state)
    pending = state.next_meeting
    if pending is None:
        if rules.goals_required_before_meetings and len(state.goals) < 2:
            raise errors.GoalsRequiredFirst(
                "both sides must set their goals before meetings start"
            )
        raise errors.UnknownMeeting("no meeting is scheduled now", field="meeting_no")
    if cmd.meeting_no < pending.meeting_no:
        raise errors.AlreadySubmitted(
            f"meeting {cmd.meeting_no} was already logged", field="meeting_no"
        )
    if cmd.meeting_no > pending.meeting_no:
        raise errors.UnknownMeeting(
            f"meeting {cmd.meeting_no} is not scheduled yet; the next is {pending.meeting_no}",
            field="meeting_no",
        )
    events: list[e.DomainEvent]
    if cmd.held:
        held_at = cmd.held_at or now
        if held_at > now:
            raise errors.InvalidCommand("a meeting cannot be logged before it happens",
                                        field="held_at")
        if held_at < max(_started_at(state), now - MAX_BACKDATE):
            raise errors.InvalidCommand(
                "held_at is before the pairing started or more than 14 days ago", field="held_at"
            )
        if not cmd.topics:
            raise errors.InvalidCommand("say which topics you covered", field="topics")
        for topic in cmd.topics:
            if topic not in rules.topics:
                raise errors.UnknownTopic(
                    f"{topic!r} is not one of the program's topics: {', '.join(rules.topics)}",
                    field="topics",
                )
        _check_progress(state, cmd.goal_progress, "goal_progress")
        events = [
            e.MeetingHeld(
                meeting_no=pending.meeting_no,
                held_at=held_at,
                minutes=cmd.minutes or rules.meeting_minutes,
                topics=tuple(dict.fromkeys(cmd.topics)),
                goal_progress=cmd.goal_progress,
                logged_by=side,
            )
        ]
    else:
        if now < pending.scheduled_at:
            raise errors.NotAllowedNow(
                "a meeting can only be reported missed once its time has come", field="held"
            )
        events = _missed(state, pending, reported_by=side)
    return events + _schedule_next(fold(events, state), now)


def _missed(
    state: PairingState, pending: PendingMeeting, reported_by: Side | str
) -> list[e.DomainEvent]:
    ladder = _rules(state).escalation
    streak = state.consecutive_missed + 1
    events: list[e.DomainEvent] = [
        e.MeetingMissed(
            meeting_no=pending.meeting_no,
            scheduled_at=pending.scheduled_at,
            reported_by=reported_by,
            consecutive_missed=streak,
        )
    ]
    if streak >= ladder.nudge_after_missed and not state.nudged:
        events.append(e.PairingNudged(consecutive_missed=streak))
    if streak >= ladder.escalate_after_missed and not state.escalated:
        events.append(e.PairingEscalated(consecutive_missed=streak))
    return events


def _schedule_next(state: PairingState, now: datetime) -> list[e.DomainEvent]:
    """The next regular slot after ``now`` that starts before the program ends."""
    if state.is_closed or state.next_meeting is not None or state.final_open:
        return []
    following = _next_slot(state, now)
    if following is None:
        return []
    index, slot = following
    return [
        e.MeetingScheduled(meeting_no=state.last_meeting_no + 1, scheduled_at=slot,
                           slot_index=index)
    ]


def _next_slot(state: PairingState, after: datetime) -> tuple[int, datetime] | None:
    """(index, time) of the first regular slot past the last one used and after ``after``;
    None if the program ends first."""
    rules = _rules(state)
    started = _started_at(state)
    end = rules.program_end(started)
    index = state.last_slot_index + 1
    slot = rules.meeting_slot(started, index)
    while slot <= after:
        index += 1
        slot = rules.meeting_slot(started, index)
    if end is not None and slot >= end:
        return None
    return index, slot


def _reschedule(
    state: PairingState, cmd: c.RescheduleMeeting, now: datetime
) -> list[e.DomainEvent]:
    requested_by: Side | str = "ops" if cmd.actor.kind == "ops" else _participant(state, cmd.actor)
    pending = state.next_meeting
    if pending is None or pending.meeting_no != cmd.meeting_no:
        raise errors.UnknownMeeting(
            f"meeting {cmd.meeting_no} is not the next scheduled meeting", field="meeting_no"
        )
    if cmd.new_time.tzinfo is None:
        raise errors.InvalidCommand("new_time needs a time zone", field="new_time")
    if cmd.new_time <= now:
        raise errors.InvalidCommand("a meeting can only move to the future", field="new_time")
    rules = _rules(state)
    regular = rules.meeting_slot(_started_at(state), pending.slot_index)
    if abs(cmd.new_time - regular) > MAX_RESCHEDULE_SHIFT:
        raise errors.InvalidCommand(
            "a meeting can move at most 30 days from its regular slot", field="new_time"
        )
    end = rules.program_end(_started_at(state))
    if end is not None and cmd.new_time >= end:
        raise errors.InvalidCommand("the program ends before that time", field="new_time")
    return [
        e.MeetingRescheduled(
            meeting_no=pending.meeting_no,
            previous_at=pending.scheduled_at,
            scheduled_at=cmd.new_time,
            requested_by=requested_by,
        )
    ]


def _midpoint_review(state: PairingState, cmd: c.SubmitMidpointReview) -> list[e.DomainEvent]:
    side = _participant(state, cmd.actor)
    if not state.midpoint_open:
        raise errors.WindowNotOpen(
            "the mid-point review is closed" if state.midpoint_closed
            else "the mid-point review has not opened yet"
        )
    if side in state.midpoint_reviews:
        raise errors.AlreadySubmitted(f"the {side.value} already submitted the mid-point review")
    _check_progress(state, cmd.goal_progress, "goal_progress")
    events: list[e.DomainEvent] = [
        e.MidpointReviewSubmitted(
            side=side,
            satisfaction=cmd.satisfaction,
            goal_progress=cmd.goal_progress,
            wants_to_continue=cmd.wants_to_continue,
        )
    ]
    if not cmd.wants_to_continue:
        events.append(e.ExitOffered(offered_to=(side,)))
    if len(state.midpoint_reviews) + 1 == 2:
        events.append(e.MidpointReviewClosed(missing=()))
    return events


def _exit(state: PairingState, cmd: c.RequestExit, now: datetime) -> list[e.DomainEvent]:
    initiator: e.ExitInitiator
    if cmd.actor.kind == "ops":
        initiator = e.ExitInitiator.OPS
    elif cmd.actor.kind == "system":
        initiator = e.ExitInitiator.SYSTEM
    else:
        initiator = e.ExitInitiator(_participant(state, cmd.actor).value)
    leaving = cmd.leaving_employee_id
    if leaving is not None and state.side_of(leaving) is None:
        raise errors.NotAParticipant(
            f"employee {leaving} is not part of this pairing", field="leaving_employee_id"
        )
    if cmd.reason is e.ExitReason.LEFT_COMPANY and leaving is None:
        if cmd.actor.kind == "employee":
            leaving = cmd.actor.id
        else:
            raise errors.InvalidCommand(
                "say who left the company", field="leaving_employee_id"
            )
    return [
        e.PairingExited(
            initiated_by=initiator,
            reason=cmd.reason,
            phase_at_exit=state.phase.value,
            exited_at=now,
            leaving_employee_id=leaving,
        )
    ]


def _final_evaluation(
    state: PairingState, cmd: c.SubmitFinalEvaluation, now: datetime
) -> list[e.DomainEvent]:
    side = _participant(state, cmd.actor)
    if not state.final_open:
        raise errors.WindowNotOpen("the final evaluation opens when the program ends")
    if side in state.final_evaluations:
        raise errors.AlreadySubmitted(f"the {side.value} already submitted the final evaluation")
    _check_progress(state, cmd.goal_attainment, "goal_attainment")
    submitted = e.FinalEvaluationSubmitted(
        side=side,
        goal_attainment=cmd.goal_attainment,
        relationship_rating=cmd.relationship_rating,
        program_rating=cmd.program_rating,
        learned=cmd.learned,
        would_recommend=cmd.would_recommend,
    )
    events: list[e.DomainEvent] = [submitted]
    after = fold(events, state)
    if len(after.final_evaluations) == 2:
        events.append(_completed(after, now))
    return events


def _completed(state: PairingState, now: datetime) -> e.PairingCompleted:
    return e.PairingCompleted(
        completed_at=now,
        evaluations_received=tuple(sorted(state.final_evaluations)),
        meetings_held=state.meetings_held,
        meetings_missed=state.meetings_missed,
    )


# --------------------------------------------------------------------------------------------
# The agenda: what is due, when.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Due:
    at: datetime
    # Tie-break among things due at the same instant: close windows before opening the next.
    priority: int
    action: str
    sequence: int = 0


@dataclass(frozen=True)
class Rule:
    """One time-driven rule: when it is next due on a state, and what it emits then.

    ``when`` answers ``(at, sequence)`` or None (not due on this state); ``emit`` decides the
    events as of ``due.at`` (so catching up late changes nothing). A new rule is one entry in
    ``RULES``."""

    name: str
    priority: int
    when: Callable[[PairingState], tuple[datetime, int] | None]
    emit: Callable[[PairingState, Due], list[e.DomainEvent]]
    # When the workflow must act on it, if that may be later than when it is due. The events
    # are the same either way (``emit`` decides as of ``due.at``); only when they are
    # recorded moves. None: at once.
    noticed: Callable[[PairingState, Due], datetime] | None = None


_BOTH = (Side.MENTOR, Side.MENTEE)


def _series_key(kind: e.ReminderKind) -> str:
    return {
        e.ReminderKind.GOAL_DEADLINE: "goals",
        e.ReminderKind.GOAL_OVERDUE: "goals_overdue",
        e.ReminderKind.MIDPOINT_REVIEW: "midpoint",
        e.ReminderKind.FINAL_EVALUATION: "final",
    }[kind]


def _reminder(
    kind: e.ReminderKind, recipients: Sequence[Side], due_at: datetime, reference: str, seq: int
) -> e.ReminderSent:
    return e.ReminderSent(
        kind=kind, recipients=tuple(recipients), due_at=due_at, reference=reference, sequence=seq
    )


# --- goals -----------------------------------------------------------------------------------


def _goal_reminders_before(state: PairingState) -> list[datetime]:
    rules, started = _rules(state), _started_at(state)
    deadline = rules.goal_deadline(started)
    return [deadline - timedelta(days=d) for d in rules.goal_reminder_days_before_deadline
            if deadline - timedelta(days=d) > started]


def _goal_reminders_overdue(state: PairingState) -> list[datetime]:
    rules = _rules(state)
    deadline = rules.goal_deadline(_started_at(state))
    return [deadline + timedelta(days=rules.goal_overdue_reminder_days * k)
            for k in range(1, MAX_GOAL_OVERDUE_REMINDERS + 1)]


def _goal_reminder_due(state: PairingState) -> tuple[datetime, int] | None:
    before = _goal_reminders_before(state)
    sent = state.reminders_sent.get("goals", 0)
    if len(state.goals) < 2 and sent < len(before):
        return before[sent], sent + 1
    return None


def _goal_overdue_due(state: PairingState) -> tuple[datetime, int] | None:
    # Overdue reminders follow the pre-deadline ones, and stop when the program ends.
    if len(state.goals) >= 2 or _goal_reminder_due(state) is not None:
        return None
    overdue = _goal_reminders_overdue(state)
    sent = state.reminders_sent.get("goals_overdue", 0)
    end = _rules(state).program_end(_started_at(state))
    if sent < len(overdue) and (end is None or overdue[sent] < end):
        return overdue[sent], sent + 1
    return None


def _goal_reminder(kind: e.ReminderKind) -> Callable[[PairingState, Due], list[e.DomainEvent]]:
    def emit(state: PairingState, due: Due) -> list[e.DomainEvent]:
        missing = [side for side in _BOTH if side not in state.goals]
        deadline = _rules(state).goal_deadline(_started_at(state))
        return [_reminder(kind, missing, deadline, "goals", due.sequence)]
    return emit


# --- meetings --------------------------------------------------------------------------------


def _meeting_reminder_due(state: PairingState) -> tuple[datetime, int] | None:
    pending = state.next_meeting
    if pending is None or pending.reminded:
        return None
    return _rules(state).reminder_at(pending.scheduled_at), 0


def _meeting_reminder(state: PairingState, due: Due) -> list[e.DomainEvent]:
    assert state.next_meeting is not None
    pending = state.next_meeting
    return [_reminder(e.ReminderKind.MEETING, _BOTH, pending.scheduled_at,
                      f"meeting:{pending.meeting_no}", pending.meeting_no)]


def _meeting_missed_due(state: PairingState) -> tuple[datetime, int] | None:
    pending = state.next_meeting
    if pending is None:
        return None
    return _rules(state).log_deadline(pending.scheduled_at), 0


def _meeting_missed_noticed(state: PairingState, due: Due) -> datetime:
    """A missed meeting is recorded with the next thing the pairing does anyway: the next
    meeting's reminder, or for the last meeting the opening of the final evaluation at the
    program's end. One timer a week instead of two.

    Nothing is lost by waiting: a log for the meeting that arrives in between first catches
    up with the clock and is refused exactly as if the miss were already recorded, and the
    next meeting is scheduled as of the deadline."""
    rules = _rules(state)
    following = _next_slot(state, due.at)
    if following is not None:
        return max(due.at, rules.reminder_at(following[1]))
    end = rules.program_end(_started_at(state))
    return due.at if end is None else max(due.at, end)


def _meeting_missed(state: PairingState, due: Due) -> list[e.DomainEvent]:
    assert state.next_meeting is not None
    events = _missed(state, state.next_meeting, reported_by="system")
    return events + _schedule_next(fold(events, state), due.at)


# --- review windows: the mid-point review and the final evaluation -----------------------------


@dataclass(frozen=True)
class _Window:
    """A window both sides are asked to answer in: it opens (with a first reminder), reminds
    those who have not answered every few days, and closes."""

    series: str
    kind: e.ReminderKind
    opens: Callable[[GroundRules, datetime], datetime | None]
    closes: Callable[[GroundRules, datetime], datetime | None]
    every_days: Callable[[GroundRules], int]
    is_open: Callable[[PairingState], bool]
    is_over: Callable[[PairingState], bool]
    answered: Callable[[PairingState], Mapping[Side, object]]
    opened: Callable[[datetime], e.DomainEvent]
    closed: Callable[[PairingState, Due], e.DomainEvent]

    def bounds(self, state: PairingState) -> tuple[datetime, datetime] | None:
        rules, started = _rules(state), _started_at(state)
        opens, closes = self.opens(rules, started), self.closes(rules, started)
        if opens is None or closes is None or self.is_over(state):
            return None
        return opens, closes

    def rules(self, open_priority: int, reminder_priority: int,
              close_priority: int) -> tuple[Rule, Rule, Rule]:
        def open_due(state: PairingState) -> tuple[datetime, int] | None:
            bounds = self.bounds(state)
            return None if bounds is None or self.is_open(state) else (bounds[0], 0)

        def reminder_due(state: PairingState) -> tuple[datetime, int] | None:
            bounds = self.bounds(state)
            if bounds is None or not self.is_open(state):
                return None
            opens, closes = bounds
            sent = state.reminders_sent.get(self.series, 0)
            # Reminder ``sent + 1``: at opening, then every few days until the window closes.
            at = opens + timedelta(days=self.every_days(_rules(state)) * sent)
            return (at, sent + 1) if at < closes else None

        def close_due(state: PairingState) -> tuple[datetime, int] | None:
            bounds = self.bounds(state)
            return None if bounds is None or not self.is_open(state) else (bounds[1], 0)

        def open_(state: PairingState, due: Due) -> list[e.DomainEvent]:
            bounds = self.bounds(state)
            assert bounds is not None
            return [self.opened(bounds[1]),
                    _reminder(self.kind, _BOTH, bounds[1], self.series, 1)]

        def remind(state: PairingState, due: Due) -> list[e.DomainEvent]:
            bounds = self.bounds(state)
            assert bounds is not None
            missing = [side for side in _BOTH if side not in self.answered(state)]
            return [_reminder(self.kind, missing, bounds[1], self.series, due.sequence)]

        def close(state: PairingState, due: Due) -> list[e.DomainEvent]:
            return [self.closed(state, due)]

        return (Rule(f"{self.series}_open", open_priority, open_due, open_),
                Rule(f"{self.series}_reminder", reminder_priority, reminder_due, remind),
                Rule(f"{self.series}_close", close_priority, close_due, close))


_MIDPOINT = _Window(
    series="midpoint",
    kind=e.ReminderKind.MIDPOINT_REVIEW,
    opens=GroundRules.midpoint_opens,
    closes=GroundRules.midpoint_closes,
    every_days=lambda rules: rules.midpoint_reminder_every_days,
    is_open=lambda state: state.midpoint_open,
    is_over=lambda state: state.midpoint_closed,
    answered=lambda state: state.midpoint_reviews,
    opened=lambda closes: e.MidpointReviewOpened(closes_at=closes),
    closed=lambda state, due: e.MidpointReviewClosed(
        missing=tuple(side for side in _BOTH if side not in state.midpoint_reviews)),
)

# The final evaluation opens when the program ends; closing it completes the pairing.
_FINAL = _Window(
    series="final",
    kind=e.ReminderKind.FINAL_EVALUATION,
    opens=GroundRules.program_end,
    closes=GroundRules.final_evaluation_closes,
    every_days=lambda rules: rules.final_reminder_every_days,
    is_open=lambda state: state.final_open,
    is_over=lambda state: state.is_closed,
    answered=lambda state: state.final_evaluations,
    opened=lambda closes: e.FinalEvaluationOpened(closes_at=closes),
    closed=lambda state, due: _completed(state, due.at),
)


# --- inactivity ------------------------------------------------------------------------------


def _inactivity_due(state: PairingState) -> tuple[datetime, int] | None:
    days = _rules(state).escalation.auto_conclude_after_inactive_days
    if days is None or state.last_activity_at is None or state.final_open:
        return None
    return state.last_activity_at + timedelta(days=days), 0


def _inactivity_exit(state: PairingState, due: Due) -> list[e.DomainEvent]:
    return [
        e.PairingExited(
            initiated_by=e.ExitInitiator.SYSTEM,
            reason=e.ExitReason.INACTIVITY,
            phase_at_exit=state.phase.value,
            exited_at=due.at,
        )
    ]


# Priorities break ties at one instant: leave for inactivity first, then close windows and
# count missed meetings before reminding or opening anything new.
RULES: tuple[Rule, ...] = (
    Rule("inactivity_exit", 5, _inactivity_due, _inactivity_exit),
    Rule("meeting_missed", 20, _meeting_missed_due, _meeting_missed, _meeting_missed_noticed),
    Rule("goal_reminder", 30, _goal_reminder_due, _goal_reminder(e.ReminderKind.GOAL_DEADLINE)),
    Rule("goal_overdue", 30, _goal_overdue_due, _goal_reminder(e.ReminderKind.GOAL_OVERDUE)),
    Rule("meeting_reminder", 40, _meeting_reminder_due, _meeting_reminder),
    *_MIDPOINT.rules(open_priority=50, reminder_priority=55, close_priority=10),
    *_FINAL.rules(open_priority=60, reminder_priority=65, close_priority=70),
)
_RULES_BY_NAME = {rule.name: rule for rule in RULES}


def agenda(state: PairingState) -> list[Due]:
    """Everything time-driven still to happen, earliest first (empty once closed)."""
    if state.phase is Phase.NOT_STARTED or state.is_closed:
        return []
    items = []
    for rule in RULES:
        when = rule.when(state)
        if when is not None:
            items.append(Due(when[0], rule.priority, rule.name, when[1]))
    return sorted(items)


def next_due(state: PairingState) -> datetime | None:
    items = agenda(state)
    return items[0].at if items else None


def next_milestone(state: PairingState) -> datetime | None:
    """When the stage the pairing is in ends: the goal deadline while goals are set, the
    mid-point review's opening and then its close, the program's end, the final evaluation's
    close; None once closed (or for an open-ended program past its goals). It moves only when
    the phase or the review window changes, a few times in a pairing's life, unlike
    ``next_due`` (every reminder), so a workflow can publish it without an event a week."""
    if state.is_closed or state.phase is Phase.NOT_STARTED:
        return None
    rules, started = _rules(state), _started_at(state)
    if state.phase is Phase.GOAL_SETTING:
        return rules.goal_deadline(started)
    if state.phase is Phase.FINAL_EVALUATION:
        return rules.final_evaluation_closes(started)
    if state.midpoint_open:
        return rules.midpoint_closes(started)
    if not state.midpoint_closed and rules.midpoint_opens(started) is not None:
        return rules.midpoint_opens(started)
    return rules.program_end(started)


def next_wake(state: PairingState) -> datetime | None:
    """When a workflow next has to act: ``next_due``, except that rules that may wait (a
    missed meeting) count from when they are noticed. ``advance`` at that time records all
    that is due by then, each decided as of when it became due."""
    times = [
        rule.noticed(state, item) if rule.noticed is not None else item.at
        for item in agenda(state)
        for rule in (_RULES_BY_NAME[item.action],)
    ]
    return min(times, default=None)


def advance(state: PairingState, now: datetime, *, limit: int = 500) -> list[e.DomainEvent]:
    """Every event due by ``now``, in time order, each decided on the state the previous made."""
    produced: list[e.DomainEvent] = []
    current = state
    for _ in range(limit):
        items = agenda(current)
        if not items or items[0].at > now:
            return produced
        step = _RULES_BY_NAME[items[0].action].emit(current, items[0])
        produced += step
        current = fold(step, current)
    raise RuntimeError(f"more than {limit} agenda items due at once; refusing to loop")
