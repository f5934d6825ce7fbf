"""Roster syncs on a timetable: ``sebaya cohort sync COHORT SOURCE --apply --every 1d``.

A Temporal schedule (id ``roster-sync-<cohort>``) starts a ``RosterFeedWorkflow`` every
period; its one activity, here, reads the export from a path the worker can read or an
http(s) URL and runs the same operations function as the CLI (``sebaya.operations
.sync_roster``). The schedule survives restarts of the CLI and the worker; a sync that finds
nothing to change records nothing.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import urllib.parse
import urllib.request
from datetime import timedelta
from pathlib import Path

import asyncpg
from temporalio import activity
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from contracts.roster_feed import (
    ROSTER_FEED_WORKFLOW,
    SYNC_FROM_SOURCE,
    RosterFeedInput,
    RosterFeedResult,
    roster_feed_schedule_id,
)
from intake import IntakeError
from sebaya.operations import sync_roster

DEFAULT_EVERY = timedelta(days=1)
_PERIOD = re.compile(r"^(\d+)\s*([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
# An HR export of 10,000 people is a few MB; refuse anything absurdly larger.
MAX_EXPORT_BYTES = 64 * 1024 * 1024


def parse_every(text: str) -> timedelta:
    """``1d``, ``12h``, ``30m`` or ``daily``/``hourly``; at least 5 minutes."""
    named = {"daily": timedelta(days=1), "hourly": timedelta(hours=1)}
    if text.strip().lower() in named:
        return named[text.strip().lower()]
    found = _PERIOD.match(text.strip().lower())
    if not found:
        raise ValueError(f"expected a period such as 1d, 12h or 30m, got {text!r}")
    period = timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})
    if period < timedelta(minutes=5):
        raise ValueError(f"{text!r}: run a sync at most every 5 minutes")
    return period


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def fetch_export(source: str, into: Path) -> Path:
    """The export as a local file: ``source`` itself, or downloaded from an http(s) URL into
    ``into`` under the URL's file name (so problems name a recognisable file)."""
    if not is_url(source):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{source}: no such file")
        return path
    name = Path(urllib.parse.urlparse(source).path).name or "people.csv"
    target = into / name
    with urllib.request.urlopen(source, timeout=60) as response:
        body = response.read(MAX_EXPORT_BYTES + 1)
    if len(body) > MAX_EXPORT_BYTES:
        raise ValueError(f"{source}: larger than {MAX_EXPORT_BYTES} bytes")
    target.write_bytes(body)
    return target


class RosterFeedActivities:
    def __init__(self, pool: asyncpg.Pool, client: Client) -> None:
        self._pool = pool
        self._client = client

    @activity.defn(name=SYNC_FROM_SOURCE)
    async def sync_from_source(self, inp: RosterFeedInput) -> RosterFeedResult:
        with tempfile.TemporaryDirectory(prefix="sebaya-roster-") as tmp:
            try:
                path = await asyncio.to_thread(fetch_export, inp.source, Path(tmp))
                plan, result = await sync_roster(
                    self._pool, self._client, inp.cohort_id, path, synced_by=inp.synced_by,
                    apply=True, source=inp.source)
            except IntakeError as exc:
                # A retry cannot fix the file: fail this run, with where it is wrong.
                raise ApplicationError(str(exc), type="IntakeError",
                                       non_retryable=True) from exc
        if plan.diff.problems:
            raise ApplicationError("; ".join(plan.diff.problems), type="RosterChangeRefused",
                                   non_retryable=True)
        activity.logger.info("roster sync of %s from %s: %s", inp.cohort_id, inp.source,
                             plan.diff.summary())
        return RosterFeedResult(cohort_id=inp.cohort_id, source=inp.source,
                                source_digest=plan.source_digest, summary=plan.diff.summary(),
                                applied=result is not None)


async def schedule_roster_sync(client: Client, *, cohort_id: str, source: str, synced_by: str,
                               every: timedelta, task_queue: str) -> str:
    """Create (or replace the timetable and source of) the cohort's roster sync schedule."""
    schedule_id = roster_feed_schedule_id(cohort_id)
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            ROSTER_FEED_WORKFLOW,
            RosterFeedInput(cohort_id=cohort_id, source=source, synced_by=synced_by),
            id=f"{schedule_id}-run", task_queue=task_queue),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        # A slow run (a large export) is never overlapped by the next one.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(note=f"roster sync of cohort {cohort_id} from {source}"),
    )
    try:
        await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:
        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(schedule_id).update(replace)
    return schedule_id


async def unschedule_roster_sync(client: Client, cohort_id: str) -> bool:
    try:
        await client.get_schedule_handle(roster_feed_schedule_id(cohort_id)).delete()
    except RPCError as exc:
        # A deleted schedule may still answer "already completed" for a while.
        if "not found" in str(exc).lower() or "already completed" in str(exc).lower():
            return False
        raise
    return True

