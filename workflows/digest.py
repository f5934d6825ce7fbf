"""One durable weekly timer per cohort: the coordinator's digest of pairings at risk.

Started with the cohort (``sebaya.operations.start_cohort``), it wakes every Monday at 08:00
program-local time, has the digest activity read the read models and send one
``coordinator_digest``, and ends once the activity finds the cohort ended.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.digest import DigestActivities, DigestRequest
    from delivery.digest import next_digest_at

DIGEST_TIMEOUT = timedelta(minutes=2)
DIGEST_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=5))
# A cohort runs for months, open-ended ones for years: start a fresh history once a year.
WEEKS_PER_RUN = 52


def digest_workflow_id(cohort_id: str) -> str:
    return f"digest-{cohort_id}"


class DigestInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    cohort_id: str
    # The program's time zone: the digest goes out at 08:00 there.
    timezone: str
    digests_sent: int = 0


@workflow.defn(name="CoordinatorDigestWorkflow")
class CoordinatorDigestWorkflow:
    @workflow.run
    async def run(self, inp: DigestInput) -> int:
        """Returns how many digests were sent over the cohort's life."""
        sent = inp.digests_sent
        for _ in range(WEEKS_PER_RUN):
            due = next_digest_at(workflow.now(), inp.timezone)
            await workflow.sleep(due - workflow.now())
            result = await workflow.execute_activity_method(
                DigestActivities.send_coordinator_digest,
                DigestRequest(cohort_id=inp.cohort_id, period_end=due),
                start_to_close_timeout=DIGEST_TIMEOUT,
                retry_policy=DIGEST_RETRY,
            )
            if result.cohort_ended:
                return sent
            sent += int(result.sent)
        workflow.continue_as_new(inp.model_copy(update={"digests_sent": sent}))
