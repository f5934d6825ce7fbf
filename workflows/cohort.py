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
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.cohort import (
        ApplyRosterInput,
        CheckPairsInput,
        CohortActivities,
        EndPairingInput,
        JoinersInput,
        LaunchInput,
        OfferExitInput,
        RematchInput,
        RunningPair,
        ScorePairsInput,
        StreamPosition,
    )
    from activities.envelope import envelopes
    from activities.notify import Delivery, NotificationActivities, SendNotificationsInput
    from activities.store import (
        AppendEventsInput,
        ReadEventsInput,
        StoreActivities,
        StoredEvent,
    )
    from domain import cohort as co
    from domain import cohort_commands as cc
    from domain import cohort_events as ce
    from domain import errors
    from domain.events import EVENTS_BY_TYPE, DomainEvent
    from domain.ids import cohort_stream, event_id_for
    from domain.notifications import roster_conflict_flagged
    from domain.people import Role
    from domain.program import Approval, ProgramSpec
    from workflows.pairing import PairingOutcome
    from workflows.search_attributes import upsert_for_cohort

APPEND_TIMEOUT = timedelta(seconds=30)
# Refusals a retry cannot fix; the workflow then parks its task (see ``_parked``).
APPEND_RETRY = RetryPolicy(
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=[
        "WrongExpectedVersion",
        "EventIdConflict",
        "InvalidAppend",
        "InvalidEventPayload",
        "PayloadTooLarge",
        "UnknownEventType",
    ],
)
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


class RosterSyncResult(BaseModel):
    """What a roster sync did (empty lists when the export changed nothing)."""

    model_config = ConfigDict(frozen=True)

    joined: list[str] = []
    left: list[str] = []
    changed: list[str] = []
    ended: list[str] = []
    flagged: list[cc.RosterConflict] = []
    joiner_run_id: str | None = None
    proposed: list[ce.ProposedPair] = []
    awaiting_approval: bool = False


def _refusal(exc: errors.DomainError) -> ApplicationError:
    return ApplicationError(str(exc), {"code": exc.code, "field": exc.field},
                            type=exc.code, non_retryable=True)


