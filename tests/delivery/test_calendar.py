"""Calendar invitations and feeds against the domain: the occurrences a calendar client would
expand (``recurring-ical-events``) must be exactly the meetings the pairing's agenda schedules,
computed by running ``domain.pairing`` itself, across daylight-saving changes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import recurring_ical_events
from icalendar import Calendar, Event

from delivery.calendar import Attendee, CalendarBuilder, meeting_series
from domain import commands as c
from domain import events as e
from domain.pairing import PairingState, advance, decide, fold
from domain.rules import Cadence, GroundRules

TOPICS = ("karier", "kepemimpinan")
MENTOR, MENTEE = c.Actor.employee("M1"), c.Actor.employee("E1")
PEOPLE = [Attendee("budi@example.com", "Budi Santoso"), Attendee("sari@example.com", "Sari")]
BUILDER = CalendarBuilder(organizer=Attendee("mentoring@example.com", "Program Mentoring"),
                          program_name="Mentoring 2027", language="id")
STAMP = datetime(2026, 12, 1, tzinfo=UTC)


class Pairing:
    """A pairing driven through the pure domain, keeping its whole stream."""

    def __init__(self, rules: GroundRules, start: datetime, pairing_id: str = "P1") -> None:
        cmd = c.StartPairing(actor=c.Actor.system(), pairing_id=pairing_id, cohort_id="C1",
                             mentor_id="M1", mentee_id="E1", ground_rules=rules)
        self.events: list[e.DomainEvent] = []
        self.state = PairingState()
        self.now = start
        self._take(decide(self.state, cmd, start))

    def _take(self, events: Sequence[e.DomainEvent]) -> None:
        self.events += events
        self.state = fold(events, self.state)

    def run_until(self, until: datetime) -> None:
        self._take(advance(self.state, until))
        self.now = until

    def run_until_meeting(self, meeting_no: int) -> None:
        while self.state.next_meeting is None or self.state.next_meeting.meeting_no < meeting_no:
            self.run_until(self.now + timedelta(hours=6))

    def do(self, command: c.PairingCommand) -> None:
        self._take(decide(self.state, command, self.now))

    def meetings(self, before: datetime | None = None) -> list[datetime]:
        """Every meeting the agenda scheduled, at its (possibly moved) time."""
        at: dict[int, datetime] = {}
        for event in self.events:
            if isinstance(event, e.MeetingScheduled | e.MeetingRescheduled):
                at[event.meeting_no] = event.scheduled_at
        return sorted(t for t in at.values() if before is None or t < before)


def rules(**overrides: object) -> GroundRules:
    return GroundRules(topics=TOPICS, **overrides)  # type: ignore[arg-type]


def occurrences(*files: bytes, until: datetime) -> list[datetime]:
    """What a client shows: the series (first file) with any later occurrence updates."""
    calendar = Calendar.from_ical(files[0])
    for extra in files[1:]:
        for component in Calendar.from_ical(extra).walk("VEVENT"):
            calendar.add_component(component)
    found = recurring_ical_events.of(calendar).between(datetime(2000, 1, 1, tzinfo=UTC), until)
    return sorted(event.start.astimezone(UTC) for event in found)


def only_event(ics: bytes) -> Event:
    [event] = Calendar.from_ical(ics).walk("VEVENT")
    return event


@pytest.mark.parametrize(
    ("zone", "start", "cadence"),
    [
        # Slots are in the program's zone: a program in Amsterdam crosses both changes
        # (25 Oct 2026, 28 Mar 2027) and must stay at 10:00 local, not at a fixed UTC time.
        ("Europe/Amsterdam", datetime(2026, 10, 1, 7, tzinfo=UTC), Cadence.WEEKLY),
        ("America/New_York", datetime(2026, 9, 20, 15, tzinfo=UTC), Cadence.BIWEEKLY),
        ("America/New_York", datetime(2026, 12, 4, 15, tzinfo=UTC), Cadence.MONTHLY),
        # Jakarta has no DST: its participants in Amsterdam see the local hour move instead.
        ("Asia/Jakarta", datetime(2026, 10, 1, 2, tzinfo=UTC), Cadence.WEEKLY),
    ],
)
def test_series_is_exactly_the_scheduled_meetings(
    zone: str, start: datetime, cadence: Cadence
) -> None:
    r = rules(timezone=zone, cadence=cadence, first_meeting_after_days=(
        27 if cadence is Cadence.MONTHLY else 7))
    pairing = Pairing(r, start)
    invite = BUILDER.invitation(meeting_series(pairing.events[:1]), PEOPLE, STAMP)
    pairing.run_until(start + timedelta(days=400))  # to completion: every meeting scheduled

    expected = pairing.meetings()
    assert len(expected) >= 6
    assert occurrences(invite.content, until=start + timedelta(days=800)) == expected
    local = {t.astimezone(ZoneInfo(zone)).time() for t in expected}
    assert local == {r.meeting_time}
    if zone != "Asia/Jakarta":
        assert len({t.utcoffset() for t in (x.astimezone(ZoneInfo(zone)) for x in expected)}) == 2
    else:
        amsterdam = {t.astimezone(ZoneInfo("Europe/Amsterdam")).hour for t in expected}
        assert amsterdam == {4, 5}


def test_monthly_series_clamps_to_month_end_like_the_domain() -> None:
    start = datetime(2027, 1, 4, 2, tzinfo=UTC)  # first meeting on 31 January
    pairing = Pairing(rules(cadence=Cadence.MONTHLY, first_meeting_after_days=27), start)
    invite = BUILDER.invitation(meeting_series(pairing.events), PEOPLE, STAMP)
    pairing.run_until(start + timedelta(days=400))
    days = [t.astimezone(ZoneInfo("Asia/Jakarta")).day for t in pairing.meetings()]
    assert days[:4] == [31, 28, 31, 30]
    assert occurrences(invite.content, until=start + timedelta(days=800)) == pairing.meetings()


def test_open_ended_program_has_no_until_and_keeps_matching() -> None:
    start = datetime(2026, 10, 1, 7, tzinfo=UTC)
    pairing = Pairing(rules(program_length_days=None, timezone="Europe/Amsterdam"), start)
    invite = BUILDER.invitation(meeting_series(pairing.events), PEOPLE, STAMP)
    assert "UNTIL" not in only_event(invite.content)["RRULE"]
    horizon = start + timedelta(days=3 * 365)
    pairing.run_until(horizon)
    assert occurrences(invite.content, until=horizon) == pairing.meetings(before=horizon)


def test_invitation_is_an_itip_request_with_organizer_attendees_and_timezone() -> None:
    start = datetime(2026, 10, 1, 7, tzinfo=UTC)
    pairing = Pairing(rules(timezone="Europe/Amsterdam", meeting_minutes=45), start)
    invite = BUILDER.invitation(meeting_series(pairing.events[:1]), PEOPLE, STAMP)
    calendar = Calendar.from_ical(invite.content)
    assert calendar["METHOD"] == "REQUEST"
    assert invite.content_type == "text/calendar; method=REQUEST; charset=UTF-8"
    assert [tz["TZID"] for tz in calendar.walk("VTIMEZONE")] == ["Europe/Amsterdam"]
    event = only_event(invite.content)
    assert event["UID"] == "pairing-P1@sebaya"
    assert event["SEQUENCE"] == 0
    assert event["DTSTART"].params["TZID"] == "Europe/Amsterdam"
    assert event.end - event.start == timedelta(minutes=45)
    assert str(event["ORGANIZER"]) == "mailto:mentoring@example.com"
    assert [str(a) for a in event["ATTENDEE"]] == ["mailto:budi@example.com",
                                                  "mailto:sari@example.com"]
    assert event["SUMMARY"] == "Sesi mentoring: Budi Santoso & Sari"
    assert "setiap minggu, 45 menit" in event["DESCRIPTION"]
    # Built twice (a retried delivery): the very same bytes.
    again = BUILDER.invitation(meeting_series(pairing.events[:1]), PEOPLE, STAMP)
    assert again.content == invite.content
    english = CalendarBuilder(organizer=Attendee("mentoring@example.com"),
                              program_name="Mentoring 2027", language="en")
    event_en = only_event(english.invitation(meeting_series(pairing.events), PEOPLE,
                                             STAMP).content)
    assert event_en["SUMMARY"] == "Mentoring session: Budi Santoso & Sari"


def test_goals_first_programs_start_the_series_at_the_first_meeting_after_goals() -> None:
    start = datetime(2026, 10, 1, 7, tzinfo=UTC)
    pairing = Pairing(rules(timezone="Europe/Amsterdam", goals_required_before_meetings=True),
                      start)
    assert meeting_series(pairing.events).first_slot is None
    with pytest.raises(ValueError, match="no meeting scheduled"):
        BUILDER.invitation(meeting_series(pairing.events), PEOPLE, STAMP)
    pairing.run_until(start + timedelta(days=10))  # slot 1 (8 Oct) passes without goals
    goal = e.Goal(goal_id="g1", title="Belajar SQL", success_measure="3 laporan")
    pairing.do(c.SetGoals(actor=MENTEE, goals=(goal,)))
    pairing.do(c.SetGoals(actor=MENTOR, goals=(goal.model_copy(update={"goal_id": "g2"}),)))
    series = meeting_series(pairing.events)
    assert series.first_slot == 2
    invite = BUILDER.invitation(series, PEOPLE, STAMP)
    pairing.run_until(start + timedelta(days=400))
    assert occurrences(invite.content, until=start + timedelta(days=800)) == pairing.meetings()


def test_reschedule_updates_that_occurrence_only() -> None:
    start = datetime(2026, 10, 1, 7, tzinfo=UTC)
    pairing = Pairing(rules(timezone="Europe/Amsterdam"), start)
    invite = BUILDER.invitation(meeting_series(pairing.events), PEOPLE, STAMP)
    pairing.run_until_meeting(4)  # 29 October, the first week of winter time
    regular = pairing.state.next_meeting
    assert regular is not None
    moved_to = datetime(2026, 10, 30, 15, 30, tzinfo=ZoneInfo("Europe/Amsterdam"))
    pairing.do(c.RescheduleMeeting(actor=MENTEE, meeting_no=4, new_time=moved_to))
    series = meeting_series(pairing.events)
    update = BUILDER.reschedule(series, 4, PEOPLE, pairing.now)

    event = only_event(update.content)
    assert Calendar.from_ical(update.content)["METHOD"] == "REQUEST"
    assert event["UID"] == only_event(invite.content)["UID"]
    assert event["RECURRENCE-ID"].dt == regular.scheduled_at
    assert event.start == moved_to
    assert event["SEQUENCE"] == series.version > 0
    assert "RRULE" not in event
    pairing.run_until(start + timedelta(days=400))
    assert occurrences(invite.content, update.content,
                       until=start + timedelta(days=800)) == pairing.meetings()
    assert moved_to in pairing.meetings()
    assert regular.scheduled_at not in pairing.meetings()

    # Moved again: same occurrence, higher SEQUENCE.
    later = Pairing(rules(timezone="Europe/Amsterdam"), start)
    later.run_until_meeting(4)
    later.do(c.RescheduleMeeting(actor=MENTEE, meeting_no=4, new_time=moved_to))
    first = only_event(BUILDER.reschedule(meeting_series(later.events), 4, PEOPLE, STAMP)
                       .content)
    later.do(c.RescheduleMeeting(actor=MENTOR, meeting_no=4,
                                 new_time=moved_to + timedelta(hours=1)))
    second = only_event(BUILDER.reschedule(meeting_series(later.events), 4, PEOPLE, STAMP)
                        .content)
    assert second["RECURRENCE-ID"].dt == first["RECURRENCE-ID"].dt
    assert second["SEQUENCE"] > first["SEQUENCE"]


def test_exit_cancels_the_series_with_a_higher_sequence() -> None:
    start = datetime(2026, 10, 1, 7, tzinfo=UTC)
    pairing = Pairing(rules(timezone="Europe/Amsterdam"), start)
    pairing.run_until_meeting(3)
    pairing.do(c.RescheduleMeeting(actor=MENTEE, meeting_no=3,
                                   new_time=pairing.state.next_meeting.scheduled_at  # type: ignore[union-attr]
                                   + timedelta(hours=2)))
    pairing.run_until(pairing.now + timedelta(days=1))
    pairing.do(c.RequestExit(actor=MENTOR, reason=e.ExitReason.NOT_A_FIT))
    series = meeting_series(pairing.events)
    cancel = BUILDER.cancellation(series, PEOPLE, pairing.now)
    calendar = Calendar.from_ical(cancel.content)
    assert calendar["METHOD"] == "CANCEL"
    assert cancel.content_type.startswith("text/calendar; method=CANCEL")
    event = only_event(cancel.content)
    assert event["UID"] == "pairing-P1@sebaya"
    assert event["STATUS"] == "CANCELLED"
    assert "RECURRENCE-ID" not in event
    assert event["SEQUENCE"] == series.version
    assert event["SEQUENCE"] > max(m.sequence for m in series.moved.values())
    # Nothing about why: the cancellation is as neutral as the e-mail.
    assert "not_a_fit" not in cancel.content.decode()

    with pytest.raises(ValueError, match="has not ended"):
        BUILDER.cancellation(meeting_series(pairing.events[:-1]), PEOPLE, pairing.now)


def test_completion_cancels_too() -> None:
    start = datetime(2026, 10, 1, 7, tzinfo=UTC)
    pairing = Pairing(rules(timezone="Europe/Amsterdam"), start)
    pairing.run_until(start + timedelta(days=400))
    assert isinstance(pairing.events[-1], e.PairingCompleted)
    event = only_event(BUILDER.cancellation(meeting_series(pairing.events), PEOPLE,
                                            STAMP).content)
    assert event["STATUS"] == "CANCELLED"


def test_feed_shows_every_pairing_of_a_participant_as_it_stands() -> None:
    start = datetime(2026, 10, 1, 7, tzinfo=UTC)
    first = Pairing(rules(timezone="Europe/Amsterdam"), start, pairing_id="P1")
    first.run_until_meeting(3)
    moved_to = first.state.next_meeting.scheduled_at + timedelta(days=1)  # type: ignore[union-attr]
    first.do(c.RescheduleMeeting(actor=MENTEE, meeting_no=3, new_time=moved_to))
    first.run_until_meeting(5)
    first.do(c.RequestExit(actor=MENTEE, reason=e.ExitReason.SCHEDULE_CONFLICT))
    exited_at = first.now
    # The rematch starts after the cool-off, in New York, with a biweekly rhythm.
    second_start = exited_at + timedelta(days=8)
    second = Pairing(rules(timezone="America/New_York", cadence=Cadence.BIWEEKLY),
                     second_start, pairing_id="P2")
    second.run_until(second_start + timedelta(days=400))

    feed = BUILDER.feed("Sari", [(meeting_series(second.events), PEOPLE),
                                 (meeting_series(first.events), PEOPLE)], STAMP)
    calendar = Calendar.from_ical(feed)
    assert calendar["METHOD"] == "PUBLISH"
    assert sorted(tz["TZID"] for tz in calendar.walk("VTIMEZONE")) == [
        "America/New_York", "Europe/Amsterdam"]
    shown = occurrences(feed, until=second_start + timedelta(days=800))
    # The exited pairing keeps its past meetings (with the move) and nothing after the exit.
    assert shown == first.meetings(before=exited_at) + second.meetings()
    assert moved_to in shown
    # A meeting moved to after the exit never happened: it is not in the feed either.
    late = Pairing(rules(timezone="Europe/Amsterdam"), start, pairing_id="P3")
    late.run_until_meeting(2)
    late.do(c.RescheduleMeeting(actor=MENTEE, meeting_no=2, new_time=late.now
                                + timedelta(days=10)))
    late.do(c.RequestExit(actor=MENTOR, reason=e.ExitReason.WORKLOAD))
    late_feed = BUILDER.feed("Sari", [(meeting_series(late.events), PEOPLE)], STAMP)
    assert occurrences(late_feed, until=start + timedelta(days=800)) == late.meetings(
        before=late.now)
    assert feed == BUILDER.feed("Sari", [(meeting_series(first.events), PEOPLE),
                                         (meeting_series(second.events), PEOPLE)], STAMP)


def test_feed_leaves_out_passed_over_slots() -> None:
    # A meeting moved past the next regular slot and held late: the domain skips that slot.
    start = datetime(2026, 10, 1, 7, tzinfo=UTC)
    pairing = Pairing(rules(timezone="Europe/Amsterdam", meeting_log_grace_hours=336), start)
    first = pairing.state.next_meeting
    assert first is not None
    pairing.run_until(first.scheduled_at + timedelta(hours=2))
    pairing.do(c.LogMeeting(actor=MENTEE, meeting_no=1, held=True, minutes=60,
                            topics=("karier",)))
    pending = pairing.state.next_meeting
    assert pending is not None
    moved_to = pending.scheduled_at + timedelta(days=9)
    pairing.do(c.RescheduleMeeting(actor=MENTEE, meeting_no=2, new_time=moved_to))
    pairing.run_until(moved_to + timedelta(hours=2))
    pairing.do(c.LogMeeting(actor=MENTEE, meeting_no=2, held=True, minutes=60,
                            topics=("karier",)))
    assert meeting_series(pairing.events).skipped == (3,)
    # Later, nobody logs: with a 14-day grace each missed meeting passes over the next slots.
    pairing.run_until(start + timedelta(days=400))
    assert len(meeting_series(pairing.events).skipped) > 5
    feed = BUILDER.feed("Sari", [(meeting_series(pairing.events), PEOPLE)], STAMP)
    assert occurrences(feed, until=start + timedelta(days=800)) == pairing.meetings()
