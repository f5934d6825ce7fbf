"""A seeded simulation of a whole cohort in virtual time, for ``make demo`` and the bench.

Every pairing and the cohort run as real workflows on a real Temporal server; the only
thing simulated is the people. Each workflow has its own virtual clock (per-workflow time
skipping): the simulator moves a clock forward with ``TimeSkipper.fast_forward`` up to the
moment a participant acts, then acts through the same updates a person's app would send.

Behaviour is drawn from a seeded RNG per pairing, plus a few scripted stories so that every
part of the product shows: a late goal setter, a pair that stops meeting (nudge, then
escalation), an early no-fault exit and a mid-point "don't continue" (both rematched), an
employee who leaves the company, and (with ``week3_export``) new hires who arrive with the HR
export of week 3 and are matched on the mentors' remaining places.

The simulator keeps no state of its own that the workflows do not also hold: every story is
drawn from the seed and the pairing's id, every step is chosen from the pairing's current
state, and every action's update id names the step (``pairing-X:sim:meeting:7``). So a
simulation that was stopped (a crash, Ctrl-C) is resumed by running it again on the same
cohort with the same seed: it picks each pairing up where its workflow is, and an action that
was sent just before the stop is either seen in the state or deduplicated by Temporal. Calls
that fail for reasons Temporal calls transient (no worker polling, the server restarting, a
workflow task failing while a worker dies) are retried with bounded backoff; a domain refusal
is never retried.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import TimeSkipper

from domain import commands as c
from domain import events as e
from domain.cohort import ActivePairing, CohortPhase, CohortState
from domain.ids import cohort_stream, pairing_workflow_id
from domain.pairing import PairingState, Phase, next_wake
from sebaya.logging import get_logger
from sebaya.operations import cohort_handle, participant_left, sync_roster
from workflows.cohort import CohortResult, CohortWorkflow
from workflows.pairing import PairingWorkflow

HOUR = timedelta(hours=1)

LEARNED_MENTOR = (
    "Cara menjelaskan hal teknis dengan sederhana",
    "Mendengarkan lebih dulu sebelum memberi saran",
    "Memimpin tanpa jabatan: membangun kepercayaan",
    "Perspektif karyawan baru tentang proses kita",
    "Memberi umpan balik yang spesifik dan tepat waktu",
)
LEARNED_MENTEE = (
    "Memahami budaya kerja dan siapa yang bisa ditanya",
    "Dasar SQL dan membuat laporan sendiri",
    "Mengatur prioritas dan waktu",
    "Berani bertanya dan menyampaikan pendapat di rapat",
    "Jalur karier di departemen lain",
)
TOPIC_PICKS = 2
WEEK = timedelta(weeks=1)
# Backoff of a transient failure: doubling from RETRY_FIRST up to RETRY_CAP between attempts,
# for at most RETRY_FOR in all (a worker restart takes seconds; a Temporal restart under load
# can take a minute). Past that the failure is real and the simulation stops with it.
RETRY_FIRST = 0.25
RETRY_CAP = 5.0
RETRY_FOR = timedelta(minutes=5)
# A fast-forward can end short of its target (the server stops a session after
# ``max_session_skip_count`` timers, or a restart cuts it); the clock is moved again from where
# it stopped. Each round fires at least one timer, so this many are far more than a move
# needs; a round that leaves the clock where it was, CLOCK_STALLS times running, is a fault.
CLOCK_ROUNDS = 200
CLOCK_STALLS = 3

T = TypeVar("T")
_log = get_logger(__name__)

# Statuses of a Temporal RPC that say "not now" rather than "no": the server or the
# connection is down or overloaded, or the call outlived its deadline.
_TRANSIENT_RPC = frozenset({
    RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED,
    RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.ABORTED, RPCStatusCode.INTERNAL,
    RPCStatusCode.UNKNOWN,
})


def transient(exc: BaseException) -> bool:
    """Whether Temporal says trying again may succeed: a failed RPC with a transient status,
    a workflow that is not ready (its task failed, e.g. its worker died mid-task), an update
    whose wait timed out, a query no worker answered, or an update that failed for any reason
    other than a domain refusal (refusals are non-retryable ApplicationErrors)."""
    if isinstance(exc, WorkflowUpdateRPCTimeoutOrCancelledError):
        return True
    if isinstance(exc, WorkflowUpdateFailedError):
        cause = exc.cause
        return not (isinstance(cause, ApplicationError) and cause.non_retryable)
    if isinstance(exc, WorkflowQueryFailedError):
        text = str(exc).lower()
        return "deadlock" in text or "not ready" in text or "timed out" in text \
            or "no poller" in text
    if isinstance(exc, RPCError):
        text = str(exc).lower()
        if "already completed" in text:
            return False
        # WorkflowNotReady (FAILED_PRECONDITION): the workflow's task failed (a worker died
        # mid-task, or a parked append waits for Postgres) and is being retried.
        return exc.status in _TRANSIENT_RPC or "not ready" in text \
            or "workflow task in failed state" in text \
            or "not scheduled yet" in text or "no poller" in text
    # The database (the simulator reads the cohort's launches, a roster sync writes): a
    # connection cut or a server restarting.
    return isinstance(exc, (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                            asyncpg.exceptions.OperatorInterventionError))


def _noticed(state: PairingState, rules: Any, pending: Any) -> datetime:
    """When the pairing will have noticed that nobody logged ``pending``: past its log
    deadline, and past the workflow's next wake (a missed meeting is recorded when the
    workflow next wakes, which may be later than the deadline)."""
    deadline: datetime = rules.log_deadline(pending.scheduled_at) + HOUR
    wake = next_wake(state)
    return max(deadline, wake + timedelta(minutes=1)) if wake is not None else deadline


class _Closed(Exception):
    """The workflow being driven has already finished."""


@dataclass
class _Ending:
    pairing_id: str
    target: datetime
    action: Callable[[], Awaitable[None]]
    done: asyncio.Future[None]


@dataclass
class Story:
    """What this pairing's people will do, drawn once from the seed."""

    goals_day: float
    attendance: float
    stop_meeting_after: int | None = None
    exit_at_meeting: int | None = None
    midpoint_quit: bool = False
    # The mentee leaves the company this many days into the pairing (HR tells operations).
    mentee_leaves_after_days: float | None = None
    reports_missed: bool = True


