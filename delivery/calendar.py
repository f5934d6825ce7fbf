"""Calendar files for a pairing's meetings: iTIP invitations (RFC 5546) and a feed (RFC 5545).

Pure: everything is derived from the pairing's own events (:func:`meeting_series`) plus the
contacts and the instant the caller passes in, so a retried delivery produces byte-identical
files. One recurring series per pairing, with a stable UID:

- at the start, ``METHOD:REQUEST`` with an RRULE from the ground rules' cadence, DTSTART in
  the program's time zone (with its VTIMEZONE, so a weekly 10:00 stays 10:00 across daylight
  saving, as ``GroundRules.meeting_slot`` does) and UNTIL just before the program ends;
- a rescheduled meeting: ``METHOD:REQUEST`` of that one occurrence (RECURRENCE-ID = its
  regular slot);
- an exit or the end of the program: ``METHOD:CANCEL`` of the series.

SEQUENCE is the stream version of the event that caused the message (0 for the first
invitation): it only grows, and a retry derives the same number.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

from icalendar import Calendar, Event, Timezone, vCalAddress, vRecur
from pydantic import BaseModel, ConfigDict

from domain import events as e
from domain.rules import Cadence, GroundRules

PRODID = "-//Sebaya//Peer mentoring//EN"
UID_DOMAIN = "sebaya"
# An open-ended program's VTIMEZONE must still describe the daylight-saving rules for as long
# as the series may run; clients refetch the feed, but an e-mailed invitation is final.
OPEN_ENDED_TZ_YEARS = 15


class MovedMeeting(BaseModel):
    """A meeting moved away from its regular slot (the latest move wins)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    meeting_no: int
    slot_index: int
    scheduled_at: datetime
    sequence: int


