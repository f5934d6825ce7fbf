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
    from activities.deferral import DeferredDeliveryInput
    from activities.notify import (
        NotificationActivities,
        SendNotificationsInput,
        SendNotificationsResult,
    )

SEND_TIMEOUT = timedelta(minutes=1)
SEND_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=5))


class DeferredDeliveryResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    # When the window opened and the delivery was handed to the notification activity.
    released_at: datetime
    result: SendNotificationsResult


@workflow.defn(name="DeferredDeliveryWorkflow")  # activities.deferral starts it by this name
class DeferredDeliveryWorkflow:
    @workflow.run
    async def run(self, inp: DeferredDeliveryInput) -> DeferredDeliveryResult:
        wait = inp.deliver_at - workflow.now()
        if wait > timedelta(0):
            await workflow.sleep(wait)
        released_at = workflow.now()
        result = await workflow.execute_activity_method(
            NotificationActivities.send_notifications,
            SendNotificationsInput(deliveries=[inp.delivery], decided_at=workflow.now(),
                                   released=True),
            start_to_close_timeout=SEND_TIMEOUT,
            retry_policy=SEND_RETRY,
        )
        return DeferredDeliveryResult(released_at=released_at, result=result)