@dataclass
class SimulationLog:
    lines: list[str] = field(default_factory=list)
    updates_sent: int = 0
    refused: int = 0
    # Transient failures retried, by the call that failed (``update``, ``query``, ``clock``…).
    retried: dict[str, int] = field(default_factory=dict)


class CohortSimulation:
    def __init__(
        self,
        client: Client,
        skipper: TimeSkipper,
        cohort_id: str,
        *,
        seed: int = 7,
        say: Callable[[str], None] = print,
        pool: asyncpg.Pool | None = None,
        week3_export: Path | None = None,
        retry_for: timedelta = RETRY_FOR,
    ) -> None:
        self._client = client
        self._skipper = skipper
        self._cohort_id = cohort_id
        self._seed = seed
        self._say = say
        self._pool = pool
        # The HR export of week 3 (new hires): applied with ``cohort sync --apply``'s function.
        self._week3_export = week3_export
        self._retry_for = retry_for
        self._running: dict[str, asyncio.Task[None]] = {}
        self._scripted: dict[str, str] = {}
        self.log = SimulationLog()
        # Lockstep: no pairing's clock passes the cohort's, so an HR event or a rematch on
        # the cohort's clock meets the pairings where they are. Pairings wait at the horizon;
        # the cohort moves a week once every running pairing is waiting there (or done).
        self._horizon = datetime.min.replace(tzinfo=UTC)
        # Set (and replaced) when the horizon moves: wakes every parked pairing once.
        self._week_opened = asyncio.Event()
        # Set when a pairing parks, queues its ending or finishes: wakes the cohort's loop.
        # Two events rather than one condition: a pairing that parks wakes only the cohort,
        # not every other parked pairing (which, under a condition, each woke all the others
        # again, a storm that grew with the square of the pairings and stalled large runs).
        self._changed = asyncio.Event()
        self._parked: set[str] = set()  # waiting for the horizon to pass their next step
        self._ending: set[str] = set()  # waiting for the cohort's loop to run their ending
        # Actions that end a pairing, run by the cohort's loop in pairing-id order (below).
        self._endings: list[_Ending] = []

    # --- clocks --------------------------------------------------------------------------------

    async def _advance_to(self, handle: WorkflowHandle[Any, Any], target: datetime,
                          pairing_id: str | None = None) -> None:
        if pairing_id is not None:
            while target > self._horizon:
                self._parked.add(pairing_id)
                self._changed.set()
                await self._week_opened.wait()
            self._parked.discard(pairing_id)
        try:
            await self._move_clock(handle, target)
        except RPCError as exc:
            # The workflow finished meanwhile (an HR departure ended the pairing, the last
            # report completed the cohort): its clock has nowhere left to go.
            if "already completed" in str(exc):
                raise _Closed(handle.id) from exc
            raise

    async def _move_clock(self, handle: WorkflowHandle[Any, Any], target: datetime) -> None:
        """Fast-forward until the workflow's clock *reads* ``target`` or later.

        ``fast_forward`` returns once the server ends the fast-forward, which is not always at
        its target: the server ends a skipping session after ``max_session_skip_count`` skips
        and then reports the fast-forward failed (``fast_forward`` returns False). An update
        sent after a short move is decided at the earlier time: a meeting reported missed
        "before its time had come" was refused that way (docs/reliability.md). So the clock is
        read back after each move and moved again, by what is left, until it is there, however
        the move was cut short."""
        async def clock() -> datetime:
            return await self._skipper.get_current_time(handle)

        # Read the clock afresh on each attempt: a retried fast-forward must not overshoot
        # when the first attempt went through and only its reply was lost.
        async def forward() -> tuple[datetime, bool | None]:
            before = await clock()
            if before >= target:
                return before, None  # already there
            return before, await self._skipper.fast_forward(handle, target - before)

        stalls = rounds = 0
        while rounds < CLOCK_ROUNDS:
            rounds += 1
            before, completed = await self._retrying("clock", forward)
            if completed is None:
                return
            now = await self._retrying("clock", clock)
            if now >= target:
                return
            # Short of the target: the server ended the fast-forward early (False), or said it
            # completed while the clock reads earlier. Either way, move it again from there.
            self.log.retried["clock_short"] = self.log.retried.get("clock_short", 0) + 1
            # Expected (the server's skip limit per session), handled, and counted in the
            # run's log: info, not a warning on the demo's console.
            _log.info("simulation.clock_short", workflow_id=handle.id,
                      target=target.isoformat(), now=now.isoformat(),
                      fast_forward_completed=completed)
            # Virtual time also runs with the wall clock, so "no progress" is less than a
            # minute of it: no timer fired.
            stalls = stalls + 1 if now - before < timedelta(minutes=1) else 0
            if stalls >= CLOCK_STALLS:
                break
        raise RuntimeError(
            f"the clock of {handle.id} reads {now.isoformat()}, short of {target.isoformat()}, "
            f"after {rounds} fast-forwards ({stalls} in a row without moving it)")

    async def _retrying(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call()``, tried again after each transient failure (see ``transient``) with
        doubling pauses, for at most ``retry_for``; anything else is raised at once."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._retry_for.total_seconds()
        pause = RETRY_FIRST
        attempt = 1
        while True:
            try:
                return await call()
            except Exception as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # The SDK turns a cancelled update call into a (retryable-looking) error:
                    # the simulation is being stopped, so stop.
                    raise asyncio.CancelledError from exc
                if not transient(exc) or loop.time() + pause > give_up:
                    raise
                self.log.retried[what] = self.log.retried.get(what, 0) + 1
                _log.warning("simulation.retry", call=what, attempt=attempt,
                             retry_in_s=pause, error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(pause)  # backoff before the next attempt, not a workflow timer
            pause = min(pause * 2, RETRY_CAP)
            attempt += 1

    async def _query(self, handle: WorkflowHandle[Any, Any], query: Any) -> Any:
        return await self._retrying("query", lambda: handle.query(query))

    async def _result(self, handle: WorkflowHandle[Any, Any]) -> Any:
        return await self._retrying("result", lambda: handle.result())

    # --- the cohort ----------------------------------------------------------------------------

    async def run(self) -> CohortResult:
        """Drive the cohort to its end: from its start, or (a resumed simulation) from the
        week its workflow's clock has reached."""
        handle = cohort_handle(self._client, self._cohort_id)
        state = await self._wait_cohort(handle, lambda s: s.phase not in (
            CohortPhase.NOT_STARTED, CohortPhase.MATCHING, CohortPhase.AWAITING_APPROVAL))
        assert state.starts_at is not None
        starts_at: datetime = state.starts_at
        clock = starts_at + timedelta(minutes=5)
        if state.phase is CohortPhase.SCHEDULED:
            self._say(f"matched {len(state.pending_launch)} pairs; program starts "
                      f"{starts_at:%Y-%m-%d}")
        else:
            # Resumed: the cohort's clock is where the last run moved it (its last week, plus
            # the real time since). Pairings are never behind that week, some may be ahead.
            now = await self._retrying(
                "clock", lambda: self._skipper.get_current_time(handle))
            clock += WEEK * max(0, (now - clock) // WEEK)
            self._say(f"resuming at {clock:%Y-%m-%d} (week {(clock - starts_at) // WEEK}): "
                      f"{len(state.active)} pairings running, {state.completed} completed, "
                      f"{state.exited} exited")
        await self._advance_to(handle, clock)
        try:
            return await self._weeks(handle, starts_at, clock)
        finally:
            # Stopped (cancelled, or a failure): no pairing goes on acting on its own; what
            # they did is in their workflows, and a resumed run takes it from there.
            for task in self._running.values():
                task.cancel()
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def _weeks(self, handle: WorkflowHandle[Any, Any], starts_at: datetime,
                     clock: datetime) -> CohortResult:
        week = (clock - starts_at) // WEEK
        while True:
            state = await self._query(handle, CohortWorkflow.state)
            await self._retrying("database", functools.partial(self._assign_stories, state))
            for pairing_id in state.active:
                if pairing_id not in self._running:
                    self._running[pairing_id] = asyncio.create_task(
                        self._run_pairing(pairing_id), name=pairing_id)
            if state.phase is CohortPhase.COMPLETED:
                break
            if self._week3_export is not None and clock >= starts_at + timedelta(weeks=3):
                await self._week3_sync(self._week3_export)
                self._week3_export = None
                continue  # start the joiners' pairings before the week moves on
            # Open the next week to the pairings, wait until all of them have lived it,
            # then move the cohort's clock: exits reach it as signals, rematches and the end
            # of the rematch window happen on its own timers.
            clock += timedelta(weeks=1)
            self._horizon = clock
            # Everyone waiting for the horizon is released: until each has lived the new
            # week and parked again (or finished), the week is not over.
            self._parked.clear()
            opened, self._week_opened = self._week_opened, asyncio.Event()
            opened.set()
            while not self._all_parked():
                self._changed.clear()
                await self._changed.wait()
            self._check_failures()
            await self._run_endings(handle, clock)
            self._check_failures()
            try:
                await self._advance_to(handle, clock)
            except _Closed:
                break  # the last pairing's report completed the cohort meanwhile
            await asyncio.sleep(0.2)  # wall-clock breather for signals in flight, not a timer
            week += 1
            if week % 4 == 0:
                self._say(f"week {week}: {len(state.active)} pairings running, "
                          f"{state.completed} completed, {state.exited} exited, "
                          f"{len(state.waiting)} waiting for a rematch")
            if clock > starts_at + timedelta(days=400):
                raise RuntimeError("the simulated cohort did not finish within 400 days")
        await asyncio.gather(*self._running.values())
        result: CohortResult = await self._result(handle)
        return result

    async def _end_in_turn(self, pairing_id: str, target: datetime,
                           action: Callable[[], Awaitable[None]]) -> None:
        """Have ``action`` (which ends the pairing and waits for its workflow to finish) run
        once the week reaches ``target``, after the week's earlier endings (see _run_endings).

        Ending pairings report to the cohort, which records them in the order the reports
        arrive; run concurrently, the pairings that end in the same week would race, and the
        cohort's stream (and what follows: rematches) would differ from run to run."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._endings.append(_Ending(pairing_id, target, action, done))
        self._ending.add(pairing_id)
        self._changed.set()
        try:
            await done
        finally:
            self._ending.discard(pairing_id)

    async def _run_endings(self, cohort: WorkflowHandle[Any, Any], horizon: datetime) -> None:
        """The week's endings, in time order (to the minute, then pairing id), one at a
        time. The cohort's clock is moved to each ending's time first, so the cohort records it
        when it happens, and what it schedules from there (a rematch after the cool-off) falls
        on a time that does not depend on how long the simulator took to get there."""
        # To the minute: pairings' clocks run milliseconds apart (each started when the
        # server got to it), which must not decide the order of endings due together.
        due = sorted((x for x in self._endings if x.target <= horizon),
                     key=lambda x: (x.target.replace(second=0, microsecond=0), x.pairing_id))
        for ending in due:
            self._endings.remove(ending)
            try:
                await self._advance_to(cohort, ending.target)
                await ending.action()
            except _Closed:
                ending.done.set_result(None)  # ended from outside meanwhile
            except Exception as exc:  # handed to the pairing's task, which raises it
                ending.done.set_exception(exc)
            else:
                ending.done.set_result(None)

    def _all_parked(self) -> bool:
        return all(task.done() or pid in self._parked or pid in self._ending
                   for pid, task in self._running.items())

    def _check_failures(self) -> None:
        for task in self._running.values():
            if task.done() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    async def _wait_cohort(self, handle: WorkflowHandle[Any, Any],
                           check: Callable[[CohortState], bool]) -> CohortState:
        for _ in range(1200):
            state: CohortState = await self._query(handle, CohortWorkflow.state)
            if check(state):
                return state
            await asyncio.sleep(0.1)  # wall-clock poll while matching runs
        raise TimeoutError("the cohort did not get past matching in 2 minutes")

    async def _initial_pairs(self, state: CohortState) -> dict[str, ActivePairing]:
        """The pairs the cohort launched on its first day, as they were then (read from the
        cohort's stream, so a resumed simulation sees what the first run saw)."""
        if self._pool is None:
            return {p: a for p, a in state.active.items() if p.endswith(".1")}
        pool = self._pool
        rows = await self._retrying("database", lambda: pool.fetch(
            "SELECT payload::text AS payload FROM events WHERE stream_id = $1 "
            "AND type = 'PairingLaunched' ORDER BY version", cohort_stream(self._cohort_id)))
        launched = [p for p in (json.loads(r["payload"]) for r in rows)
                    if p.get("rematch_of") is None]
        if not launched:
            return {}
        # The first day's launch, not the joiners' (who start later, after a roster sync).
        first = min(datetime.fromisoformat(p["starts_at"]) for p in launched)
        return {p["pairing_id"]: ActivePairing(mentor_id=p["mentor_id"],
                                               mentee_id=p["mentee_id"])
                for p in launched if datetime.fromisoformat(p["starts_at"]) == first}

    async def _assign_stories(self, state: CohortState) -> None:
        """Pick the scripted pairings once, from the initial pairs, deterministically.

        The two exits that should lead to a rematch are given to pairs whose mentee has
        another eligible mentor with a free place, so the demo shows a rematch rather than
        "no eligible mentor" (which the product also handles, and reports)."""
        if self._scripted:
            return
        pairs = await self._initial_pairs(state)
        if len(pairs) < 6:
            return
        load: dict[str, int] = {}
        for pair in pairs.values():
            load[pair.mentor_id] = load.get(pair.mentor_id, 0) + 1
        rng = random.Random(self._seed)
        initial = sorted(pairs)
        rematchable = [p for p in initial if await self._could_rematch(pairs[p], load)]
        rng.shuffle(rematchable)
        exits = rematchable[:2] if len(rematchable) >= 2 else rng.sample(initial, 2)
        others = rng.sample([p for p in initial if p not in exits], 3)
        self._scripted = {
            exits[0]: "early_exit", exits[1]: "midpoint_quit",
            others[0]: "late_goals", others[1]: "stops_meeting", others[2]: "departure",
        }

    async def _could_rematch(self, pairing: ActivePairing, mentor_load: dict[str, int]) -> bool:
        if self._pool is None:
            return True
        from adapters.roster import load_profiles, load_program
        from domain.matching import rematch
        from domain.people import Role

        program = await load_program(self._pool, self._cohort_id)
        profiles = {p.employee_id: p for p in await load_profiles(self._pool, self._cohort_id)}
        free = {p.employee_id: p.capacity - mentor_load.get(p.employee_id, 0)
                for p in profiles.values() if p.role is Role.MENTOR}
        mentors = [profiles[m] for m, n in free.items() if n > 0]
        found = rematch(program, profiles[pairing.mentee_id], mentors,
                        today=program.start_date,
                        exclusions=frozenset({(pairing.mentor_id, pairing.mentee_id)}),
                        remaining_capacity=free)
        return found.partner is not None

    async def _week3_sync(self, export: Path) -> None:
        if self._pool is None:
            raise ValueError("a roster sync needs the database pool")
        pool = self._pool
        # Applying the same export again records nothing, so a retried (or resumed) sync is
        # harmless.
        plan, result = await self._retrying("sync", lambda: sync_roster(
            pool, self._client, self._cohort_id, export, synced_by="hr-sync", apply=True))
        self._say(f"HR export {plan.source} in week 3: {plan.diff.summary()}")
        if result is not None:
            for pair in result.proposed:
                self._say(f"  new hire {pair.mentee} matched with {pair.mentor} "
                          f"(score {pair.score:.2f})")
            for flag in result.flagged:
                self._say(f"  flagged {flag.pairing_id}: {flag.reason}")

    # --- one pairing -------------------------------------------------------------------------

    def _rng(self, pairing_id: str, purpose: str = "") -> random.Random:
        """A pairing's own RNG, from the seed and the pairing's id *within* its cohort, so
        the same seed replays the same program under any cohort id (two demos compare)."""
        local = pairing_id.removeprefix(f"{self._cohort_id}.")
        return random.Random(f"{self._seed}:{local}{purpose}")

    def _story(self, pairing_id: str) -> Story:
        rng = self._rng(pairing_id)
        story = Story(goals_day=rng.uniform(0.5, 6), attendance=rng.uniform(0.8, 0.97))
        script = self._scripted.get(pairing_id)
        if script == "late_goals":
            story.goals_day = 19.5
        elif script == "stops_meeting":
            story.stop_meeting_after, story.reports_missed = 6, False
        elif script == "early_exit":
            story.exit_at_meeting = 4
        elif script == "midpoint_quit":
            story.midpoint_quit = True
        elif script == "departure":
            story.mentee_leaves_after_days = 56
        return story

    async def _update(self, handle: WorkflowHandle[Any, Any], update: Any, command: Any,
                      step: str) -> bool:
        """Send one participant action; False once the pairing has closed.

        The update id names the step (``…:sim:meeting:7``), so the same action sent again (a
        lost reply, a retry after a worker died, a resumed simulation) is deduplicated by
        Temporal instead of being applied twice.
        """
        update_id = f"{handle.id}:sim:{step}"
        try:
            await self._retrying("update", lambda: handle.execute_update(
                update, command, id=update_id))
        except WorkflowUpdateFailedError as exc:
            self.log.refused += 1
            if "pairing_closed" in str(exc.cause) or "closed" in str(exc.cause):
                return False
            raise
        except RPCError as exc:
            if "already completed" in str(exc):
                return False
            raise
        self.log.updates_sent += 1
        return True

    async def _mentee_leaves(self, handle: WorkflowHandle[Any, Any], mentee_id: str,
                             t0: datetime, story: Story) -> None:
        """HR reports the departure to operations (on the cohort), which ends the pairing."""
        assert story.mentee_leaves_after_days is not None
        leaves_at = t0 + timedelta(days=story.mentee_leaves_after_days)
        await self._advance_to(handle, leaves_at)
        left_on = (leaves_at - timedelta(days=1)).date()
        cohort: CohortState = await self._query(
            cohort_handle(self._client, self._cohort_id), CohortWorkflow.state)
        if mentee_id not in cohort.left:  # else recorded before a stop (resumed) or a retry
            ended = await self._retrying("update", lambda: participant_left(
                self._client, self._cohort_id, mentee_id, left_on, "hr-sync"))
            self._say(f"HR: {mentee_id} left the company on {left_on}; "
                      f"ended {', '.join(ended)}")
        await self._result(handle)

    async def _end(self, handle: WorkflowHandle[Any, Any], update: Any, command: Any,
                   step: str) -> None:
        """Send the action that ends the pairing; return once its workflow has finished (and
        so has reported to the cohort)."""
        if await self._update(handle, update, command, step):
            await self._result(handle)

    async def _state(self, handle: WorkflowHandle[Any, Any]) -> PairingState:
        state: PairingState = await self._query(handle, PairingWorkflow.state)
        return state

    async def _run_pairing(self, pairing_id: str) -> None:
        try:
            await self._live_pairing(pairing_id)
        except _Closed:
            pass  # ended from outside (HR, operations) while this pair was mid-week
        finally:
            self._changed.set()  # a finished pairing no longer holds the week back

    async def _live_pairing(self, pairing_id: str) -> None:
        """One pairing's story, from wherever its workflow is: every step is chosen from the
        pairing's state and drawn from its own RNG, so a resumed run continues the story."""
        handle = self._client.get_workflow_handle_for(
            PairingWorkflow.run, pairing_workflow_id(pairing_id))
        story = self._story(pairing_id)
        state = await self._state(handle)
        # Pairings wait for their start (the program's first day, or the rematch day on the
        # cohort's clock): move this pairing's clock there first.
        scheduled = await self._query(handle, PairingWorkflow.scheduled_start)
        if state.phase is Phase.NOT_STARTED and scheduled is not None:
            await self._advance_to(handle, scheduled + timedelta(minutes=10), pairing_id)
            state = await self._state(handle)
        while state.phase is Phase.NOT_STARTED:
            await asyncio.sleep(0.05)  # wall-clock wait for the first task to be processed
            state = await self._state(handle)
        if state.started_at is None or state.is_closed:
            return
        t0 = state.started_at
        mentor, mentee = c.Actor.employee(state.mentor_id), c.Actor.employee(state.mentee_id)
        rules = state.rules
        assert rules is not None
        topics = list(rules.topics)

        await self._advance_to(handle, t0 + timedelta(days=story.goals_day), pairing_id)
        for who, side in ((mentee, e.Side.MENTEE), (mentor, e.Side.MENTOR)):
            if side in state.goals:
                continue  # set before a stop
            goals = (
                e.Goal(goal_id=f"{side}-1", title="Keterampilan IT untuk pekerjaan sehari-hari"
                       if side is e.Side.MENTEE else "Kepemimpinan: membimbing rekan",
                       success_measure="dinilai bersama pada evaluasi akhir"),
                e.Goal(goal_id=f"{side}-2", title="Jejaring lintas departemen",
                       success_measure="tiga kenalan baru di departemen lain"),
            )
            if not await self._update(handle, PairingWorkflow.set_goals,
                                      c.SetGoals(actor=who, goals=goals), f"goals:{side}"):
                return
        while True:
            state = await self._state(handle)
            if state.is_closed:
                return
            pending = state.next_meeting
            mid = rules.midpoint_opens(t0)
            reviewed = len(state.midpoint_reviews) == 2 or state.midpoint_closed
            if (not reviewed and mid is not None
                    and (pending is None or pending.scheduled_at > mid)):
                draw = self._rng(pairing_id, ":midpoint")
                reviewed_at = mid + timedelta(hours=draw.uniform(2, 60))
                satisfaction = {e.Side.MENTEE: draw.randint(3, 5),
                                e.Side.MENTOR: draw.randint(3, 5)}
                await self._advance_to(handle, reviewed_at, pairing_id)
                for who, side in ((mentee, e.Side.MENTEE), (mentor, e.Side.MENTOR)):
                    if side in state.midpoint_reviews:
                        continue
                    quit_ = story.midpoint_quit and side is e.Side.MENTEE
                    ok = await self._update(handle, PairingWorkflow.submit_midpoint_review,
                                            c.SubmitMidpointReview(
                                                actor=who,
                                                satisfaction=2 if quit_ else satisfaction[side],
                                                wants_to_continue=not quit_),
                                            f"midpoint:{side}")
                    if not ok:
                        return
                continue
            if story.midpoint_quit and reviewed:
                at = mid + timedelta(hours=self._rng(pairing_id, ":midpoint").uniform(2, 60)) \
                    if mid is not None else t0

                async def not_a_fit() -> None:
                    await self._end(handle, PairingWorkflow.request_exit, c.RequestExit(
                        actor=mentee, reason=e.ExitReason.NOT_A_FIT), "exit")

                await self._end_in_turn(pairing_id, at, not_a_fit)
                return
            if pending is None:
                break
            n = pending.meeting_no
            if (story.mentee_leaves_after_days is not None
                    and pending.scheduled_at + HOUR
                    > t0 + timedelta(days=story.mentee_leaves_after_days)):
                await self._end_in_turn(
                    pairing_id, t0 + timedelta(days=story.mentee_leaves_after_days),
                    lambda: self._mentee_leaves(handle, mentee.id, t0, story))
                return
            if story.exit_at_meeting == n:
                leaves_at = pending.scheduled_at - timedelta(hours=30)

                async def leave(at: datetime = leaves_at) -> None:
                    await self._advance_to(handle, at)
                    await self._end(handle, PairingWorkflow.request_exit, c.RequestExit(
                        actor=mentor, reason=e.ExitReason.SCHEDULE_CONFLICT), "exit")

                await self._end_in_turn(pairing_id, leaves_at, leave)
                return
            stopped = story.stop_meeting_after is not None and n > story.stop_meeting_after
            if stopped:
                # Nobody logs anything: the slot passes, the system notices, the ladder
                # nudges and then escalates; after four misses operations end it.
                await self._advance_to(handle, _noticed(state, rules, pending), pairing_id)
                if state.consecutive_missed >= 4:
                    async def conclude() -> None:
                        await self._end(handle, PairingWorkflow.request_exit, c.RequestExit(
                            actor=c.Actor.ops("koordinator"), reason=e.ExitReason.INACTIVITY),
                            "exit")

                    await self._end_in_turn(
                        pairing_id, rules.log_deadline(pending.scheduled_at) + HOUR, conclude)
                    return
                continue
            await self._advance_to(handle, pending.scheduled_at + HOUR, pairing_id)
            rng = self._rng(pairing_id, f":meeting:{n}")
            held = rng.random() < story.attendance
            if held:
                ok = await self._update(handle, PairingWorkflow.log_meeting, c.LogMeeting(
                    actor=rng.choice((mentor, mentee)), meeting_no=n, held=True,
                    minutes=rng.choice((45, 60, 60, 75)),
                    topics=tuple(rng.sample(topics, TOPIC_PICKS)),
                    goal_progress={"mentee-1": min(100, 4 * n + rng.randint(0, 10)),
                                   "mentor-1": min(100, 3 * n + rng.randint(0, 10))}),
                    f"meeting:{n}")
            elif story.reports_missed:
                ok = await self._update(handle, PairingWorkflow.log_meeting, c.LogMeeting(
                    actor=mentee, meeting_no=n, held=False), f"meeting:{n}")
            else:
                await self._advance_to(handle, _noticed(state, rules, pending), pairing_id)
                ok = True
            if not ok:
                return
        end = rules.program_end(t0)
        closes = rules.final_evaluation_closes(t0)
        if end is None or closes is None:
            return
        rng = self._rng(pairing_id, ":final")
        evaluated_at = end + timedelta(hours=rng.uniform(2, 100))
        evaluations = [
            (side, c.SubmitFinalEvaluation(
                actor=who,
                goal_attainment={f"{side}-1": rng.randint(40, 100),
                                 f"{side}-2": rng.randint(30, 100)},
                relationship_rating=rng.randint(3, 5),
                program_rating=rng.randint(3, 5),
                learned=rng.choice(texts),
                would_recommend=rng.random() < 0.85))
            for who, texts, side in ((mentor, LEARNED_MENTOR, e.Side.MENTOR),
                                     (mentee, LEARNED_MENTEE, e.Side.MENTEE))
            if rng.random() >= 0.08  # some never fill it in; the window closes anyway
        ]

        # Only the step that ends the pairing waits for its turn (see _end_in_turn); whatever
        # cannot end it is the pairing's own business and runs alongside the other pairings
        # (measured: the endings in turn were 58 % of a 200-person run, and after the first
        # evaluations left, half of the rest was clock moves that end nothing). What ends it
        # is the evaluation that makes two, or else the window's close. So, before the turn:
        # every evaluation but one that makes two (counting those a stopped run left behind),
        # and, when the close is what ends it, the clock up to just before the close (the
        # window's reminders are each a skip of the dev server's clock, about half a second).
        await self._advance_to(handle, evaluated_at, pairing_id)
        done = set((await self._state(handle)).final_evaluations)
        unsent = [(side, ev) for side, ev in evaluations if side not in done]
        completes = len(done) + len(unsent) >= 2
        for side, evaluation in unsent[:-1] if completes else unsent:
            if not await self._update(handle, PairingWorkflow.submit_final_evaluation,
                                      evaluation, f"final:{side}"):
                return
        last = unsent[-1:] if completes else []
        if not last:
            await self._advance_to(handle, closes - timedelta(minutes=1), pairing_id)

        async def finish() -> None:
            completed = False
            for side, evaluation in last:
                completed = await self._update(handle, PairingWorkflow.submit_final_evaluation,
                                               evaluation, f"final:{side}")
            # The evaluation that made two completed the pairing: moving the clock of a
            # finished workflow only costs the server's answer (measured: 0.4 s an ending).
            if not completed:
                await self._advance_to(handle, closes + HOUR)
            await self._result(handle)

        await self._end_in_turn(pairing_id, closes + HOUR, finish)
