"""The notification activity: hands a decision's deliveries to the delivery layer.

Everything about claiming, rendering, routing, sending and recording lives in ``delivery/``
(see :mod:`delivery.dispatch` for the exactly-once argument). A failing channel never fails
this activity; only a database failure does, and then Temporal retries it. The method is an
ordinary coroutine too: the web app calls it directly to send sign-in links.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
from pydantic import BaseModel, ConfigDict
from temporalio import activity
from temporalio.client import Client

from activities.deferral import QuietHours
from delivery.channels import Delivery, NotificationChannel
from delivery.dispatch import Dispatcher, MessageDecorator
from delivery.message import Renderer
from delivery.routing import Router

__all__ = [
    "Delivery",  # the workflow builds these; it imports them from here
    "NotificationActivities",
    "SendNotificationsInput",
    "SendNotificationsResult",
]


class SendNotificationsInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    deliveries: list[Delivery]
    # When they fell due: the workflow time of the decision that caused them (quiet hours are
    # judged on it, so a retry decides the same). None: now.
    decided_at: datetime | None = None
    # Sent by a deferred delivery whose window has opened: send, never defer again.
    released: bool = False


class SendNotificationsResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    sent: int
    already_sent: int
    failed: int = 0
    dead: int = 0
    suppressed: int = 0
    # Waiting for the recipient's working hours (DeferredDeliveryWorkflow).
    deferred: int = 0


class NotificationActivities:
    """``channels``: a :class:`~delivery.routing.Router`, or one channel for everything
    (default: the log). ``retry_every``: also retry failed deliveries in the background, at
    this interval, once the first notification has been sent (the worker sets it).
    ``client``: with it, deliveries due outside the recipient's working hours wait in a
    durable workflow (docs/notifications.md, "Quiet hours"); without it everything goes at once."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        channels: Router | NotificationChannel | None = None,
        *,
        renderer: Renderer | None = None,
        decorators: tuple[MessageDecorator, ...] = (),
        retry_every: timedelta | None = None,
        client: Client | None = None,
    ) -> None:
        if channels is None:
            router = Router()
        elif isinstance(channels, Router):
            router = channels
        else:
            router = Router.only(channels)
        self.dispatcher = Dispatcher(pool, router, renderer or Renderer(),
                                     decorators=decorators)
        self._retry_every = retry_every
        self._retries: asyncio.Task[None] | None = None
        self._quiet = QuietHours(pool, client) if client is not None else None

    @activity.defn(name="send_notifications")
    async def send_notifications(self, inp: SendNotificationsInput) -> SendNotificationsResult:
        if self._retry_every is not None and self._retries is None:
            self._retries = asyncio.get_running_loop().create_task(
                self.dispatcher.run_retries(self._retry_every), name="delivery-retries")
        deliveries = inp.deliveries
        if self._quiet is not None and inp.released:
            await self._quiet.release(deliveries)
        elif self._quiet is not None and activity.in_activity():
            deliveries = await self._quiet.defer_outside_hours(
                deliveries, inp.decided_at or datetime.now(UTC), activity.info().task_queue)
        result = await self.dispatcher.deliver(deliveries)
        return SendNotificationsResult(sent=result.sent, already_sent=result.already_sent,
                                       failed=result.failed, dead=result.dead,
                                       suppressed=result.suppressed,
                                       deferred=len(inp.deliveries) - len(deliveries))

    async def aclose(self) -> None:
        if self._retries is not None:
            self._retries.cancel()
        await self.dispatcher.aclose()
