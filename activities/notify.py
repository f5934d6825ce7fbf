"""The notification activity: hands a decision's deliveries to the delivery layer.

Everything about claiming, rendering, routing, sending and recording lives in ``delivery/``
(see :mod:`delivery.dispatch` for the exactly-once argument). A failing channel never fails
this activity; only a database failure does, and then Temporal retries it. The method is an
ordinary coroutine too: the web app calls it directly to send sign-in links.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
from pydantic import BaseModel, ConfigDict
from temporalio import activity

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


class SendNotificationsResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    sent: int
    already_sent: int
    failed: int = 0
    dead: int = 0
    suppressed: int = 0


class NotificationActivities:
    """``channels``: a :class:`~delivery.routing.Router`, or one channel for everything
    (default: the log). ``retry_every``: also retry failed deliveries in the background, at
    this interval, once the first notification has been sent (the worker sets it)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        channels: Router | NotificationChannel | None = None,
        *,
        renderer: Renderer | None = None,
        decorators: tuple[MessageDecorator, ...] = (),
        retry_every: timedelta | None = None,
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

    @activity.defn(name="send_notifications")
    async def send_notifications(self, inp: SendNotificationsInput) -> SendNotificationsResult:
        if self._retry_every is not None and self._retries is None:
            self._retries = asyncio.get_running_loop().create_task(
                self.dispatcher.run_retries(self._retry_every), name="delivery-retries")
        result = await self.dispatcher.deliver(inp.deliveries)
        return SendNotificationsResult(sent=result.sent, already_sent=result.already_sent,
                                       failed=result.failed, dead=result.dead,
                                       suppressed=result.suppressed)

    async def aclose(self) -> None:
        if self._retries is not None:
            self._retries.cancel()
        await self.dispatcher.aclose()
