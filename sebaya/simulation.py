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
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError
from temporalio.testing import TimeSkipper

from domain import commands as c
from domain import events as e
from domain.cohort import CohortPhase, CohortState
from domain.ids import pairing_workflow_id
from domain.pairing import PairingState, Phase
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
    ) -> None:
        self._client = client
        self._skipper = skipper
        self._cohort_id = cohort_id
        self._seed = seed
        self._say = say
        self._pool = pool
        # The HR export of week 3 (new hires): applied with ``cohort sync --apply``'s function.
        self._week3_export = week3_export
        self._running: dict[str, asyncio.Task[None]] = {}
        self._scripted: dict[str, str] = {}
        self.log = SimulationLog()
        # Lockstep: no pairing's clock passes the cohort's, so an HR event or a rematch on
        # the cohort's clock meets the pairings where they are. Pairings wait at the horizon;
        # the cohort moves a week once every running pairing is waiting there (or done).
        self._horizon = datetime.min.replace(tzinfo=UTC)
        self._turn = asyncio.Condition()
        self._parked: set[str] = set()  # waiting for the horizon to pass their next step
        self._ending: set[str] = set()  # waiting for the cohort's loop to run their ending
        self._sent: dict[str, int] = {}
        # Actions that end a pairing, run by the cohort's loop in pairing-id order (below).
        self._endings: list[_Ending] = []

    # --- clocks --------------------------------------------------------------------------------

    async def _advance_to(self, handle: WorkflowHandle[Any, Any], target: datetime,
                          pairing_id: str | None = None) -> None:
        if pairing_id is not None:
            async with self._turn:
                while target > self._horizon:
                    self._parked.add(pairing_id)
                    self._turn.notify_all()
                    await self._turn.wait()
                self._parked.discard(pairing_id)
        try:
            now = await self._skipper.get_current_time(handle)
            if target > now:
                await self._skipper.fast_forward(handle, target - now)
        except RPCError as exc:
            # The workflow finished meanwhile (an HR departure ended the pairing, the last
            # report completed the cohort): its clock has nowhere left to go.
            if "already completed" in str(exc):
                raise _Closed(handle.id) from exc
            raise

    # --- the cohort ----------------------------------------------------------------------------

    async def run(self) -> CohortResult:
        handle = cohort_handle(self._client, self._cohort_id)
        state = await self._wait_cohort(handle, lambda s: s.phase not in (
            CohortPhase.NOT_STARTED, CohortPhase.MATCHING, CohortPhase.AWAITING_APPROVAL))
        assert state.starts_at is not None
        starts_at: datetime = state.starts_at
        self._say(f"matched {len(state.pending_launch)} pairs; program starts "
                  f"{starts_at:%Y-%m-%d}")
        clock = starts_at + timedelta(minutes=5)
        await self._advance_to(handle, clock)
        week = 0
        while True:
            state = await handle.query(CohortWorkflow.state)
            await self._assign_stories(state)
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
            async with self._turn:
                self._horizon = clock
                # Everyone waiting for the horizon is released: until each has lived the new
                # week and parked again (or finished), the week is not over.
                self._parked.clear()
                self._turn.notify_all()
                await self._turn.wait_for(self._all_parked)
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
        result: CohortResult = await handle.result()
        return result

    async def _end_in_turn(self, pairing_id: str, target: datetime,
                           action: Callable[[], Awaitable[None]]) -> None:
        """Have ``action`` (which ends the pairing and waits for its workflow to finish) run
        once the week reaches ``target``, after the week's earlier endings (see _run_endings).

        Ending pairings report to the cohort, which records them in the order the reports
        arrive; run concurrently, the pairings that end in the same week would race, and the
        cohort's stream (and what follows: rematches) would differ from run to run."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        async with self._turn:
            self._endings.append(_Ending(pairing_id, target, action, done))
            self._ending.add(pairing_id)
            self._turn.notify_all()
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
            state: CohortState = await handle.query(CohortWorkflow.state)
            if check(state):
                return state
            await asyncio.sleep(0.1)  # wall-clock poll while matching runs
        raise TimeoutError("the cohort did not get past matching in 2 minutes")

    async def _assign_stories(self, state: CohortState) -> None:
        """Pick the scripted pairings once, from the initial pairs, deterministically.

        The two exits that should lead to a rematch are given to pairs whose mentee has
        another eligible mentor with a free place, so the demo shows a rematch rather than
        "no eligible mentor" (which the product also handles, and reports)."""
        if self._scripted or len(state.active) < 6:
            return
        rng = random.Random(self._seed)
        initial = sorted(p for p in state.active if p.endswith(".1"))
        rematchable = [p for p in initial if await self._could_rematch(state, p)]
        rng.shuffle(rematchable)
        exits = rematchable[:2] if len(rematchable) >= 2 else rng.sample(initial, 2)
        others = rng.sample([p for p in initial if p not in exits], 3)
        self._scripted = {
            exits[0]: "early_exit", exits[1]: "midpoint_quit",
            others[0]: "late_goals", others[1]: "stops_meeting", others[2]: "departure",
        }

    async def _could_rematch(self, state: CohortState, pairing_id: str) -> bool:
        if self._pool is None:
            return True
        from adapters.roster import load_profiles, load_program
        from domain.matching import rematch
        from domain.people import Role

        program = await load_program(self._pool, self._cohort_id)
        profiles = {p.employee_id: p for p in await load_profiles(self._pool, self._cohort_id)}
        pairing = state.active[pairing_id]
        free = {p.employee_id: p.capacity - state.mentor_load.get(p.employee_id, 0)
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
        plan, result = await sync_roster(self._pool, self._client, self._cohort_id, export,
                                         synced_by="hr-sync", apply=True)
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

    async def _update(self, handle: WorkflowHandle[Any, Any], update: Any, command: Any) -> bool:
        """Send one participant action; False once the pairing has closed.

        Each action has its own update id, so resending it after a lost reply is deduplicated
        by Temporal instead of being applied twice.
        """
        self._sent[handle.id] = self._sent.get(handle.id, 0) + 1
        update_id = f"{handle.id}:sim:{self._sent[handle.id]}"
        try:
            for attempt in range(5):
                try:
                    await handle.execute_update(update, command, id=update_id)
                    break
                except WorkflowUpdateRPCTimeoutOrCancelledError:
                    if attempt == 4:
                        raise
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
        ended = await participant_left(self._client, self._cohort_id, mentee_id, left_on,
                                       "hr-sync")
        self._say(f"HR: {mentee_id} left the company on {left_on}; ended {', '.join(ended)}")
        await handle.result()

    async def _end(self, handle: WorkflowHandle[Any, Any], update: Any, command: Any) -> None:
        """Send the action that ends the pairing; return once its workflow has finished (and
        so has reported to the cohort)."""
        if await self._update(handle, update, command):
            await handle.result()

    async def _state(self, handle: WorkflowHandle[Any, Any]) -> PairingState | None:
        for _ in range(100):
            try:
                state: PairingState = await handle.query(PairingWorkflow.state)
            except WorkflowQueryFailedError:
                # A worker under load failed the activation (deadlock detector); it retries.
                await asyncio.sleep(0.2)  # wall-clock retry of the RPC
                continue
            except RPCError as exc:
                if "not scheduled yet" in str(exc) or "deadlock" in str(exc).lower():
                    await asyncio.sleep(0.05)  # wall-clock retry of the RPC
                    continue
                raise
            return state
        return None

    async def _run_pairing(self, pairing_id: str) -> None:
        try:
            await self._live_pairing(pairing_id)
        except _Closed:
            pass  # ended from outside (HR, operations) while this pair was mid-week
        finally:
            async with self._turn:
                self._turn.notify_all()  # a finished pairing no longer holds the week back

    async def _live_pairing(self, pairing_id: str) -> None:
        handle = self._client.get_workflow_handle_for(
            PairingWorkflow.run, pairing_workflow_id(pairing_id))
        rng = self._rng(pairing_id, ":acts")
        story = self._story(pairing_id)
        state = await self._state(handle)
        # Pairings wait for their start (the program's first day, or the rematch day on the
        # cohort's clock): move this pairing's clock there first.
        scheduled = await handle.query(PairingWorkflow.scheduled_start)
        if state is not None and state.phase is Phase.NOT_STARTED and scheduled is not None:
            await self._advance_to(handle, scheduled + timedelta(minutes=10), pairing_id)
            state = await self._state(handle)
        while state is not None and state.phase is Phase.NOT_STARTED:
            await asyncio.sleep(0.05)  # wall-clock wait for the first task to be processed
            state = await self._state(handle)
        if state is None or state.started_at is None:
            return
        t0 = state.started_at
        mentor, mentee = c.Actor.employee(state.mentor_id), c.Actor.employee(state.mentee_id)
        rules = state.rules
        assert rules is not None
        topics = list(rules.topics)

        await self._advance_to(handle, t0 + timedelta(days=story.goals_day), pairing_id)
        for who, prefix in ((mentee, "mentee"), (mentor, "mentor")):
            goals = (
                e.Goal(goal_id=f"{prefix}-1", title="Keterampilan IT untuk pekerjaan sehari-hari"
                       if prefix == "mentee" else "Kepemimpinan: membimbing rekan",
                       success_measure="dinilai bersama pada evaluasi akhir"),
                e.Goal(goal_id=f"{prefix}-2", title="Jejaring lintas departemen",
                       success_measure="tiga kenalan baru di departemen lain"),
            )
            if not await self._update(handle, PairingWorkflow.set_goals,
                                      c.SetGoals(actor=who, goals=goals)):
                return
        mid_done = False
        while True:
            state = await self._state(handle)
            if state is None or state.is_closed:
                return
            pending = state.next_meeting
            mid = rules.midpoint_opens(t0)
            if (not mid_done and mid is not None
                    and (pending is None or pending.scheduled_at > mid)):
                reviewed_at = mid + timedelta(hours=rng.uniform(2, 60))
                await self._advance_to(handle, reviewed_at, pairing_id)
                for who in (mentee, mentor):
                    quit_ = story.midpoint_quit and who is mentee
                    ok = await self._update(handle, PairingWorkflow.submit_midpoint_review,
                                            c.SubmitMidpointReview(
                                                actor=who,
                                                satisfaction=2 if quit_ else rng.randint(3, 5),
                                                wants_to_continue=not quit_))
                    if not ok:
                        return
                if story.midpoint_quit:
                    async def not_a_fit() -> None:
                        await self._end(handle, PairingWorkflow.request_exit, c.RequestExit(
                            actor=mentee, reason=e.ExitReason.NOT_A_FIT))

                    await self._end_in_turn(pairing_id, reviewed_at, not_a_fit)
                    return
                mid_done = True
                continue
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
                        actor=mentor, reason=e.ExitReason.SCHEDULE_CONFLICT))

                await self._end_in_turn(pairing_id, leaves_at, leave)
                return
            stopped = story.stop_meeting_after is not None and n > story.stop_meeting_after
            if stopped:
                # Nobody logs anything: the slot passes, the system notices, the ladder
                # nudges and then escalates; after four misses operations end it.
                await self._advance_to(
                    handle, rules.log_deadline(pending.scheduled_at) + HOUR, pairing_id
                )
                if state.consecutive_missed >= 4:
                    async def conclude() -> None:
                        await self._end(handle, PairingWorkflow.request_exit, c.RequestExit(
                            actor=c.Actor.ops("koordinator"), reason=e.ExitReason.INACTIVITY))

                    await self._end_in_turn(
                        pairing_id, rules.log_deadline(pending.scheduled_at) + HOUR, conclude)
                    return
                continue
            await self._advance_to(handle, pending.scheduled_at + HOUR, pairing_id)
            held = rng.random() < story.attendance
            if held:
                ok = await self._update(handle, PairingWorkflow.log_meeting, c.LogMeeting(
                    actor=rng.choice((mentor, mentee)), meeting_no=n, held=True,
                    minutes=rng.choice((45, 60, 60, 75)),
                    topics=tuple(rng.sample(topics, TOPIC_PICKS)),
                    goal_progress={"mentee-1": min(100, 4 * n + rng.randint(0, 10)),
                                   "mentor-1": min(100, 3 * n + rng.randint(0, 10))}))
            elif story.reports_missed:
                ok = await self._update(handle, PairingWorkflow.log_meeting, c.LogMeeting(
                    actor=mentee, meeting_no=n, held=False))
            else:
                await self._advance_to(
                    handle, rules.log_deadline(pending.scheduled_at) + HOUR, pairing_id
                )
                ok = True
            if not ok:
                return
        end = rules.program_end(t0)
        closes = rules.final_evaluation_closes(t0)
        if end is None or closes is None:
            return
        evaluated_at = end + timedelta(hours=rng.uniform(2, 100))
        evaluations = [
            c.SubmitFinalEvaluation(
                actor=who,
                goal_attainment={f"{side}-1": rng.randint(40, 100),
                                 f"{side}-2": rng.randint(30, 100)},
                relationship_rating=rng.randint(3, 5),
                program_rating=rng.randint(3, 5),
                learned=rng.choice(texts),
                would_recommend=rng.random() < 0.85)
            for who, texts, side in ((mentor, LEARNED_MENTOR, "mentor"),
                                     (mentee, LEARNED_MENTEE, "mentee"))
            if rng.random() >= 0.08  # some never fill it in; the window closes anyway
        ]

        async def finish() -> None:
            await self._advance_to(handle, evaluated_at)
            for evaluation in evaluations:
                if not await self._update(handle, PairingWorkflow.submit_final_evaluation,
                                          evaluation):
                    break
            await self._advance_to(handle, closes + HOUR)
            await handle.result()

        # The last evaluation may complete the pairing, or the window's close does: either
        # way it ends, so the whole finale takes its turn once the window has closed.
        await self._end_in_turn(pairing_id, closes + HOUR, finish)

