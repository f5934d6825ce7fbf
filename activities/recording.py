"""Append a decision's events, then deliver the notifications they cause, in one call.

A pairing decision usually both records facts and tells someone (a reminder). Doing both in
one local activity costs the workflow one history event instead of two per decision, which
matters for a pairing that runs for years. The append commits before any delivery starts,
so nobody is ever told about an event the store does not hold.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from temporalio import activity

from activities.notify import Delivery, NotificationActivities, SendNotificationsInput
from activities.store import AppendEventsInput, AppendEventsResult, StoreActivities


class RecordInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    append: AppendEventsInput
    deliveries: list[Delivery] = []


class RecordingActivities:
    def __init__(self, store: StoreActivities, notify: NotificationActivities) -> None:
        self._store = store
        self._notify = notify

    @activity.defn(name="record_and_notify")
    async def record_and_notify(self, inp: RecordInput) -> AppendEventsResult:
        result = await self._store.append_events(inp.append)
        # Adopted: the stream holds other events than the decided ones, so the decided
        # notifications describe nothing stored. The workflow works out the adopted events'.
        if inp.deliveries and not result.adopted:
            # A decision's events share one instant, the workflow time it was taken at.
            decided_at = inp.append.events[0].metadata.occurred_at if inp.append.events else None
            await self._notify.send_notifications(
                SendNotificationsInput(deliveries=inp.deliveries, decided_at=decided_at)
            )
        return result