class SeriesEnd(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    at: datetime
    sequence: int
    exited: bool


class MeetingSeries(BaseModel):
    """A pairing's meetings as a calendar sees them, folded from its events."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pairing_id: str
    cohort_id: str
    mentor_id: str
    mentee_id: str
    rules: GroundRules
    started_at: datetime
    # Slot of the first meeting; None while meetings wait for both sides' goals.
    first_slot: int | None
    moved: dict[int, MovedMeeting] = {}
    # Regular slots the pairing passed over (a meeting moved or logged past the next slot).
    skipped: tuple[int, ...] = ()
    ended: SeriesEnd | None = None
    version: int

    @property
    def uid(self) -> str:
        return f"pairing-{self.pairing_id}@{UID_DOMAIN}"

    def slot(self, index: int) -> datetime:
        return self.rules.meeting_slot(self.started_at, index)

    def moved_meeting(self, meeting_no: int) -> MovedMeeting | None:
        return next((m for m in self.moved.values() if m.meeting_no == meeting_no), None)


def meeting_series(events: Iterable[e.DomainEvent]) -> MeetingSeries:
    """Fold a pairing's stream (from version 1, in order) into its :class:`MeetingSeries`."""
    base: e.PairingMatched | None = None
    first_slot: int | None = None
    last_slot = 0
    slot_of: dict[int, int] = {}
    moved: dict[int, MovedMeeting] = {}
    skipped: list[int] = []
    ended: SeriesEnd | None = None
    version = 0
    for version, event in enumerate(events, start=1):
        match event:
            case e.PairingMatched():
                base = event
            case e.MeetingScheduled():
                if first_slot is None:
                    first_slot = event.slot_index
                else:
                    skipped += range(last_slot + 1, event.slot_index)
                last_slot = event.slot_index
                slot_of[event.meeting_no] = event.slot_index
            case e.MeetingRescheduled():
                slot = slot_of[event.meeting_no]
                moved[slot] = MovedMeeting(meeting_no=event.meeting_no, slot_index=slot,
                                           scheduled_at=event.scheduled_at, sequence=version)
            case e.PairingExited():
                ended = SeriesEnd(at=event.exited_at, sequence=version, exited=True)
            case e.PairingCompleted():
                ended = SeriesEnd(at=event.completed_at, sequence=version, exited=False)
    if base is None:
        raise ValueError("a pairing's events start with PairingMatched")
    if first_slot is None and not base.ground_rules.goals_required_before_meetings:
        # The same decision that records the match schedules the first meeting; a delivery of
        # the match (version 1) comes before that event, so take the slot the domain takes.
        first_slot = _first_slot_after(base.ground_rules, base.started_at)
    return MeetingSeries(
        pairing_id=base.pairing_id, cohort_id=base.cohort_id, mentor_id=base.mentor_id,
        mentee_id=base.mentee_id,
        rules=base.ground_rules, started_at=base.started_at, first_slot=first_slot,
        moved=moved, skipped=tuple(skipped), ended=ended, version=version,
    )


def _first_slot_after(rules: GroundRules, started_at: datetime) -> int:
    index = 1
    while rules.meeting_slot(started_at, index) <= started_at:
        index += 1
    return index


@dataclass(frozen=True)
class Attendee:
    """Someone on the invitation. Without an e-mail (erased, unknown) they are left out."""

    email: str
    name: str | None = None


@dataclass(frozen=True)
class CalendarFile:
    method: str
    content: bytes
    filename: str = "invite.ics"

    @property
    def content_type(self) -> str:
        return f"text/calendar; method={self.method}; charset=UTF-8"


@dataclass(frozen=True)
class _Texts:
    summary: str
    summary_pair: str
    cadence: dict[Cadence, str]
    series: str
    moved: str
    ended: str
    feed: str


_TEXTS = {
    "id": _Texts(
        summary="Sesi mentoring",
        summary_pair="Sesi mentoring: {mentor} & {mentee}",
        cadence={Cadence.WEEKLY: "setiap minggu", Cadence.BIWEEKLY: "setiap dua minggu",
                 Cadence.MONTHLY: "setiap bulan"},
        series="Pertemuan rutin program {program}: {cadence}, {minutes} menit. "
               "Setelah bertemu, catat pertemuan di Sebaya.",
        moved="Pertemuan ke-{n} dipindahkan ke waktu ini.",
        ended="Pasangan mentoring ini telah berakhir; pertemuan berikutnya dibatalkan.",
        feed="Sesi mentoring {name}",
    ),
    "en": _Texts(
        summary="Mentoring session",
        summary_pair="Mentoring session: {mentor} & {mentee}",
        cadence={Cadence.WEEKLY: "every week", Cadence.BIWEEKLY: "every two weeks",
                 Cadence.MONTHLY: "every month"},
        series="Regular meeting of the {program} program: {cadence}, {minutes} minutes. "
               "After you meet, log the meeting in Sebaya.",
        moved="Meeting {n} was moved to this time.",
        ended="This mentoring pairing has ended; its remaining meetings are cancelled.",
        feed="Mentoring sessions of {name}",
    ),
}


class CalendarBuilder:
    """Builds the calendar files of one program: its mailbox organises every meeting, its
    language names them."""

    def __init__(self, *, organizer: Attendee, program_name: str, language: str) -> None:
        self._organizer = organizer
        self._program = program_name
        self._language = str(language)
        self._t = _TEXTS.get(self._language, _TEXTS["en"])

    # --- the three iTIP messages --------------------------------------------------------------

    def invitation(self, series: MeetingSeries, attendees: Sequence[Attendee],
                   dtstamp: datetime) -> CalendarFile:
        """``METHOD:REQUEST`` of the whole series (SEQUENCE 0)."""
        if series.first_slot is None:
            raise ValueError(f"pairing {series.pairing_id} has no meeting scheduled yet")
        cal = self._calendar("REQUEST")
        cal.add_component(self._master(series, attendees, dtstamp, sequence=0))
        return self._finish(cal, series, "REQUEST")

    def reschedule(self, series: MeetingSeries, meeting_no: int, attendees: Sequence[Attendee],
                   dtstamp: datetime) -> CalendarFile:
        """``METHOD:REQUEST`` of the one occurrence that moved."""
        moved = series.moved_meeting(meeting_no)
        if moved is None:
            raise ValueError(f"meeting {meeting_no} of {series.pairing_id} was not moved")
        cal = self._calendar("REQUEST")
        cal.add_component(self._moved(series, moved, attendees, dtstamp))
        return self._finish(cal, series, "REQUEST")

    def cancellation(self, series: MeetingSeries, attendees: Sequence[Attendee],
                     dtstamp: datetime) -> CalendarFile:
        """``METHOD:CANCEL`` of the series, once the pairing ended (exit or completion)."""
        if series.ended is None:
            raise ValueError(f"pairing {series.pairing_id} has not ended")
        cal = self._calendar("CANCEL")
        event = self._master(series, attendees, dtstamp, sequence=series.ended.sequence)
        event["STATUS"] = "CANCELLED"
        event["DESCRIPTION"] = self._t.ended
        cal.add_component(event)
        return self._finish(cal, series, "CANCEL")

    # --- the feed -----------------------------------------------------------------------------

    def feed(self, owner_name: str, entries: Sequence[tuple[MeetingSeries, Sequence[Attendee]]],
             dtstamp: datetime) -> bytes:
        """One VCALENDAR (``METHOD:PUBLISH``) with every series of one participant.

        It shows the calendar as it stands: moved meetings as overrides, passed-over slots as
        EXDATEs, and an exited pairing's series cut at the exit (its past meetings stay).
        """
        cal = self._calendar("PUBLISH")
        cal.add("X-WR-CALNAME", self._t.feed.format(name=owner_name))
        zones: dict[str, tuple[date, date]] = {}
        for series, attendees in sorted(entries, key=lambda x: (x[0].started_at,
                                                                x[0].pairing_id)):
            if series.first_slot is None:
                continue
            sequence = series.ended.sequence if series.ended and series.ended.exited else 0
            master = self._master(series, attendees, dtstamp, sequence=sequence,
                                  until=series.ended.at if series.ended
                                  and series.ended.exited else None)
            for slot in series.skipped:
                master.add("EXDATE", series.slot(slot).astimezone(series.rules.zone))
            cal.add_component(master)
            for moved in sorted(series.moved.values(), key=lambda m: m.slot_index):
                if series.ended and series.ended.exited and moved.scheduled_at >= series.ended.at:
                    continue  # it was still to come when the pair parted: it never happened
                cal.add_component(self._moved(series, moved, attendees, dtstamp))
            first, last = _zone_span(series)
            known = zones.get(series.rules.timezone)
            zones[series.rules.timezone] = (
                (min(first, known[0]), max(last, known[1])) if known else (first, last)
            )
        for index, (tzid, (first, last)) in enumerate(sorted(zones.items())):
            cal.subcomponents.insert(index, _vtimezone(tzid, first, last))
        return cal.to_ical()

    # --- building blocks ----------------------------------------------------------------------

    def _calendar(self, method: str) -> Calendar:
        cal = Calendar()
        cal.add("PRODID", PRODID)
        cal.add("VERSION", "2.0")
        cal.add("CALSCALE", "GREGORIAN")
        cal.add("METHOD", method)
        return cal

    def _finish(self, cal: Calendar, series: MeetingSeries, method: str) -> CalendarFile:
        first, last = _zone_span(series)
        cal.subcomponents.insert(0, _vtimezone(series.rules.timezone, first, last))
        return CalendarFile(method=method, content=cal.to_ical())

    def _event(self, series: MeetingSeries, attendees: Sequence[Attendee], dtstamp: datetime,
               sequence: int) -> Event:
        event = Event()
        event.add("UID", series.uid)
        event.add("DTSTAMP", dtstamp.astimezone(UTC))
        event.add("SEQUENCE", sequence)
        names = [a.name for a in attendees]
        if len(names) == 2 and all(names):
            summary = self._t.summary_pair.format(mentor=names[0], mentee=names[1])
        else:
            summary = self._t.summary
        event.add("SUMMARY", summary)
        organizer = vCalAddress(f"mailto:{self._organizer.email}")
        organizer.params["CN"] = self._organizer.name or self._program
        event.add("ORGANIZER", organizer)
        for attendee in attendees:
            address = vCalAddress(f"mailto:{attendee.email}")
            if attendee.name:
                address.params["CN"] = attendee.name
            address.params["ROLE"] = "REQ-PARTICIPANT"
            address.params["PARTSTAT"] = "NEEDS-ACTION"
            address.params["RSVP"] = "TRUE"
            event.add("ATTENDEE", address)
        event.add("STATUS", "CONFIRMED")
        event.add("TRANSP", "OPAQUE")
        return event

    def _master(self, series: MeetingSeries, attendees: Sequence[Attendee], dtstamp: datetime,
                *, sequence: int, until: datetime | None = None) -> Event:
        assert series.first_slot is not None
        rules = series.rules
        start = series.slot(series.first_slot).astimezone(rules.zone)
        event = self._event(series, attendees, dtstamp, sequence)
        event.add("DTSTART", start)
        event.add("DTEND", (start + rules.meeting_duration()).astimezone(rules.zone))
        event.add("RRULE", recurrence(series, until=until))
        event.add("DESCRIPTION", self._t.series.format(
            program=self._program, cadence=self._t.cadence[rules.cadence],
            minutes=rules.meeting_minutes))
        return event

    def _moved(self, series: MeetingSeries, moved: MovedMeeting, attendees: Sequence[Attendee],
               dtstamp: datetime) -> Event:
        zone = series.rules.zone
        start = moved.scheduled_at.astimezone(zone)
        event = self._event(series, attendees, dtstamp, moved.sequence)
        event.add("RECURRENCE-ID", series.slot(moved.slot_index).astimezone(zone))
        event.add("DTSTART", start)
        event.add("DTEND", (start + series.rules.meeting_duration()).astimezone(zone))
        event.add("DESCRIPTION", self._t.moved.format(n=moved.meeting_no))
        return event


def recurrence(series: MeetingSeries, *, until: datetime | None = None) -> vRecur:
    """The RRULE that yields exactly ``GroundRules.meeting_slot`` from the first slot on,
    ending before the program ends (or ``until``, if earlier)."""
    rules = series.rules
    rule: dict[str, object] = {}
    if rules.cadence is Cadence.MONTHLY:
        rule["FREQ"] = "MONTHLY"
        # Monthly slots keep the first meeting's day of month, clamped to the month's end:
        # "the last existing day among 28..d" says exactly that (BYMONTHDAY=31 alone would
        # skip the short months instead).
        day = series.slot(1).astimezone(rules.zone).day
        if day <= 28:
            rule["BYMONTHDAY"] = [day]
        else:
            rule["BYMONTHDAY"] = list(range(28, day + 1))
            rule["BYSETPOS"] = [-1]
    else:
        rule["FREQ"] = "WEEKLY"
        if rules.cadence is Cadence.BIWEEKLY:
            rule["INTERVAL"] = 2
    ends = [t for t in (rules.program_end(series.started_at), until) if t is not None]
    if ends:
        # UNTIL is inclusive and the last slot must start strictly before the end.
        rule["UNTIL"] = (min(ends) - timedelta(seconds=1)).astimezone(UTC)
    return vRecur(rule)


def _zone_span(series: MeetingSeries) -> tuple[date, date]:
    first = (series.started_at - timedelta(days=1)).date()
    end = series.rules.program_end(series.started_at)
    years = 1 if end is not None else OPEN_ENDED_TZ_YEARS
    last = ((end or series.started_at) + timedelta(days=366 * years)).date()
    return date(first.year, 1, 1), date(last.year + 1, 1, 1)


@lru_cache(maxsize=64)
def _vtimezone_ical(tzid: str, first: date, last: date) -> bytes:
    return Timezone.from_tzid(tzid, first_date=first, last_date=last).to_ical()


def _vtimezone(tzid: str, first: date, last: date) -> Timezone:
    component = Timezone.from_ical(_vtimezone_ical(tzid, first, last))
    assert isinstance(component, Timezone)
    return component
