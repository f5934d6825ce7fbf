"""The projector's own fold of a pairing stream: the fields of :class:`PairingState`, in a
mutable object changed in place.

``domain.pairing.evolve`` returns a new frozen pydantic model per event (``model_copy``, plus a
validated ``PendingMeeting``/``MeetingRecord`` for most events), which is what a workflow needs
and was about half of what a projector rebuilding a million events spent. The projector holds
thousands of states that only it sees, so it folds them in place here and turns one into a
:class:`PairingState` only to store a snapshot.

Every handler below says exactly what ``evolve`` says for its event; a state folded here is
equal to ``domain.pairing.fold`` of the same events (``tests/projections/test_pairing_fold.py``
compares them after every event of many lifecycles, and checks that the two know the same
fields and events). A change to ``evolve`` must be made here too: that test fails until it is.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

from domain import events as e
from domain.events import Side
from domain.pairing import (
    MeetingRecord,
    PairingState,
    PendingMeeting,
    Phase,
)
from domain.pairing import (
    _series_key as series_key,  # the reminder series names evolve uses
)
from domain.rules import GroundRules

FIELDS: tuple[str, ...] = tuple(PairingState.model_fields)
_CLOSED = (Phase.COMPLETED, Phase.EXITED)


class Pending(NamedTuple):
    """``PendingMeeting`` as a tuple: same attributes, a tenth of the cost to make."""

    meeting_no: int
    scheduled_at: datetime
    slot_index: int
    reminded: bool = False


class Meeting(NamedTuple):
    """``MeetingRecord`` as a tuple."""

    meeting_no: int
    held: bool
    at: datetime
    minutes: int = 0
    topics: tuple[str, ...] = ()


class PairingFold:
    """One pairing's state while the projector folds it. Same attributes and derived
    properties as :class:`PairingState` (the pending and recent meetings as named tuples with
    the models' attribute names), so ``projections.pairing`` renders either."""

    __slots__ = FIELDS

    pairing_id: str
    cohort_id: str
    mentor_id: str
    mentee_id: str
    rules: GroundRules | None
    started_at: datetime | None
    match_score: float
    rematch_of: str | None
    phase: Phase
    version: int
    goals: dict[Side, tuple[e.Goal, ...]]
    goal_revisions: dict[Side, int]
    goal_progress: dict[str, int]
    next_meeting: Pending | None
    last_meeting_no: int
    last_slot_index: int
    meetings_held: int
    meetings_missed: int
    consecutive_missed: int
    minutes_met: int
    topics_covered: dict[str, int]
    last_activity_at: datetime | None
    recent_meetings: tuple[Meeting, ...]
    nudged: bool
    escalated: bool
    escalations: int
    reminders_sent: dict[str, int]
    midpoint_open: bool
    midpoint_closed: bool
    midpoint_reviews: dict[Side, e.MidpointReviewSubmitted]
    exit_offered_to: tuple[Side, ...]
    final_open: bool
    final_evaluations: dict[Side, e.FinalEvaluationSubmitted]
    exit: e.PairingExited | None
    completed_at: datetime | None

    def __init__(self, state: PairingState | None = None) -> None:
        source = state if state is not None else _EMPTY
        for name in FIELDS:
            setattr(self, name, getattr(source, name))
        pending = source.next_meeting
        self.next_meeting = None if pending is None else Pending(
            pending.meeting_no, pending.scheduled_at, pending.slot_index, pending.reminded)
        self.recent_meetings = tuple(
            Meeting(r.meeting_no, r.held, r.at, r.minutes, r.topics)
            for r in source.recent_meetings)

    def to_state(self) -> PairingState:
        """The domain's model of this state (values are shared, not copied)."""
        values = {name: getattr(self, name) for name in FIELDS}
        pending = self.next_meeting
        values["next_meeting"] = None if pending is None else PendingMeeting(**pending._asdict())
        values["recent_meetings"] = tuple(
            MeetingRecord(**record._asdict()) for record in self.recent_meetings)
        return PairingState.model_construct(**values)

    @property
    def is_closed(self) -> bool:
        return self.phase in _CLOSED

    @property
    def goals_overdue(self) -> bool:
        return self.reminders_sent.get("goals_overdue", 0) > 0 and len(self.goals) < 2

    def apply(self, event: e.DomainEvent) -> None:
        """Fold one event in place, as ``evolve`` does. Containers are replaced, never
        changed, so an unchanged field keeps its object (``projections.pairing`` relies on
        that to skip re-rendering its JSON)."""
        handler = _HANDLERS.get(type(event))
        if handler is None:
            raise TypeError(f"evolve does not know {type(event).__name__}")
        handler(self, event)
        self.version += 1


_EMPTY = PairingState()


def _matched(s: PairingFold, ev: e.PairingMatched) -> None:
    s.pairing_id = ev.pairing_id
    s.cohort_id = ev.cohort_id
    s.mentor_id = ev.mentor_id
    s.mentee_id = ev.mentee_id
    s.rules = ev.ground_rules
    s.started_at = ev.started_at
    s.match_score = ev.match_score
    s.rematch_of = ev.rematch_of
    s.phase = Phase.GOAL_SETTING
    s.last_activity_at = ev.started_at


def _goals_set(s: PairingFold, ev: e.GoalsSet) -> None:
    goals = {**s.goals, ev.side: ev.goals}
    s.goals = goals
    s.goal_revisions = {**s.goal_revisions, ev.side: ev.revision}
    if len(goals) == 2 and s.phase is Phase.GOAL_SETTING:
        s.phase = Phase.ACTIVE


def _scheduled(s: PairingFold, ev: e.MeetingScheduled) -> None:
    s.next_meeting = Pending(ev.meeting_no, ev.scheduled_at, ev.slot_index)
    s.last_meeting_no = ev.meeting_no
    s.last_slot_index = ev.slot_index


def _rescheduled(s: PairingFold, ev: e.MeetingRescheduled) -> None:
    pending = s.next_meeting
    assert pending is not None
    s.next_meeting = Pending(pending.meeting_no, ev.scheduled_at, pending.slot_index, False)


def _held(s: PairingFold, ev: e.MeetingHeld) -> None:
    topics = dict(s.topics_covered)
    for topic in ev.topics:
        topics[topic] = topics.get(topic, 0) + 1
    record = Meeting(ev.meeting_no, True, ev.held_at, ev.minutes, ev.topics)
    s.next_meeting = None
    s.meetings_held += 1
    s.consecutive_missed = 0
    s.nudged = False
    s.escalated = False
    s.minutes_met += ev.minutes
    s.topics_covered = topics
    s.goal_progress = {**s.goal_progress, **ev.goal_progress}
    s.last_activity_at = max(ev.held_at, s.last_activity_at or ev.held_at)
    s.recent_meetings = (*s.recent_meetings, record)[-5:]


def _missed(s: PairingFold, ev: e.MeetingMissed) -> None:
    record = Meeting(ev.meeting_no, False, ev.scheduled_at)
    s.next_meeting = None
    s.meetings_missed += 1
    s.consecutive_missed = ev.consecutive_missed
    s.recent_meetings = (*s.recent_meetings, record)[-5:]


def _reminder(s: PairingFold, ev: e.ReminderSent) -> None:
    if ev.kind is e.ReminderKind.MEETING:
        pending = s.next_meeting
        if pending is not None:
            s.next_meeting = Pending(pending.meeting_no, pending.scheduled_at,
                                     pending.slot_index, True)
    else:
        s.reminders_sent = {**s.reminders_sent, series_key(ev.kind): ev.sequence}


def _nudged(s: PairingFold, ev: e.PairingNudged) -> None:
    s.nudged = True


def _escalated(s: PairingFold, ev: e.PairingEscalated) -> None:
    s.escalated = True
    s.escalations += 1


def _midpoint_opened(s: PairingFold, ev: e.MidpointReviewOpened) -> None:
    s.midpoint_open = True


def _midpoint_submitted(s: PairingFold, ev: e.MidpointReviewSubmitted) -> None:
    s.midpoint_reviews = {**s.midpoint_reviews, ev.side: ev}
    s.goal_progress = {**s.goal_progress, **ev.goal_progress}


def _midpoint_closed(s: PairingFold, ev: e.MidpointReviewClosed) -> None:
    s.midpoint_open = False
    s.midpoint_closed = True


def _exit_offered(s: PairingFold, ev: e.ExitOffered) -> None:
    s.exit_offered_to = tuple(sorted(set(s.exit_offered_to) | set(ev.offered_to)))


def _exited(s: PairingFold, ev: e.PairingExited) -> None:
    s.phase = Phase.EXITED
    s.exit = ev
    s.next_meeting = None


def _final_opened(s: PairingFold, ev: e.FinalEvaluationOpened) -> None:
    s.final_open = True
    s.phase = Phase.FINAL_EVALUATION


def _final_submitted(s: PairingFold, ev: e.FinalEvaluationSubmitted) -> None:
    s.final_evaluations = {**s.final_evaluations, ev.side: ev}


def _completed(s: PairingFold, ev: e.PairingCompleted) -> None:
    s.phase = Phase.COMPLETED
    s.completed_at = ev.completed_at
    s.final_open = False
    s.next_meeting = None


_HANDLERS: dict[type[e.DomainEvent], Callable[[PairingFold, Any], None]] = {
    e.PairingMatched: _matched,
    e.GoalsSet: _goals_set,
    e.MeetingScheduled: _scheduled,
    e.MeetingRescheduled: _rescheduled,
    e.MeetingHeld: _held,
    e.MeetingMissed: _missed,
    e.ReminderSent: _reminder,
    e.PairingNudged: _nudged,
    e.PairingEscalated: _escalated,
    e.MidpointReviewOpened: _midpoint_opened,
    e.MidpointReviewSubmitted: _midpoint_submitted,
    e.MidpointReviewClosed: _midpoint_closed,
    e.ExitOffered: _exit_offered,
    e.PairingExited: _exited,
    e.FinalEvaluationOpened: _final_opened,
    e.FinalEvaluationSubmitted: _final_submitted,
    e.PairingCompleted: _completed,
}
#: The events this fold knows: ``domain.events.PAIRING_EVENTS``, checked by the tests.
KNOWN_EVENTS = frozenset(_HANDLERS)
