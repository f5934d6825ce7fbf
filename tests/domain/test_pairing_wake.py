"""When a pairing workflow has to wake: a missed meeting waits for the next meeting's
reminder (one timer a week), and waiting changes none of the decided events."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain import commands as c
from domain import errors
from domain import events as e
from domain.pairing import Phase, advance, decide, fold, next_due, next_milestone, next_wake
from tests.domain.test_pairing import MENTEE, rules, run_clock, started, with_goals


def test_a_missed_meeting_is_noticed_with_the_next_meetings_reminder() -> None:
    r = rules()
    s = with_goals(started(r))
    pending = s.next_meeting
    assert pending is not None
    s, _ = run_clock(s, r.reminder_at(pending.scheduled_at))
    deadline = r.log_deadline(pending.scheduled_at)
    assert next_due(s) == deadline
    following = r.meeting_slot(s.started_at, pending.slot_index + 1)  # type: ignore[arg-type]
    assert next_wake(s) == r.reminder_at(following)

    # Caught up at the later time, the events are those decided at the deadline itself,
    # followed by the next meeting's reminder.
    at_deadline = advance(s, deadline)
    at_wake = advance(s, r.reminder_at(following))
    assert at_wake[: len(at_deadline)] == at_deadline
    assert isinstance(at_deadline[0], e.MeetingMissed)
    assert isinstance(at_deadline[-1], e.MeetingScheduled)
    assert at_deadline[-1].scheduled_at == following
    assert [type(ev) for ev in at_wake[len(at_deadline):]] == [e.ReminderSent]


def test_a_log_after_the_deadline_is_refused_though_the_miss_is_not_recorded_yet() -> None:
    r = rules()
    s = with_goals(started(r))
    pending = s.next_meeting
    assert pending is not None
    s, _ = run_clock(s, r.reminder_at(pending.scheduled_at))
    late = r.log_deadline(pending.scheduled_at) + timedelta(hours=1)
    assert s.next_meeting == pending.model_copy(update={"reminded": True})
    # What the workflow does for an update: catch up with the clock, then decide.
    caught_up = fold(advance(s, late), s)
    with pytest.raises(errors.AlreadySubmitted):
        decide(caught_up, c.LogMeeting(actor=MENTEE, meeting_no=pending.meeting_no, held=True,
                                       topics=("karier",)), late)


def test_a_missed_last_meeting_is_noticed_when_the_final_evaluation_opens() -> None:
    r = rules()
    s = with_goals(started(r))
    end = r.program_end(s.started_at)  # type: ignore[arg-type]
    assert end is not None
    # Miss meetings until the pending one is the program's last.
    while True:
        pending = s.next_meeting
        assert pending is not None
        if r.meeting_slot(s.started_at, pending.slot_index + 1) >= end:  # type: ignore[arg-type]
            break
        s, _ = run_clock(s, r.log_deadline(pending.scheduled_at))
    s, _ = run_clock(s, r.reminder_at(pending.scheduled_at))
    deadline = r.log_deadline(pending.scheduled_at)
    assert deadline < end
    assert next_due(s) == deadline
    assert next_wake(s) == end
    s, produced = run_clock(s, end)
    assert isinstance(produced[0], e.MeetingMissed)
    assert isinstance(produced[-2], e.FinalEvaluationOpened)


def test_the_next_milestone_moves_with_the_stage_not_with_each_reminder() -> None:
    """What the workflow publishes as SebayaNextDue: the end of the stage the pairing is in
    (ADR 0006), so its history carries an upsert per stage, not per week."""
    r = rules()
    s = started(r)
    begun = s.started_at
    assert begun is not None
    assert next_milestone(s) == r.goal_deadline(begun)
    s = with_goals(s)
    assert next_milestone(s) == r.midpoint_opens(begun)
    # Weeks of reminders and meetings move next_due every time, the milestone not at all.
    dues, milestones = set(), set()
    opens = r.midpoint_opens(begun)
    assert opens is not None
    at = begun
    while at < opens - timedelta(days=1):
        at += timedelta(days=1)
        s, _ = run_clock(s, at)
        dues.add(next_due(s))
        milestones.add(next_milestone(s))
    assert len(dues) > 5 and milestones == {opens}
    s, _ = run_clock(s, opens)
    assert s.midpoint_open and next_milestone(s) == r.midpoint_closes(begun)
    closes = r.midpoint_closes(begun)
    assert closes is not None
    s, _ = run_clock(s, closes)
    assert s.midpoint_closed and next_milestone(s) == r.program_end(begun)
    end = r.program_end(begun)
    assert end is not None
    s, _ = run_clock(s, end)
    assert s.phase is Phase.FINAL_EVALUATION
    assert next_milestone(s) == r.final_evaluation_closes(begun)
    s, _ = run_clock(s, r.final_evaluation_closes(begun))  # type: ignore[arg-type]
    assert s.is_closed and next_milestone(s) is None
