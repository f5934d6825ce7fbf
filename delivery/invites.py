"""Attach calendar files to the e-mails that change a pairing's meetings, and build a
participant's feed.

:class:`CalendarAttacher` is a message decorator of the :class:`~delivery.dispatch.Dispatcher`:
for the kinds below it reads the pairing's stream up to the event that caused the delivery
(named by the delivery key, ``event_id:recipient:template``), folds it into a
:class:`~delivery.calendar.MeetingSeries` and attaches the matching iTIP file. Everything comes
from the store and ``participants``, so a retry attaches the very same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parseaddr
from uuid import UUID

import asyncpg

from delivery.calendar import Attendee, CalendarBuilder, CalendarFile, MeetingSeries, meeting_series
from delivery.channels import Contact, Delivery
from delivery.message import Attachment, Message
from domain import events as e
from domain.ids import pairing_stream
from domain.program import ProgramSpec
from eventstore import EventStore, RecordedEvent

INVITE = "pairing_matched"
RESCHEDULED = "meeting_rescheduled"
CANCELLED = frozenset({"pairing_ended_neutral", "pairing_completed"})
FIRST_MEETING_REMINDER = "reminder_meeting"
FIRST_MEETING = "meeting:1"  # the reminder's reference (domain.pairing._meeting_reminder)


def organizer_from(sender: str) -> Attendee:
    """The program mailbox as ORGANIZER, from ``SEBAYA_SMTP_FROM`` ('Name <address>')."""
    name, address = parseaddr(sender)
    if not address or "@" not in address:
        raise ValueError(f"SEBAYA_SMTP_FROM {sender!r} has no e-mail address")
    return Attendee(email=address, name=name or None)


class CalendarAttacher:
    """Adds ``invite.ics`` (``text/calendar; method=...``) to pairing e-mails."""

    def __init__(self, store: EventStore, organizer: Attendee) -> None:
        self._store = store
        self._pool = store.pool
        self._organizer = organizer

    async def __call__(self, delivery: Delivery, contact: Contact, message: Message) -> Message:
        if not _may_carry_calendar(delivery) or not contact.email:
            return message
        pairing_id = str(delivery.data.get("pairing_id") or "")
        event_id = delivery.idempotency_key.split(":", 1)[0]
        if not pairing_id:
            return message
        records = await self._store.read_stream(pairing_stream(pairing_id))
        upto = _index_of(records, event_id)
        if upto is None:
            return message
        events = [self._store_event(r) for r in records[: upto + 1]]
        cause = records[upto]
        series = meeting_series(events)
        file = await self._file_for(delivery, series, events[-1], cause.metadata.occurred_at,
                                    message.language)
        if file is None:
            return message
        return message.with_attachment(Attachment(filename=file.filename,
                                                  content_type=file.content_type,
                                                  content=file.content))

    def _store_event(self, record: RecordedEvent) -> e.DomainEvent:
        return _decoded(self._store, record)

    async def _file_for(self, delivery: Delivery, series: MeetingSeries, cause: e.DomainEvent,
                        stamp: datetime, language: str) -> CalendarFile | None:
        template = delivery.template
        # A meeting reminder gets here only for the first meeting (_may_carry_calendar), and
        # carries the invitation only when meetings waited for goals: then the match had none.
        if template == FIRST_MEETING_REMINDER and not series.rules.goals_required_before_meetings:
            return None
        builder = await self._builder(series, language)
        attendees = await attendees_of(self._pool, series)
        if template in (INVITE, FIRST_MEETING_REMINDER):
            if series.first_slot is None:
                return None
            return builder.invitation(series, attendees, stamp)
        if template == RESCHEDULED and isinstance(cause, e.MeetingRescheduled):
            return builder.reschedule(series, cause.meeting_no, attendees, stamp)
        if template in CANCELLED and series.ended is not None:
            return builder.cancellation(series, attendees, stamp)
        return None

    async def _builder(self, series: MeetingSeries, language: str) -> CalendarBuilder:
        return CalendarBuilder(organizer=self._organizer,
                               program_name=await _program_name(self._pool, series),
                               language=language)


def _decoded(store: EventStore, record: RecordedEvent) -> e.DomainEvent:
    """The stored event as the domain defines it now, older schema versions upcast."""
    if store.registry is None:
        raise ValueError("calendar invites need an EventStore opened with the event registry")
    event = store.registry.decode(record)
    assert isinstance(event, e.DomainEvent)
    return event


def _may_carry_calendar(delivery: Delivery) -> bool:
    if delivery.template == FIRST_MEETING_REMINDER:
        # Of the meeting reminders only the first may carry the invitation (_file_for says
        # when). Asked of every reminder, that question read and folded the pairing's whole
        # stream twice a week per pairing, a cost that grew with the pairing's age; the
        # reminder names its meeting (domain.notifications), so ask that first.
        return delivery.data.get("reference") == FIRST_MEETING
    return delivery.template in (INVITE, RESCHEDULED) or delivery.template in CANCELLED


def _index_of(records: Sequence[RecordedEvent], event_id: str) -> int | None:
    try:
        wanted = UUID(event_id)
    except ValueError:
        return None
    return next((i for i, r in enumerate(records) if r.event_id == wanted), None)


async def attendees_of(pool: asyncpg.Pool, series: MeetingSeries) -> list[Attendee]:
    """Mentor then mentee, each with an e-mail and not erased."""
    rows = await pool.fetch(
        "SELECT employee_id, name, email FROM participants "
        "WHERE employee_id = ANY($1::text[]) AND erased_at IS NULL AND email IS NOT NULL",
        [series.mentor_id, series.mentee_id])
    found = {r["employee_id"]: Attendee(email=r["email"], name=r["name"]) for r in rows}
    return [found[p] for p in (series.mentor_id, series.mentee_id) if p in found]


async def _program(pool: asyncpg.Pool, series: MeetingSeries) -> ProgramSpec | None:
    raw = await pool.fetchval("SELECT program FROM cohorts WHERE cohort_id = $1",
                              series.cohort_id)
    return ProgramSpec.model_validate_json(raw) if raw else None


async def _program_name(pool: asyncpg.Pool, series: MeetingSeries) -> str:
    program = await _program(pool, series)
    return program.name if program else "Sebaya"


async def participant_feed(store: EventStore, employee_id: str, organizer: Attendee) -> bytes:
    """The calendar feed of one participant: every pairing they are or were in.

    The web app serves it (docs/notifications.md, "The per-participant feed"); pairings are
    found in ``pairing_view`` and each is folded from its stream, so the feed is exact even
    when the read model lags behind by a few events. DTSTAMP is the time of the latest event,
    so the same calendar gives the same bytes (an HTTP ETag can be its hash).
    """
    pool = store.pool
    rows = await pool.fetch(
        "SELECT pairing_id FROM pairing_view WHERE $1 IN (mentor_id, mentee_id) "
        "ORDER BY started_at, pairing_id", employee_id)
    entries = []
    program: ProgramSpec | None = None
    stamp = datetime(2000, 1, 1, tzinfo=UTC)
    for row in rows:
        records = await store.read_stream(pairing_stream(row["pairing_id"]))
        if records:
            stamp = max(stamp, records[-1].metadata.occurred_at)
        series = meeting_series(_decoded(store, r) for r in records)
        entries.append((series, await attendees_of(pool, series)))
        program = program or await _program(pool, series)
    name = await pool.fetchval(
        "SELECT name FROM participants WHERE employee_id = $1 AND erased_at IS NULL",
        employee_id)
    builder = CalendarBuilder(organizer=organizer,
                              program_name=program.name if program else "Sebaya",
                              language=str(program.language) if program else "id")
    return builder.feed(name or employee_id, entries, stamp)
