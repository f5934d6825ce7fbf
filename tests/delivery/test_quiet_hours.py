"""Quiet hours, pure: when a message due at some instant may go out to someone somewhere."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.deferral import DeferredDeliveryInput, QuietHours, deferred_delivery_id
from activities.notify import NotificationActivities, SendNotificationsInput
from delivery.catcher import MailCatcher
from delivery.channels import Delivery
from delivery.quiet_hours import WorkingHours, deliver_at
from tests.delivery.live_pairing import (
    MENTEE,
    MENTEE_EMAIL,
    MENTOR,
    MENTOR_EMAIL,
    advance_to,
    mail_to,
    setup_cohort,
    smtp_worker,
    start_pairing,
    tomorrow_at,
)

NEW_YORK = ZoneInfo("America/New_York")
JAKARTA = ZoneInfo("Asia/Jakarta")


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NEW_YORK)  # type: ignore[misc]


def test_inside_working_hours_goes_now() -> None:
    assert deliver_at(ny(2027, 1, 11, 8, 0), "America/New_York") is None
    assert deliver_at(ny(2027, 1, 11, 19, 59), "America/New_York") is None


def test_evening_waits_for_next_morning_in_the_recipients_zone() -> None:
    # 10:00 in Jakarta is 22:00 the evening before in New York.
    due = datetime(2027, 1, 12, 10, 0, tzinfo=JAKARTA)
    at = deliver_at(due, "America/New_York")
    assert at == ny(2027, 1, 12, 8, 0)
    assert at is not None and at.tzinfo is JAKARTA  # same zone as given, same instant
    # For the Jakarta side the same instant is mid-morning: no wait.
    assert deliver_at(due, "Asia/Jakarta") is None


def test_closing_time_itself_is_closed_and_early_morning_waits_the_same_day() -> None:
    assert deliver_at(ny(2027, 1, 11, 20, 0), "America/New_York") == ny(2027, 1, 12, 8, 0)
    assert deliver_at(ny(2027, 1, 11, 3, 15), "America/New_York") == ny(2027, 1, 11, 8, 0)


def test_opening_stays_at_local_eight_across_daylight_saving() -> None:
    # 14 March 2027: clocks go forward in New York overnight.
    at = deliver_at(ny(2027, 3, 13, 23, 0), "America/New_York")
    assert at == ny(2027, 3, 14, 8, 0)
    assert at is not None and at.astimezone(UTC).hour == 12  # EDT now, not 13:00 UTC (EST)


def test_opening_inside_a_skipped_hour_moves_past_the_gap() -> None:
    hours = WorkingHours(opens=time(2, 30), closes=time(20, 0))
    at = deliver_at(ny(2027, 3, 14, 0, 30), "America/New_York", hours)
    assert at is not None
    assert at.astimezone(NEW_YORK).time() == time(3, 30)
    assert at.astimezone(UTC) == datetime(2027, 3, 14, 7, 30, tzinfo=UTC)


def test_configured_windows_including_across_midnight() -> None:
    night = WorkingHours(opens=time(22, 0), closes=time(6, 0))
    assert deliver_at(ny(2027, 1, 11, 23, 0), "America/New_York", night) is None
    assert deliver_at(ny(2027, 1, 11, 5, 59), "America/New_York", night) is None
    assert deliver_at(ny(2027, 1, 11, 12, 0), "America/New_York", night) == ny(2027, 1, 11, 22)
    short = WorkingHours(opens=time(9, 30), closes=time(17, 0))
    assert deliver_at(ny(2027, 1, 11, 17, 0), "America/New_York", short) == ny(
        2027, 1, 12, 9, 30)


def test_bad_input_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="different times"):
        WorkingHours(opens=time(8), closes=time(8))
    with pytest.raises(ValueError, match="timezone-aware"):
        deliver_at(datetime(2027, 1, 1, 9), "America/New_York")


# --- on the real dev server ---------------------------------------------------------------


async def _row(pool: asyncpg.Pool, recipient: str, template: str,
               status: str | None = None) -> asyncpg.Record:
    """The delivery row once the worker wrote it (real-time poll of a side effect)."""
    for _ in range(200):
        row = await pool.fetchrow(
            "SELECT * FROM deliveries WHERE recipient = $1 AND template = $2", recipient,
            template)
        if row is not None and (status is None or row["status"] == status):
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {status or ''} delivery {template} to {recipient}")


@pytest.mark.temporal
async def test_reminder_due_at_22_in_new_york_is_delivered_at_8_next_morning_once(
    temporal_env, db_pool: asyncpg.Pool, task_queue: str, tmp_path: Path
) -> None:
    client = temporal_env.client
    cohort = f"qh{uuid.uuid4().hex[:6]}"
    rules = await setup_cohort(db_pool, cohort, mentee_zone="America/New_York")
    start = tomorrow_at(3)  # 10:00 in Jakarta, the evening before in New York
    slot = rules.meeting_slot(start, 1)
    reminder_due = rules.reminder_at(slot)
    assert reminder_due.astimezone(NEW_YORK).hour in (22, 23)  # EST / EDT
    morning = datetime.combine(reminder_due.astimezone(NEW_YORK).date() + timedelta(days=1),
                               time(8), tzinfo=NEW_YORK)
    async with MailCatcher(tmp_path / "mail") as catcher, \
            smtp_worker(client, db_pool, task_queue, catcher, client):
        handle = await start_pairing(client, task_queue, cohort, rules, start)
        await advance_to(temporal_env, handle, reminder_due + timedelta(minutes=1))

        # Jakarta: 10:00, sent at once. New York: 22:00, recorded as deferred.
        await _row(db_pool, MENTOR, "reminder_meeting", "sent")
        waiting = await _row(db_pool, MENTEE, "reminder_meeting", "deferred")
        assert waiting["deliver_at"] == morning
        assert mail_to(catcher, MENTEE_EMAIL, ":reminder_meeting") == []
        assert len(mail_to(catcher, MENTOR_EMAIL, ":reminder_meeting")) == 1

        key = waiting["idempotency_key"]
        deferred = client.get_workflow_handle(deferred_delivery_id(key))
        await advance_to(temporal_env, deferred, morning + timedelta(minutes=5))
        outcome = await deferred.result()
        released = datetime.fromisoformat(outcome["released_at"])
        assert morning <= released < morning + timedelta(minutes=1)  # a timer fires on time
        assert outcome["result"]["sent"] == 1
        assert (await _row(db_pool, MENTEE, "reminder_meeting"))["status"] == "sent"
        [mail] = mail_to(catcher, MENTEE_EMAIL, ":reminder_meeting")
        assert mail.delivery_key == key

        # Once: a retried notification activity finds the wait finished and the row sent,
        # and a retried release finds nothing left to send.
        delivery = Delivery(idempotency_key=key, recipient=MENTEE,
                            template="reminder_meeting",
                            data=json.loads(waiting["payload"]))
        quiet = QuietHours(db_pool, client)
        assert await quiet.defer_outside_hours([delivery], reminder_due, task_queue) == []
        with pytest.raises(WorkflowAlreadyStartedError):
            await client.start_workflow(
                "DeferredDeliveryWorkflow",
                DeferredDeliveryInput(delivery=delivery, deliver_at=morning),
                id=deferred_delivery_id(key), task_queue=task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
        notify = NotificationActivities(db_pool, client=client)
        again = await notify.send_notifications(SendNotificationsInput(
            deliveries=[delivery], decided_at=morning, released=True))
        assert (again.sent, again.already_sent) == (0, 1)
        assert len(mail_to(catcher, MENTEE_EMAIL, ":reminder_meeting")) == 1
        await handle.terminate("test over")
