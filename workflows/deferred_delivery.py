"""A notification that fell due outside its recipient's working hours, waiting for the window.

The wait is a durable timer, so it survives worker restarts and deploys. The workflow id is
derived from the delivery's idempotency key: starting it again (a retried notification
activity) finds the running one, and a finished one is never started again, so the message is
delivered once. It delivers through the normal notification activity.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.notify import (
        Delivery,
        NotificationActivities,
        SendNotificationsInput,
        SendNotificationsResult,
    )

SEND_TIMEOUT = timedelta(minutes=1)
SEND_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=5))


def deferred_delivery_id(idempotency_key: str) -> str:
    return f"deferred-{idempotency_key}"


class DeferredDeliveryInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    delivery: Delivery
    deliver_at: datetime


class DeferredDeliveryResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    delivered_at: datetime
    result: SendNotificationsResult


@workflow.defn(name="DeferredDeliveryWorkflow")
class DeferredDeliveryWorkflow:
    @workflow.run
    async def run(self, inp: DeferredDeliveryInput) -> DeferredDeliveryResult:
        wait = inp.deliver_at - workflow.now()
        if wait > timedelta(0):
            await workflow.sleep(wait)
        result = await workflow.execute_activity_method(
            NotificationActivities.send_notifications,
            SendNotificationsInput(deliveries=[inp.delivery], decided_at=workflow.now(),
                                   released=True),
            start_to_close_timeout=SEND_TIMEOUT,
            retry_policy=SEND_RETRY,
        )
        return DeferredDeliveryResult(delivered_at=workflow.now(), result=result)
