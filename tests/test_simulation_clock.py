"""The simulator's clock moves reach their target even when the server ends a fast-forward
early (docs/reliability.md, "the missed meeting refused before its time").

The server ends a time-skipping session after ``max_session_skip_count`` skips and reports
the fast-forward failed; ``TimeSkipper.fast_forward`` then returns False with the workflow's
clock short of the target. A skipper with a limit of one skip makes that happen on every
move that crosses two timers, deterministically. Real Temporal dev server, real worker.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import TimeSkipper, TimeSkippingConfig
from temporalio.worker import Worker

from sebaya.simulation import CohortSimulation
from tests.hourly_timers import HourlyTimers

pytestmark = pytest.mark.temporal


class RecordingSkipper(TimeSkipper):
    """A TimeSkipper that remembers what each fast-forward returned."""

    returned: list[bool]

    async def fast_forward(self, handle: WorkflowHandle[Any, Any],
                           duration: timedelta | float | None = None, /) -> bool:
        completed = await super().fast_forward(handle, duration)
        self.returned.append(completed)
        return completed


async def test_a_move_cut_short_by_the_server_is_continued_to_its_target(
    temporal_env, task_queue: str
) -> None:
    skipper = RecordingSkipper(temporal_env.client, config=TimeSkippingConfig(
        enabled=False, max_session_skip_count=1))
    skipper.returned = []
    sim = CohortSimulation(skipper.client, skipper, "clock", say=lambda _line: None)
    async with Worker(skipper.client, task_queue=task_queue, workflows=[HourlyTimers]):
        handle = await skipper.client.start_workflow(
            HourlyTimers.run, 10, id=f"hourly-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
        start = await skipper.get_current_time(handle)
        target = start + timedelta(hours=2, minutes=30)  # two timers: one more than allowed
        await sim._advance_to(handle, target)
        now = await skipper.get_current_time(handle)
        await handle.terminate()
    # The first fast-forward ended at the first timer and said so; the move went on from
    # there instead of taking it for done.
    assert skipper.returned[0] is False, skipper.returned
    assert skipper.returned[-1] is True, skipper.returned
    assert sim.log.retried.get("clock_short") == len(skipper.returned) - 1 >= 1
    assert now >= target
    # Not overshot either: only the wall-clock time the calls took on top.
    assert now - target < timedelta(minutes=2)
