"""Given/when/then tests of the pure pairing core: no Temporal, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain import commands as c
from domain import errors
from domain import events as e
from domain.pairing import PairingState, Phase, advance, agenda, decide, fold, next_due
from domain.rules import Cadence, EscalationLadder, GroundRules

T0 = datetime(2027, 1, 4, 2, 0, tzinfo=UTC)
MENTOR, MENTEE = c.Actor.employee("M1"), c.Actor.employee("E1")
TOPICS = ("karier", "keterampilan IT", "kepemimpinan")


def rules(**overrides: object) -> GroundRules:
    return GroundRules(topics=TOPICS, **overrides)  # type: ignore[arg-type]


def started(r: GroundRules | None = None) -> PairingState:
    cmd = c.StartPairing(actor=c.Actor.system(), pairing_id="P1", cohort_id="C1",
                         mentor_id="M1", mentee_id="E1", ground_rules=r or rules())
    return fold(decide(PairingState(), cmd, T0))


def goal(goal_id: str) -> e.Goal:
    return e.Goal(goal_id=goal_id, title="Belajar SQL", success_measure="3 laporan sendiri")


def with_goals(s: PairingState, now: datetime = T0) -> PairingState:
    s = fold(decide(s, c.SetGoals(actor=MENTEE, goals=(goal("it-1"),)), now), s)
    return fold(decide(s, c.SetGoals(actor=MENTOR, goals=(goal("lead-1"),)), now), s)


def run_clock(s: PairingState, until: datetime) -> tuple[PairingState, list[e.DomainEvent]]:
    produced = advance(s, until)
    return fold(produced, s), produced


def test_start_schedules_first_meeting_at_local_time() -> None:
    s = started()
    assert s.phase is Phase.GOAL_SETTING
    assert s.next_meeting is not None
    # 10:00 in Asia/Jakarta (UTC+7) a week after the start.
    assert s.next_meeting.scheduled_at == datetime(2027, 1, 11, 3, 0, tzinfo=UTC)


def test_start_twice_is_refused() -> None:
    s = started()
    with pytest.raises(errors.AlreadyStarted):
        decide(s, c.StartPairing(actor=c.Actor.system(), pairing_id="P1", cohort_id="C1",
                                 mentor_id="M1", mentee_id="E1", ground_rules=rules()), T0)


def test_both_sides_set_their_own_goals_then_active() -> None:
    s = started()
    s = fold(decide(s, c.SetGoals(actor=MENTEE, goals=(goal("it-1"),)), T0), s)
    assert s.phase is Phase.GOAL_SETTING
    s = fold(decide(s, c.SetGoals(actor=MENTOR, goals=(goal("lead-1"),)), T0), s)
    assert s.phase is Phase.ACTIVE
    assert set(s.goals) == {e.Side.MENTOR, e.Side.MENTEE}


def test_goal_id_clash_across_sides_is_refused() -> None:
    s = fold(decide(started(), c.SetGoals(actor=MENTEE, goals=(goal("g1"),)), T0), started())
    with pytest.raises(errors.InvalidCommand, match="already used"):
        decide(s, c.SetGoals(actor=MENTOR, goals=(goal("g1"),)), T0)


def test_outsider_cannot_act() -> None:
    with pytest.raises(errors.NotAParticipant):
        decide(started(), c.SetGoals(actor=c.Actor.employee("X9"), goals=(goal("g"),)), T0)


def test_goal_reminders_fire_and_stop_once_goals_set() -> None:
    s = started()
    s, produced = run_clock(s, T0 + timedelta(days=13))
    kinds = [ev.kind for ev in produced if isinstance(ev, e.ReminderSent)
             and ev.kind is e.ReminderKind.GOAL_DEADLINE]
    assert len(kinds) == 2  # 3 days and 1 day before the deadline
    s = with_goals(s, T0 + timedelta(days=13))
    s, produced = run_clock(s, T0 + timedelta(days=40))
    assert not [ev for ev in produced if isinstance(ev, e.ReminderSent)
                and ev.kind in (e.ReminderKind.GOAL_DEADLINE, e.ReminderKind.GOAL_OVERDUE)]


def test_overdue_goal_reminders_are_bounded() -> None:
    s, produced = run_clock(started(), T0 + timedelta(days=60))
    overdue = [ev for ev in produced if isinstance(ev, e.ReminderSent)
               and ev.kind is e.ReminderKind.GOAL_OVERDUE]
    assert [ev.sequence for ev in overdue] == [1, 2, 3]
    assert s.goals_overdue


def test_meeting_with_unknown_topic_is_refused() -> None:
    s = with_goals(started())
    with pytest.raises(errors.UnknownTopic, match="astrologi"):
        decide(s, c.LogMeeting(actor=MENTEE, meeting_no=1, held=True, topics=("astrologi",)),
               T0 + timedelta(days=7, hours=2))


def test_goals_required_first() -> None:
    s = started(rules(goals_required_before_meetings=True))
    assert s.next_meeting is None
    with pytest.raises(errors.GoalsRequiredFirst):
        decide(s, c.LogMeeting(actor=MENTEE, meeting_no=1, held=True, topics=("karier",)), T0)
    s = with_goals(s, T0 + timedelta(days=2))
    assert s.next_meeting is not None and s.next_meeting.meeting_no == 1


def test_missed_meetings_nudge_then_escalate() -> None:
    s = started(rules(escalation=EscalationLadder(nudge_after_missed=1, escalate_after_missed=3)))
    s, produced = run_clock(s, T0 + timedelta(days=7 * 3 + 4))
    types = [type(ev).__name__ for ev in produced]
    assert types.count("MeetingMissed") == 3
    assert types.count("PairingNudged") == 1
    assert types.count("PairingEscalated") == 1
    assert types.index("PairingNudged") < types.index("PairingEscalated")
    assert s.consecutive_missed == 3 and s.escalated


def test_held_meeting_resets_the_streak_and_schedules_the_next() -> None:
    s = with_goals(started())
    at = T0 + timedelta(days=7, hours=2)
    s = fold(decide(s, c.LogMeeting(actor=MENTOR, meeting_no=1, held=True, topics=("karier",),
                                    goal_progress={"it-1": 30}), at), s)
    assert s.meetings_held == 1 and s.goal_progress == {"it-1": 30}
    assert s.next_meeting is not None and s.next_meeting.meeting_no == 2
    assert s.next_meeting.scheduled_at == datetime(2027, 1, 18, 3, 0, tzinfo=UTC)
    with pytest.raises(errors.AlreadySubmitted):
        decide(s, c.LogMeeting(actor=MENTOR, meeting_no=1, held=True, topics=("karier",)), at)


def test_reschedule_rearms_the_reminder() -> None:
    s = with_goals(started())
    s, _ = run_clock(s, T0 + timedelta(days=6, hours=2))  # meeting reminder sent
    assert s.next_meeting is not None and s.next_meeting.reminded
    new_time = s.next_meeting.scheduled_at + timedelta(days=2)
    s = fold(decide(s, c.RescheduleMeeting(actor=MENTEE, meeting_no=1, new_time=new_time),
                    T0 + timedelta(days=6, hours=3)), s)
    assert s.next_meeting is not None
    assert s.next_meeting.scheduled_at == new_time and not s.next_meeting.reminded
    assert next_due(s) == new_time - timedelta(hours=24)


def test_midpoint_dont_continue_offers_no_fault_exit() -> None:
    s = with_goals(started())
    s, _ = run_clock(s, T0 + timedelta(days=91, hours=1))
    assert s.midpoint_open
    s = fold(decide(s, c.SubmitMidpointReview(actor=MENTEE, satisfaction=2,
                                              wants_to_continue=False), T0 + timedelta(days=92)), s)
    assert s.exit_offered_to == (e.Side.MENTEE,)
    with pytest.raises(errors.AlreadySubmitted):
        decide(s, c.SubmitMidpointReview(actor=MENTEE, satisfaction=2, wants_to_continue=False),
               T0 + timedelta(days=92))
    out = decide(s, c.RequestExit(actor=MENTEE, reason=e.ExitReason.NOT_A_FIT),
                 T0 + timedelta(days=92))
    assert isinstance(out[0], e.PairingExited) and out[0].initiated_by is e.ExitInitiator.MENTEE


@pytest.mark.parametrize("days", [0, 10, 50, 95, 185])
def test_no_fault_exit_in_every_phase(days: int) -> None:
    s = started()
    if days >= 10:
        s = with_goals(s)
    s, _ = run_clock(s, T0 + timedelta(days=days))
    phase = s.phase
    s = fold(decide(s, c.RequestExit(actor=c.Actor.ops("ops-ani"), reason=e.ExitReason.WORKLOAD),
                    T0 + timedelta(days=days)), s)
    assert s.phase is Phase.EXITED and s.exit is not None
    assert s.exit.phase_at_exit == phase.value
    with pytest.raises(errors.PairingClosed):
        decide(s, c.SetGoals(actor=MENTEE, goals=(goal("x1"),)), T0 + timedelta(days=days))
    assert agenda(s) == []


def test_final_evaluation_once_per_side_then_completed() -> None:
    s = with_goals(started())
    end = T0 + timedelta(days=182)
    s, _ = run_clock(s, end)
    assert s.phase is Phase.FINAL_EVALUATION
    ev = c.SubmitFinalEvaluation(actor=MENTOR, relationship_rating=5, program_rating=4,
                                 learned="Cara memberi umpan balik", would_recommend=True,
                                 goal_attainment={"lead-1": 80})
    s = fold(decide(s, ev, end), s)
    with pytest.raises(errors.AlreadySubmitted):
        decide(s, ev, end)
    s = fold(decide(s, ev.model_copy(update={"actor": MENTEE}), end), s)
    assert s.phase is Phase.COMPLETED


def test_final_window_closing_completes_without_evaluations() -> None:
    s, produced = run_clock(with_goals(started()), T0 + timedelta(days=182 + 15))
    assert s.phase is Phase.COMPLETED
    assert isinstance(produced[-1], e.PairingCompleted)
    assert produced[-1].evaluations_received == ()


def test_inactivity_auto_concludes() -> None:
    r = rules(escalation=EscalationLadder(auto_conclude_after_inactive_days=30))
    s, _ = run_clock(started(r), T0 + timedelta(days=31))
    assert s.phase is Phase.EXITED and s.exit is not None
    assert s.exit.reason is e.ExitReason.INACTIVITY


def test_monthly_cadence_clamps_to_month_end() -> None:
    r = rules(cadence=Cadence.MONTHLY, first_meeting_after_days=27)
    start = datetime(2027, 1, 4, 2, 0, tzinfo=UTC)  # first meeting 31 Jan
    slots = [r.meeting_slot(start, k).date().isoformat() for k in (1, 2, 3)]
    assert slots == ["2027-01-31", "2027-02-28", "2027-03-31"]


def test_open_ended_program_has_no_end() -> None:
    s = with_goals(started(rules(program_length_days=None)))
    s, _ = run_clock(s, T0 + timedelta(days=3 * 365))
    assert s.phase is Phase.ACTIVE
    assert s.meetings_missed > 150


def test_naive_now_is_a_bug() -> None:
    with pytest.raises(ValueError):
        decide(started(), c.AdvanceClock(actor=c.Actor.system()), datetime(2027, 1, 5))
