"""A roster sync on a timetable: a Temporal schedule starts one run per period, which asks
the ``sync_roster_from_source`` activity to read the export and apply it to the cohort (the
cohort's own ``sync_roster`` update records the result in its history and stream).

A malformed export fails the run (non-retryable, with file, line and column in the failure)
and changes nothing; the schedule's next run tries the then current export.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from contracts.roster_feed import SYNC_FROM_SOURCE, RosterFeedInput, RosterFeedResult


@workflow.defn(name="RosterFeedWorkflow")
class RosterFeedWorkflow:
    @workflow.run
    async def run(self, inp: RosterFeedInput) -> RosterFeedResult:
        return await workflow.execute_activity(
            SYNC_FROM_SOURCE, inp, result_type=RosterFeedResult,
            start_to_close_timeout=timedelta(minutes=15),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=5), maximum_attempts=5,
                                     non_retryable_error_types=["IntakeError",
                                                                "RosterChangeRefused"]),
        )