@workflow.defn(name="CohortWorkflow")
class CohortWorkflow:
    @workflow.init
    def __init__(self, inp: CohortInput) -> None:
        self._input = inp
        self._state = inp.carried_state or co.CohortState()
        if inp.carried_state is not None and not self._state.roster_digest:
            # Carried over by a run from before roster syncs: no sync can have happened since
            # the start, so the roster is still the one the cohort started with.
            self._state = self._state.model_copy(update={"roster_digest": inp.people_digest})
        self._roster = frozenset(inp.members)
        self._lock = asyncio.Lock()
        self._ended: list[PairingOutcome] = []
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
    async def approve(self, cmd: cc.ApproveProposal) -> int:
        async with self._lock:
            created = co.pairs_to_score(self._state, cmd)
            scores = await self._score(created) if created else ()
            try:
                events = co.decide(self._state, cmd.model_copy(update={"swap_scores": scores}),
                                   workflow.now())
            except errors.DomainError as exc:
                # The validator passed but the state moved on, or the matcher refused a swap.
                raise _refusal(exc) from exc
            await self._record(events, cmd.approved_by)
        self._wake = True
        return len(self._state.pending_launch)

    @approve.validator
    def _validate_approve(self, cmd: cc.ApproveProposal) -> None:
        self._validate(co.assuming_swaps_allowed(self._state, cmd))

    @workflow.update
    async def participant_left(self, cmd: cc.RecordParticipantLeft) -> list[str]:
        async with self._lock:
            try:
                events = co.decide(self._state, self._with_roster(cmd), workflow.now())
            except errors.DomainError as exc:
                raise _refusal(exc) from exc
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
    def _validate_left(self, cmd: cc.RecordParticipantLeft) -> None:
        self._validate(self._with_roster(cmd))

    def _with_roster(self, cmd: cc.RecordParticipantLeft) -> cc.RecordParticipantLeft:
        return cmd.model_copy(update={"roster": self._members()})

    def _members(self) -> frozenset[str]:
        """Everyone on the roster: the start's members and whoever joined by a sync."""
        return self._roster | frozenset(self._state.joined)

    @workflow.update
    async def sync_roster(self, cmd: cc.SyncRoster) -> RosterSyncResult:
        """Apply an HR export's difference: record it, end leavers' pairings, flag running
        pairs a change breaks (offering them a no-fault exit), and match the joiners against
        the mentors' remaining places (approved now, or awaiting ops in manual programs)."""
        async with self._lock:
            cmd = self._with_members(cmd)
            try:
                events = co.decide(self._state, cmd, workflow.now())
            except errors.DomainError as exc:
                raise _refusal(exc) from exc
            if not events:
                return RosterSyncResult()
            diff = cmd.diff
            await self._record(events, f"ops:{cmd.synced_by}")
            await workflow.execute_activity_method(
                CohortActivities.apply_roster,
                ApplyRosterInput(cohort_id=self._input.cohort_id, joiners=list(diff.joiners),
                                 changed=list(diff.changed)),
                start_to_close_timeout=MATCHING_TIMEOUT, retry_policy=SLOW_RETRY)
            ended: list[str] = []
            for leaver in diff.leavers:
                for pairing_id in self._state.active_pairings_of(leaver):
                    await workflow.execute_activity_method(
                        CohortActivities.end_pairing,
                        EndPairingInput(pairing_id=pairing_id, leaving_employee_id=leaver,
                                        recorded_by=cmd.synced_by),
                        start_to_close_timeout=timedelta(minutes=2))
                    ended.append(pairing_id)
            flagged = await self._flag_broken_pairs(cmd)
            result = RosterSyncResult(
                joined=[p.employee_id for p in diff.joiners], left=list(diff.leavers),
                changed=[m.employee_id for m in diff.changed], ended=ended, flagged=flagged)
            if diff.joiners or diff.mentor_capacity_added:
                result = await self._match_joiners(result)
        self._wake = True
        return result

    @sync_roster.validator
    def _validate_sync(self, cmd: cc.SyncRoster) -> None:
        self._validate(self._with_members(cmd))

    def _with_members(self, cmd: cc.SyncRoster) -> cc.SyncRoster:
        today = workflow.now().astimezone(self._input.program.ground_rules.zone).date()
        return cmd.model_copy(update={"roster": self._members(),
                                      "synced_on": cmd.synced_on or today})

    async def _flag_broken_pairs(self, cmd: cc.SyncRoster) -> list[cc.RosterConflict]:
        changed = {m.employee_id for m in cmd.diff.changed}
        pairs = [RunningPair(pairing_id=k, mentor_id=p.mentor_id, mentee_id=p.mentee_id)
                 for k, p in sorted(self._state.active.items())
                 if p.mentor_id in changed or p.mentee_id in changed]
        if not pairs:
            return []
        conflicts = await workflow.execute_activity_method(
            CohortActivities.check_running_pairs,
            CheckPairsInput(cohort_id=self._input.cohort_id, today=workflow.now(), pairs=pairs,
                            changed=list(cmd.diff.changed)),
            start_to_close_timeout=MATCHING_TIMEOUT, retry_policy=SLOW_RETRY)
        first_version = self._state.version + 1
        events = co.decide(self._state, cc.RecordRosterConflicts(conflicts=tuple(conflicts)),
                           workflow.now())
        await self._record(events, "system:sebaya")
        stream = cohort_stream(self._input.cohort_id)
        deliveries = []
        for k, event in enumerate(events):
            assert isinstance(event, ce.RosterConflictFlagged)
            note = roster_conflict_flagged(self._input.cohort_id, event)
            event_id = event_id_for(stream, first_version + k)
            deliveries.append(Delivery(
                idempotency_key=f"{event_id}:{note.recipient}:{note.template}",
                recipient=note.recipient, template=note.template, data=note.data))
        if deliveries:
            await workflow.execute_activity_method(
                NotificationActivities.send_notifications,
                SendNotificationsInput(deliveries=deliveries),
                start_to_close_timeout=timedelta(minutes=2))
        for event in events:
            assert isinstance(event, ce.RosterConflictFlagged)
            await workflow.execute_activity_method(
                CohortActivities.offer_exit,
                OfferExitInput(pairing_id=event.pairing_id, offered_by=cmd.synced_by),
                start_to_close_timeout=timedelta(minutes=2))
        return [c for c in conflicts if any(
            isinstance(e, ce.RosterConflictFlagged) and e.pairing_id == c.pairing_id
            for e in events)]

    async def _match_joiners(self, result: RosterSyncResult) -> RosterSyncResult:
        s = self._state
        mentees = co.unpaired_mentees(s, self._input.members)
        if not mentees:
            return result
        outcome = await workflow.execute_activity_method(
            CohortActivities.match_joiners,
            JoinersInput(at=self._position(), run_no=s.match_runs + 1, mentees=mentees,
                         exclusions=list(s.exclusions), mentor_load=dict(s.mentor_load),
                         left=sorted(s.left), intake_until=s.rematch_until),
            start_to_close_timeout=MATCHING_TIMEOUT, retry_policy=SLOW_RETRY)
        await self._refresh(outcome.last_version)
        if self._state.joiner_proposal and self._input.program.approval is Approval.AUTO:
            await self._decide_and_record(cc.ApproveProposal(approved_by="system:auto"),
                                          "system:sebaya")
        return result.model_copy(update={
            "joiner_run_id": outcome.run_id, "proposed": outcome.pairs,
            "awaiting_approval": self._state.joiner_proposal})

    def _validate(self, cmd: cc.CohortCommand) -> None:
        """What the handler will decide, on the state as it is now: a refused command is
        rejected before it reaches history."""
        try:
            co.decide(self._state, cmd, workflow.now())
        except errors.DomainError as exc:
            raise _refusal(exc) from exc

    async def _score(self, pairs: list[cc.PairKey]) -> tuple[ce.ProposedPair, ...]:
        """The matcher's scores for the pairs a swap creates (only those it allows)."""
        inp = ScorePairsInput(cohort_id=self._state.cohort_id,
                              run_id=self._state.proposal_run_id or "", pairs=pairs,
                              today=workflow.now())
        # Cohorts that asked the untyped ``score_pairs`` before this change replay it.
        if workflow.patched("cohort-typed-swap-scores"):
            scored = await workflow.execute_activity_method(
                CohortActivities.score_swaps, inp,
                start_to_close_timeout=MATCHING_TIMEOUT, retry_policy=SLOW_RETRY,
            )
            return tuple(scored)
        legacy = await workflow.execute_activity_method(
            CohortActivities.score_pairs, inp,
            start_to_close_timeout=MATCHING_TIMEOUT, retry_policy=SLOW_RETRY,
        )
        scored_legacy = []
        for key, score in legacy.items():
            mentor, mentee = key.split("|", 1)
            scored_legacy.append(ce.ProposedPair(mentor=mentor, mentee=mentee, score=score))
        return tuple(scored_legacy)

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
            await self._decide_and_record(cc.StartCohort(
                cohort_id=inp.cohort_id, program=inp.program, people_digest=inp.people_digest,
                mentors=inp.mentors, mentees=inp.mentees), f"ops:{inp.started_by}")
            proposal = await workflow.execute_activity_method(
                CohortActivities.run_matching, self._position(),
                start_to_close_timeout=MATCHING_TIMEOUT, retry_policy=SLOW_RETRY,
            )
            await self._refresh(proposal.last_version)
            if inp.program.approval is Approval.AUTO:
                await self._decide_and_record(cc.ApproveProposal(approved_by="system:auto"),
                                              "system:sebaya")

    async def _step(self, inp: CohortInput) -> None:
        async with self._lock:
            now = workflow.now()
            events: list[DomainEvent] = []
            while self._ended:
                ended = _ended_command(self._ended.pop(0))
                events += co.decide(co.fold(events, self._state), ended, now)
            await self._record(events, "system:sebaya")
            if self._state.phase in (co.CohortPhase.SCHEDULED, co.CohortPhase.RUNNING) and (
                self._state.starts_at is not None and now >= self._state.starts_at
            ):
                await self._launch_pending(inp)
            for employee_id in co.due_for_rematch(self._state, now):
                await self._rematch(inp, employee_id)
            await self._decide_and_record(cc.CloseRematchWindow(), "system:sebaya")
            await self._decide_and_record(cc.CompleteCohort(), "system:sebaya")

    async def _launch_pending(self, inp: CohortInput) -> None:
        while self._state.pending_launch:
            batch = list(self._state.pending_launch[:LAUNCH_BATCH])
            await self._launch(inp, batch)

    async def _launch(self, inp: CohortInput, specs: list[cc.LaunchSpec]) -> None:
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
        await self._decide_and_record(cc.RecordPairingsLaunched(
            specs=tuple(specs), starts_at=max(self._state.starts_at, workflow.now())),
            "system:sebaya")

    async def _rematch(self, inp: CohortInput, employee_id: str) -> None:
        s = self._state
        waiting = s.waiting[employee_id]
        # A waiting mentee's run is numbered by their next pairing; a mentor's by the cohort's
        # match runs (a mentor may be rematched with any mentee).
        attempt = (s.next_attempt(employee_id) if waiting.role is Role.MENTEE
                   else s.match_runs + 1)
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
            await self._decide_and_record(cc.RecordRematchNotPossible(
                employee_id=employee_id, reason=outcome.reason or "no eligible partner"),
                "system:sebaya")
            return
        await self._launch(inp, [co.rematch_spec(self._state, employee_id, outcome.partner,
                                                 outcome.score, outcome.run_id)])

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
        stream = cohort_stream(self._input.cohort_id)
        try:
            stored = await workflow.execute_local_activity_method(
                StoreActivities.read_events,
                ReadEventsInput(stream_id=stream, after_version=self._state.version),
                start_to_close_timeout=APPEND_TIMEOUT, retry_policy=APPEND_RETRY,
            )
        except (ActivityError, ApplicationError) as exc:
            raise self._parked(f"could not read {stream}", exc) from exc
        self._state = co.fold(_decode(stored), self._state)
        upsert_for_cohort(self._state)

    async def _decide_and_record(self, command: cc.CohortCommand, actor: str) -> None:
        """For the workflow's own commands: a refusal here is a bug in the workflow, and
        fails the workflow task like any other."""
        await self._record(co.decide(self._state, command, workflow.now()), actor)

    async def _record(self, events: list[DomainEvent], actor: str) -> None:
        if not events:
            return
        info = workflow.info()
        stream = cohort_stream(self._input.cohort_id)
        new = envelopes(stream, self._state.version, events, [actor] * len(events),
                        occurred_at=workflow.now(), workflow_id=info.workflow_id,
                        run_id=info.run_id, correlation_id=self._input.cohort_id)
        try:
            appended = await workflow.execute_local_activity_method(
                StoreActivities.append_events,
                AppendEventsInput(stream_id=stream, expected_version=self._state.version,
                                  events=new),
                start_to_close_timeout=APPEND_TIMEOUT, retry_policy=APPEND_RETRY,
            )
        except (ActivityError, ApplicationError) as exc:
            raise self._parked(
                f"could not append {len(events)} event(s) to {stream} at version "
                f"{self._state.version}", exc) from exc
        # As for pairings: fold what the store holds, which history records.
        self._state = co.fold(_decode(appended.stored), self._state)
        upsert_for_cohort(self._state)

    def _parked(self, what: str, exc: BaseException) -> RuntimeError:
        """The stream and the workflow disagree: never guess. A non-``ApplicationError``
        fails the workflow *task*, not the cohort: the workflow stays Running, retries the
        task (a local activity is not recorded until it succeeds, so each retry appends
        afresh) and shows the failure in its history until someone repairs the stream.
        (A local activity's failure can arrive unwrapped, as the ApplicationError itself.)"""
        message = f"cohort {self._input.cohort_id}: {what}: {exc}"
        workflow.logger.error(message)
        return RuntimeError(message)

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


def _ended_command(outcome: PairingOutcome) -> cc.RecordPairingEnded:
    exit_ = outcome.exit
    return cc.RecordPairingEnded(
        pairing_id=outcome.pairing_id,
        outcome=ce.PairingEndOutcome.EXITED if exit_ is not None
        else ce.PairingEndOutcome.COMPLETED,
        initiated_by=exit_.initiated_by if exit_ else None,
        reason=exit_.reason if exit_ else None,
        phase_at_exit=exit_.phase_at_exit if exit_ else None,
        leaving_employee_id=exit_.leaving_employee_id if exit_ else None,
        ended_at=outcome.ended_at,
        meetings_held=outcome.meetings_held,
        meetings_missed=outcome.meetings_missed,
    )

