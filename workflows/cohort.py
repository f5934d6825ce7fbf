"""One workflow per program cohort: match, (approve,) launch the pairings, rematch after
no-fault exits, record departures, finish when the last pairing has ended.

Pairings run as their own workflows, started by an activity and linked back by
``report_to``: each tells the cohort when it ends (a signal). They are not child workflows on
purpose: a parent may hold at most a few thousand pending children and carries three history
events per child, which a 10,000-person cohort would exceed; and a parent with running
children cannot skip time, which simulations need (docs/adr/0003-cohort-pairings.md).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pydantic import BaseModel, ConfigDict
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.cohort import (
        CohortActivities,
        EndPairingInput,
        LaunchInput,
        RematchInput,
        ScorePairsInput,
        StreamPosition,
    )
    from activities.envelope import envelopes
    from activities.store import (
        AppendEventsInput,
        ReadEventsInput,
        StoreActivities,
        StoredEvent,
    )
    from domain import cohort as co
    from domain import cohort_events as ce
    from domain import errors
    from domain.events import EVENTS_BY_TYPE, DomainEvent
    from domain.ids import cohort_stream, pairing_id_for
    from domain.program import ProgramSpec
    from workflows.pairing import PairingOutcome
    from workflows.search_attributes import upsert_for_cohort

APPEND_TIMEOUT = timedelta(seconds=30)
APPEND_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30),
                           non_retryable_error_types=["WrongExpectedVersion", "EventIdConflict"])
# Matching 10,000 people takes seconds; the bound leaves room for a busy machine.
MATCHING_TIMEOUT = timedelta(minutes=10)
SLOW_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1))

# Pairings launched per activity call, and events per cohort run before continuing as new.
LAUNCH_BATCH = 250
DEFAULT_MAX_HISTORY_EVENTS = 5000
# Launch batches are few events but large ones (~125 KB per 250 pairings): a 10,000-person
# cohort's launch run reaches ~4 MB in ~200 events, so size matters as much as length.
MAX_HISTORY_BYTES = 2 * 1024 * 1024


class CohortInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    cohort_id: str
    program: ProgramSpec
    people_digest: str
    mentors: int
    mentees: int
    task_queue: str
    members: dict[str, str]
    started_by: str = "ops"
    carried_state: co.CohortState | None = None
    max_history_events: int = DEFAULT_MAX_HISTORY_EVENTS


class CohortResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    cohort_id: str
    launched: int
    completed: int
    exited: int
    rematched: int


def _refuse(exc: errors.DomainError) -> ApplicationError:
    return ApplicationError(str(exc), type=exc.code, non_retryable=True)


@workflow.defn(name="CohortWorkflow")
class CohortWorkflow:
    @workflow.init
    def __init__(self, inp: CohortInput) -> None:
        self._input = inp
        self._state = inp.carried_state or co.CohortState()
        self._lock = asyncio.Lock()
        self._ended: list[PairingOutcome] = []
        self._left: list[co.ParticipantLeftCommand] = []
        self._approval: co.ApproveProposal | None = None
        self._wake = False

    @workflow.query
    def state(self) -> co.CohortState:
        return self._state

    # --- messages --------------------------------------------------------------------------

    @workflow.signal
    def pairing_ended(self, outcome: PairingOutcome) -> None:
        self._ended.append(outcome)
        self._wake = True

    @workflow.update
    async def approve(self, cmd: co.ApproveProposal) -> int:
        async with self._lock:
            rescored: dict[tuple[str, str], float] = {}
            created = co.swap_pairs(self._state, cmd)
            if created:
                scores = await workflow.execute_activity_method(
                    CohortActivities.score_pairs,
                    ScorePairsInput(cohort_id=self._state.cohort_id,
                                    run_id=self._state.proposal_run_id or "",
                                    pairs=created, today=workflow.now()),
                    start_to_close_timeout=MATCHING_TIMEOUT, retry_policy=SLOW_RETRY,
                )
                rescored = {tuple(k.split("|", 1)): v for k, v in scores.items()}  # type: ignore[misc]
            try:
                events = co.approve(self._state, cmd, rescored)
            except errors.DomainError as exc:
                raise _refuse(exc) from exc
            await self._record(events, cmd.approved_by)
        self._wake = True
        return len(self._state.pending_launch)

    @approve.validator
    def _validate_approve(self, cmd: co.ApproveProposal) -> None:
        if self._state.phase is not co.CohortPhase.AWAITING_APPROVAL:
            raise _refuse(errors.NotAllowedNow(
                f"nothing awaits approval (cohort is {self._state.phase.value})"))
        proposed = {(p.mentor, p.mentee) for p in self._state.proposal}
        for pair in (*cmd.drop, *(p for s in cmd.swap for p in s)):
            if tuple(pair) not in proposed:
                raise _refuse(errors.InvalidCommand(
                    f"{pair[0]}-{pair[1]} is not a proposed pair"))

    @workflow.update
    async def participant_left(self, cmd: co.ParticipantLeftCommand) -> list[str]:
        async with self._lock:
            try:
                events = co.participant_left(self._state, cmd, list(self._input.members))
            except errors.DomainError as exc:
                raise _refuse(exc) from exc
            await self._record(events, f"ops:{cmd.recorded_by}")
            pairings = self._state.active_pairings_of(cmd.employee_id)
        for pairing_id in pairings:
            await workflow.execute_activity_method(
                CohortActivities.end_pairing,
                EndPairingInput(pairing_id=pairing_id, leaving_employee_id=cmd.employee_id,
                                recorded_by=cmd.recorded_by),
                start_to_close_timeout=timedelta(minutes=2),
            )
        self._wake = True
        return pairings

    @participant_left.validator
    def _validate_left(self, cmd: co.ParticipantLeftCommand) -> None:
        try:
            co.participant_left(self._state, cmd, list(self._input.members))
        except errors.DomainError as exc:
            raise _refuse(exc) from exc

    # --- the run -----------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: CohortInput) -> CohortResult:
        if self._state.phase is co.CohortPhase.NOT_STARTED:
            await self._start(inp)
        while self._state.phase is not co.CohortPhase.COMPLETED:
            await self._step(inp)
            if self._state.phase is co.CohortPhase.COMPLETED:
                break
            if self._history_is_long():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(inp.model_copy(update={"carried_state": self._state}))
            due = co.next_due(self._state)
            timeout = None if due is None else max(due - workflow.now(), timedelta(0))
            if timeout is None or timeout > timedelta(0):
                try:
                    await workflow.wait_condition(
                        lambda: self._wake or bool(self._ended), timeout=timeout)
                except TimeoutError:
                    pass
            self._wake = False
        await workflow.wait_condition(workflow.all_handlers_finished)
        s = self._state
        return CohortResult(cohort_id=s.cohort_id, launched=s.launched, completed=s.completed,
                            exited=s.exited, rematched=s.rematched)

    async def _start(self, inp: CohortInput) -> None:
        async with self._lock:
            started = co.cohort_started(inp.cohort_id, inp.program, inp.people_digest,
                                        inp.mentors, inp.mentees, workflow.now())
            await self._record([started], f"ops:{inp.started_by}")
            proposal = await workflow.execute_activity_method(
                CohortActivities.run_matching, self._position(),
                start_to_close_timeout=MATCHING_TIMEOUT, retry_policy=SLOW_RETRY,
            )
            await self._refresh(proposal.last_version)
            if inp.program.approval.value == "auto":
                events = co.approve(self._state, co.ApproveProposal(approved_by="system:auto"))
                await self._record(events, "system:sebaya")

    async def _step(self, inp: CohortInput) -> None:
        async with self._lock:
            now = workflow.now()
            events: list[DomainEvent] = []
            while self._ended:
                outcome = self._ended.pop(0)
                events += co.pairing_ended(co.fold(events, self._state), _ended_event(outcome),
                                           now)
            if events:
                await self._record(events, "system:sebaya")
            if self._state.phase in (co.CohortPhase.SCHEDULED, co.CohortPhase.RUNNING) and (
                self._state.starts_at is not None and now >= self._state.starts_at
            ):
                await self._launch_pending(inp)
            for employee_id in co.due_for_rematch(self._state, now):
                await self._rematch(inp, employee_id)
            expired = co.expired_waiting(self._state, now)
            if expired:
                await self._record(expired, "system:sebaya")
            if co.is_finished(self._state):
                await self._record([co.completed(self._state, now)], "system:sebaya")

    async def _launch_pending(self, inp: CohortInput) -> None:
        while self._state.pending_launch:
            batch = list(self._state.pending_launch[:LAUNCH_BATCH])
            await self._launch(inp, batch)

    async def _launch(self, inp: CohortInput, specs: list[co.LaunchSpec]) -> None:
        assert self._state.starts_at is not None
        await workflow.execute_activity_method(
            CohortActivities.launch_pairings,
            LaunchInput(cohort_id=inp.cohort_id, cohort_workflow_id=workflow.info().workflow_id,
                        task_queue=inp.task_queue,
                        start_at=max(self._state.starts_at, workflow.now()),
                        ground_rules=inp.program.ground_rules, specs=specs),
            start_to_close_timeout=MATCHING_TIMEOUT,
            heartbeat_timeout=timedelta(minutes=1), retry_policy=SLOW_RETRY,
        )
        starts_at = max(self._state.starts_at, workflow.now())
        launched: list[DomainEvent] = [
            ce.PairingLaunched(pairing_id=s.pairing_id, mentor_id=s.mentor_id,
                               mentee_id=s.mentee_id, score=s.score, starts_at=starts_at,
                               rematch_of=s.rematch_of)
            for s in specs
        ]
        await self._record(launched, "system:sebaya")

    async def _rematch(self, inp: CohortInput, employee_id: str) -> None:
        s = self._state
        waiting = s.waiting[employee_id]
        mentee = employee_id if waiting.role == "mentee" else None
        attempt = (s.attempts.get(mentee, 0) + 1) if mentee else s.match_runs + 1
        outcome = await workflow.execute_activity_method(
            CohortActivities.find_rematch,
            RematchInput(at=self._position(), employee_id=employee_id, role=waiting.role,
                         attempt=attempt, exclusions=list(s.exclusions),
                         mentor_load=dict(s.mentor_load), busy=sorted(s.busy),
                         left=sorted(s.left)),
            start_to_close_timeout=MATCHING_TIMEOUT, retry_policy=SLOW_RETRY,
        )
        await self._refresh(outcome.last_version)
        if outcome.partner is None:
            await self._record([ce.RematchNotPossible(
                employee_id=employee_id, reason=outcome.reason or "no eligible partner")],
                "system:sebaya")
            return
        mentor, mentee_id = ((outcome.partner, employee_id) if waiting.role == "mentee"
                             else (employee_id, outcome.partner))
        pairing_id = pairing_id_for(s.cohort_id, mentor, mentee_id,
                                    self._state.attempts.get(mentee_id, 0) + 1)
        await self._launch(inp, [co.LaunchSpec(
            pairing_id=pairing_id, mentor_id=mentor, mentee_id=mentee_id, score=outcome.score,
            run_id=outcome.run_id, rematch_of=waiting.after_pairing)])

    # --- recording ---------------------------------------------------------------------------

    def _position(self) -> StreamPosition:
        info = workflow.info()
        return StreamPosition(cohort_id=self._input.cohort_id,
                              expected_version=self._state.version,
                              occurred_at=workflow.now(), workflow_id=info.workflow_id,
                              run_id=info.run_id)

    async def _refresh(self, last_version: int) -> None:
        """Fold what an activity appended on our behalf (the match runs)."""
        if last_version <= self._state.version:
            return
        stored = await workflow.execute_local_activity_method(
            StoreActivities.read_events,
            ReadEventsInput(stream_id=cohort_stream(self._input.cohort_id),
                            after_version=self._state.version),
            start_to_close_timeout=APPEND_TIMEOUT, retry_policy=APPEND_RETRY,
        )
        self._state = co.fold(_decode(stored), self._state)
        upsert_for_cohort(self._state)

    async def _record(self, events: list[DomainEvent], actor: str) -> None:
        if not events:
            return
        info = workflow.info()
        stream = cohort_stream(self._input.cohort_id)
        new = envelopes(stream, self._state.version, events, [actor] * len(events),
                        occurred_at=workflow.now(), workflow_id=info.workflow_id,
                        run_id=info.run_id, correlation_id=self._input.cohort_id)
        appended = await workflow.execute_local_activity_method(
            StoreActivities.append_events,
            AppendEventsInput(stream_id=stream, expected_version=self._state.version,
                              events=new),
            start_to_close_timeout=APPEND_TIMEOUT, retry_policy=APPEND_RETRY,
        )
        # As for pairings: fold what the store holds, which history records.
        self._state = co.fold(_decode(appended.stored), self._state)
        upsert_for_cohort(self._state)

    def _history_is_long(self) -> bool:
        info = workflow.info()
        if (info.is_continue_as_new_suggested()
                or info.get_current_history_length() >= self._input.max_history_events):
            return True
        # Added after the first release: a cohort already running decides as it did before.
        return (workflow.patched("cohort-history-bytes")
                and info.get_current_history_size() >= MAX_HISTORY_BYTES)


def _decode(stored: list[StoredEvent]) -> list[DomainEvent]:
    by_type = {**EVENTS_BY_TYPE, **{e.event_type: e for e in ce.COHORT_EVENTS}}
    return [by_type[r.type].model_validate(r.payload) for r in stored]


def _ended_event(outcome: PairingOutcome) -> ce.PairingEnded:
    exit_ = outcome.exit
    return ce.PairingEnded(
        pairing_id=outcome.pairing_id,
        outcome="exited" if exit_ is not None else "completed",
        initiated_by=exit_.initiated_by.value if exit_ else None,
        reason=exit_.reason.value if exit_ else None,
        phase_at_exit=exit_.phase_at_exit if exit_ else None,
        leaving_employee_id=exit_.leaving_employee_id if exit_ else None,
        ended_at=outcome.ended_at,
        meetings_held=outcome.meetings_held,
        meetings_missed=outcome.meetings_missed,
    )

