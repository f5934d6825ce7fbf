"""Calendar invitations end to end: a real pairing workflow, the SMTP channel, a real aiosmtpd
catcher; the .eml files are read back and their ICS parsed and expanded."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import recurring_ical_events
from icalendar import Calendar

from delivery.catcher import MailCatcher
from delivery.invites import organizer_from, participant_feed
from domain import commands as c
from domain import events as e
from eventstore import EventStore, RecordedEvent
from projections import Projector
from sebaya.bootstrap import build_registry
from tests.delivery.live_pairing import (
    MENTEE,
    MENTEE_EMAIL,
    MENTOR_EMAIL,
    advance_to,
    mail_to,
    setup_cohort,
    smtp_worker,
    start_pairing,
    tomorrow_at,
)
from tests.projections.views import past_horizon
from workflows.pairing import PairingWorkflow


async def _mails(catcher: MailCatcher, kind: str, count: int = 2) -> list[EmailMessage]:
    """The e-mails of one kind once both arrived (real-time poll of the worker's SMTP send)."""
    for _ in range(200):
        found = [m for m in catcher.messages()
                 if m.delivery_key and m.delivery_key.endswith(f":{kind}")]
        if len(found) >= count:
            assert len(found) == count
            return [m.parsed() for m in found]
        await asyncio.sleep(0.05)
    raise AssertionError(f"{kind}: expected {count} e-mails")


def _ics(mail: EmailMessage, method: str) -> bytes:
    [part] = [p for p in mail.iter_attachments() if p.get_content_type() == "text/calendar"]
    assert part.get_param("method") == method
    assert part.get_filename() == "invite.ics"
    content = part.get_content()
    return content.encode() if isinstance(content, str) else content


@pytest.mark.temporal
async def test_invite_update_and_cancel_reach_both_participants(
    temporal_env, db_pool: asyncpg.Pool, task_queue: str, tmp_path: Path
) -> None:
    client = temporal_env.client
    cohort = f"inv{datetime.now(UTC):%H%M%S%f}"
    rules = await setup_cohort(db_pool, cohort, mentee_zone="Europe/Amsterdam")
    start = tomorrow_at(3)
    async with MailCatcher(tmp_path / "mail") as catcher, \
            smtp_worker(None, db_pool, task_queue, catcher, client):
        handle = await start_pairing(client, task_queue, cohort, rules, start)
        await advance_to(temporal_env, handle, start + timedelta(minutes=1))

        # The match: one invitation for the whole series, the same bytes for both.
        invites = [_ics(m, "REQUEST") for m in await _mails(catcher, "pairing_matched")]
        assert invites[0] == invites[1]
        calendar = Calendar.from_ical(invites[0])
        assert calendar["METHOD"] == "REQUEST"
        [series] = calendar.walk("VEVENT")
        assert str(series["ORGANIZER"]) == "mailto:mentoring@sebaya.test"
        assert sorted(str(a) for a in series["ATTENDEE"]) == [
            f"mailto:{MENTOR_EMAIL}", f"mailto:{MENTEE_EMAIL}"]
        assert series["DTSTART"].params["TZID"] == "Asia/Jakarta"
        assert series["SUMMARY"] == "Sesi mentoring: Budi Santoso & Sari Dewi"
        state = await handle.query(PairingWorkflow.state)
        expected = [rules.meeting_slot(start, k) for k in range(1, 5)]
        assert state.next_meeting.scheduled_at == expected[0]
        shown = recurring_ical_events.of(calendar).between(start, expected[-1] + timedelta(1))
        assert [o.start for o in shown] == expected

        # A reschedule: an update of that one occurrence.
        moved_to = expected[0] + timedelta(days=1, hours=4)
        await handle.execute_update(PairingWorkflow.reschedule_meeting, c.RescheduleMeeting(
            actor=c.Actor.employee(MENTEE), meeting_no=1, new_time=moved_to))
        [update] = {_ics(m, "REQUEST") for m in await _mails(catcher, "meeting_rescheduled")}
        [moved] = Calendar.from_ical(update).walk("VEVENT")
        assert moved["UID"] == series["UID"]
        assert moved["RECURRENCE-ID"].dt == expected[0]
        assert moved.start == moved_to
        assert moved["SEQUENCE"] > series["SEQUENCE"]

        # An exit: the series is cancelled, neutrally, with a higher SEQUENCE.
        await handle.execute_update(PairingWorkflow.request_exit, c.RequestExit(
            actor=c.Actor.employee(MENTEE), reason=e.ExitReason.NOT_A_FIT))
        await handle.result()
        [cancel] = {_ics(m, "CANCEL") for m in await _mails(catcher, "pairing_ended_neutral")}
        cancelled = Calendar.from_ical(cancel)
        assert cancelled["METHOD"] == "CANCEL"
        [ended] = cancelled.walk("VEVENT")
        assert (ended["UID"], ended["STATUS"]) == (series["UID"], "CANCELLED")
        assert ended["SEQUENCE"] > moved["SEQUENCE"]
        assert b"not_a_fit" not in cancel
    # The coordinator's exit report carries no calendar file.
    assert all(not m.attachments for m in catcher.messages()
               if "pairing_exit_report" in (m.delivery_key or ""))
    assert len(mail_to(catcher, MENTEE_EMAIL, ":pairing_ended_neutral")) == 1

    # The participant's feed, from the read model and the stream: the series cut at the exit
    # (nothing had happened yet) and the meeting moved past the exit left out.
    store = EventStore(db_pool, build_registry())
    await past_horizon(db_pool)
    await Projector(store).catch_up()
    feed = await participant_feed(store, MENTEE, organizer_from("Mentoring <m@sebaya.test>"))
    assert feed == await participant_feed(store, MENTEE,
                                          organizer_from("Mentoring <m@sebaya.test>"))
    published = Calendar.from_ical(feed)
    assert published["METHOD"] == "PUBLISH"
    assert published["X-WR-CALNAME"] == "Sesi mentoring Sari Dewi"
    [only] = published.walk("VEVENT")
    assert only["UID"] == series["UID"] and "RECURRENCE-ID" not in only
    assert recurring_ical_events.of(published).between(start, start + timedelta(days=400)) == []


START = datetime(2026, 10, 1, 7, tzinfo=UTC)


async def _stored_pairing(db_pool: asyncpg.Pool, store: EventStore, *, goals_first: bool,
                          until_meeting: int) -> tuple[Any, list[tuple[Any, e.ReminderSent]]]:
    """A pairing run in the domain up to meeting ``until_meeting``'s time, appended to
    ``store`` with both people registered; its meeting reminders with their event ids."""
    from activities.envelope import envelopes
    from domain.ids import pairing_stream
    from tests.delivery.support import add_person
    from tests.delivery.test_calendar import Pairing, rules

    pairing = Pairing(rules(timezone="Europe/Amsterdam",
                            goals_required_before_meetings=goals_first), START)
    if goals_first:
        pairing.run_until(START + timedelta(days=10))
        goal = e.Goal(goal_id="g1", title="Belajar SQL", success_measure="3 laporan")
        pairing.do(c.SetGoals(actor=c.Actor.employee("E1"), goals=(goal,)))
        pairing.do(c.SetGoals(actor=c.Actor.employee("M1"),
                              goals=(goal.model_copy(update={"goal_id": "g2"}),)))
    pairing.run_until_meeting(until_meeting)
    pairing.run_until(pairing.state.next_meeting.scheduled_at)
    stream = pairing_stream("P1")
    new = envelopes(stream, 0, pairing.events, ["system:sebaya"] * len(pairing.events),
                    occurred_at=pairing.now)
    await store.append(stream, 0, new)
    await add_person(db_pool, "M1", "Budi", "budi@example.co.id")
    await add_person(db_pool, "E1", "Sari", "sari@example.com")
    reminders = [(n.event_id, ev) for n, ev in zip(new, pairing.events, strict=True)
                 if isinstance(ev, e.ReminderSent) and ev.kind is e.ReminderKind.MEETING]
    return pairing, reminders


async def _reminder_mail(store: EventStore, event_id: Any, reminder: e.ReminderSent) -> Any:
    """The mentee's e-mail for ``reminder`` after the calendar attacher has seen it."""
    from delivery.channels import Contact, Delivery
    from delivery.invites import CalendarAttacher
    from delivery.message import Message

    attach = CalendarAttacher(store, organizer_from("Mentoring <m@sebaya.test>"))
    message = Message(kind="reminder_meeting", language="id", subject="s", text="t", html="h")
    delivery = Delivery(idempotency_key=f"{event_id}:E1:reminder_meeting", recipient="E1",
                        template="reminder_meeting", data=_reminder_data(reminder))
    return await attach(delivery, Contact(recipient="E1", email="sari@example.com"), message)


@pytest.mark.parametrize("goals_first", [True, False])
async def test_goals_first_pairings_get_the_invitation_with_the_first_reminder(
    db_pool: asyncpg.Pool, goals_first: bool
) -> None:
    """Meetings that wait for goals have no series at the match: the first meeting's reminder
    carries the invitation instead (and only then)."""
    store = EventStore(db_pool, build_registry())
    pairing, [(reminder_id, reminder)] = await _stored_pairing(
        db_pool, store, goals_first=goals_first, until_meeting=1)
    out = await _reminder_mail(store, reminder_id, reminder)
    if not goals_first:
        assert out.attachments == ()  # the match already carried the invitation
        return
    assert isinstance(reminder, e.ReminderSent) and reminder.reference == "meeting:1"
    [file] = out.attachments
    assert file.content_type == "text/calendar; method=REQUEST; charset=UTF-8"
    [series] = Calendar.from_ical(file.content).walk("VEVENT")
    assert series.start == pairing.state.next_meeting.scheduled_at
    assert series.start == pairing.state.rules.meeting_slot(START, 2)


def _reminder_data(reminder: e.ReminderSent) -> dict[str, object]:
    """A meeting reminder's delivery data as the workflow hands it over."""
    from domain.notifications import notifications_for
    from domain.pairing import PairingState

    state = PairingState(pairing_id="P1", cohort_id="C1", mentor_id="M1", mentee_id="E1")
    [note, _] = notifications_for(state, reminder)
    return note.data


class _CountingStore(EventStore):
    """The real store, counting whole-stream reads."""

    reads = 0

    async def read_stream(self, stream_id: str, from_version: int = 1,
                          to_version: int | None = None) -> list[RecordedEvent]:
        self.reads += 1
        return await super().read_stream(stream_id, from_version, to_version)


async def test_only_the_first_meeting_reminder_reads_the_stream_for_an_invitation(
    db_pool: asyncpg.Pool,
) -> None:
    """A pairing's weekly reminders used to read and fold its whole stream each (to learn they
    carry no calendar file): a cost per e-mail that grew with the pairing's age. Only the first
    meeting's reminder may carry the invitation, and the reminder names its meeting."""
    store = _CountingStore(db_pool, build_registry())
    _, reminders = await _stored_pairing(db_pool, store, goals_first=True, until_meeting=3)
    assert [ev.reference for _, ev in reminders] == ["meeting:1", "meeting:2", "meeting:3"]
    attached = [len((await _reminder_mail(store, event_id, reminder)).attachments)
                for event_id, reminder in reminders]
    assert attached == [1, 0, 0]
    assert store.reads == 1  # the first meeting's reminder only
