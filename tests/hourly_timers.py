"""A workflow with a timer every hour, for tests/test_simulation_clock.py.

Kept in its own module: workflow modules must be free of import-time side effects because the
sandbox re-imports them for every run.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow


@workflow.defn
class HourlyTimers:
    """Sleeps an hour, ``hours`` times: each hour is one skip for the time-skipping server."""

    @workflow.run
    async def run(self, hours: int) -> int:
        for _ in range(hours):
            await workflow.sleep(timedelta(hours=1))
        return hours
