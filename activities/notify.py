"""Deliver notifications exactly once per idempotency key.

Every delivery is first claimed in the ``deliveries`` table (unique key); a retried activity
finds the key already ``sent`` and skips it, so a reminder is never sent twice by Sebaya. The
one window left (the channel accepted the message but the worker died before marking it sent)
is closed by passing the same key to the channel, which a real provider uses for dedup.

Channels are pluggable; the default writes a structured log line. Contact details are looked
up here, from the ``participants`` table, so they never travel through Temporal.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import asyncpg
import structlog
from pydantic import BaseModel, ConfigDict
from temporalio import activity


class Delivery(BaseModel):
    model_config = ConfigDict(frozen=True)

    idempotency_key: str
    recipient: str
    template: str
    data: dict[str, Any] = {}


class SendNotificationsInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    deliveries: list[Delivery]


class SendNotificationsResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    sent: int
    already_sent: int


class Contact(BaseModel):
    model_config = ConfigDict(frozen=True)

    recipient: str
    name: str | None = None
    email: str | None = None
    erased: bool = False


class NotificationChannel(Protocol):
    name: str

    async def send(self, contact: Contact, delivery: Delivery) -> None: ...


class LogChannel:
    """Writes one JSON log line per notification; the default for development and demos."""

    name = "log"

    def __init__(self) -> None:
        self._log = structlog.get_logger("sebaya.notify")

    async def send(self, contact: Contact, delivery: Delivery) -> None:
        self._log.info(
            "notification",
            recipient=delivery.recipient,
            has_email=bool(contact.email),
            template=delivery.template,
            idempotency_key=delivery.idempotency_key,
            **{k: v for k, v in delivery.data.items() if k != "recipient"},
        )


class NotificationActivities:
    def __init__(self, pool: asyncpg.Pool, channel: NotificationChannel | None = None) -> None:
        self._pool = pool
        self._channel = channel or LogChannel()

    async def _contact(self, conn: asyncpg.Connection, recipient: str) -> Contact:
        row = await conn.fetchrow(
            "SELECT name, email, erased_at FROM participants WHERE employee_id = $1", recipient
        )
        if row is None:
            return Contact(recipient=recipient)
        return Contact(recipient=recipient, name=row["name"], email=row["email"],
                       erased=row["erased_at"] is not None)

    @activity.defn(name="send_notifications")
    async def send_notifications(self, inp: SendNotificationsInput) -> SendNotificationsResult:
        sent = already = 0
        async with self._pool.acquire() as conn:
            for delivery in inp.deliveries:
                claimed = await conn.fetchval(
                    """
                    INSERT INTO deliveries (idempotency_key, channel, recipient, template,
                                            payload, status)
                    VALUES ($1, $2, $3, $4, $5::jsonb, 'pending')
                    ON CONFLICT (idempotency_key) DO UPDATE
                        SET attempts = deliveries.attempts
                    RETURNING status
                    """,
                    delivery.idempotency_key,
                    self._channel.name,
                    delivery.recipient,
                    delivery.template,
                    json.dumps(delivery.data),
                )
                if claimed != "pending":
                    already += 1
                    continue
                contact = await self._contact(conn, delivery.recipient)
                if not contact.erased:
                    await self._channel.send(contact, delivery)
                await conn.execute(
                    """
                    UPDATE deliveries
                       SET status = $2, attempts = attempts + 1, delivered_at = now()
                     WHERE idempotency_key = $1
                    """,
                    delivery.idempotency_key,
                    "sent" if not contact.erased else "suppressed_erased",
                )
                sent += 1
        return SendNotificationsResult(sent=sent, already_sent=already)
