"""A database connection cut while a message is being put together (the calendar attachment
reads the pairing's events) is a transient failure: the delivery is retried, not marked dead.
Found by the 400-person chaos run (docs/reliability.md): five welcome messages went ``dead``
after one attempt during the ``pg_terminate_backend`` rounds. Real Postgres, a real cut."""

from __future__ import annotations

import asyncpg

from activities.notify import NotificationActivities, SendNotificationsInput
from delivery.channels import Contact, Delivery, LogChannel
from delivery.message import Message
from tests.delivery.support import add_person, deliveries
from tests.delivery.test_operations import reminder


async def test_a_connection_cut_while_rendering_is_retried_not_dead(
    db_pool: asyncpg.Pool
) -> None:
    await add_person(db_pool, "E1", "Budi", "budi@example.co.id")
    cuts = 0

    async def reads_then_loses_its_connection(delivery: Delivery, contact: Contact,
                                              message: Message) -> Message:
        """A decorator reading the database, whose connection an administrator terminates
        mid-read the first time (what ``pg_terminate_backend`` does in make chaos)."""
        nonlocal cuts
        async with db_pool.acquire() as conn:
            if cuts == 0:
                cuts += 1
                pid = await conn.fetchval("SELECT pg_backend_pid()")
                await db_pool.execute("SELECT pg_terminate_backend($1)", pid)
            await conn.fetchval("SELECT 1")
        return message

    notify = NotificationActivities(db_pool, LogChannel(),
                                    decorators=(reads_then_loses_its_connection,))
    try:
        result = await notify.send_notifications(
            SendNotificationsInput(deliveries=[reminder(1)]))
        assert (result.sent, result.failed, result.dead) == (0, 1, 0)
        row = (await deliveries(db_pool))["ev1:E1:reminder_meeting"]
        assert row["status"] == "failed", row
        # The next retry (the worker's background loop, or `sebaya notifications retry`)
        # sends it.
        again = await notify.dispatcher.retry(["ev1:E1:reminder_meeting"])
        assert again.sent == 1
    finally:
        await notify.aclose()
    assert (await deliveries(db_pool))["ev1:E1:reminder_meeting"]["status"] == "sent"
