"""One long-lived workflow per mentor/mentee pairing, from match to final evaluation.

The workflow is the single writer of its pairing's stream in the event store. Its loop:
sleep on one durable timer until the domain's ``next_due`` (or until an update wakes it),
ask ``decide`` what happened, append those events (ids derived from stream and version, so
retries are no-ops), fold them into the state, hand any notifications to the delivery
activity. Participant and ops actions are updates whose validators run ``decide`` on the
current state, so a refused command never reaches history or the store.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.envelope import envelopes
    from activities.notify import Delivery
    from activities.recording import RecordingActivities, RecordInput
    from activities.store import AppendEventsInput
    from domain import commands as c
    from domain import errors
    from domain import events as e
    from domain.events import EVENTS_BY_TYPE
    from domain.ids import pairing_stream
    from domain.notifications import Notification, notifications_for
    from domain.pairing import PairingState, Phase, advance, decide, fold, next_due
    from eventstore import NewEvent
    from workflows.search_attributes import upsert_for_pairing


# Appends and deliveries are short database calls: local activities keep them out of the task
# queue round trip and cost one history event each instead of three.
RECORD_TIMEOUT = timedelta(seconds=30)
RECORD_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
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

# Continue-as-new well before Temporal's own suggestion (about 10k events) so that replaying a
# pairing stays cheap even for open-ended programs with years of meetings.
DEFAULT_MAX_HISTORY_EVENTS = 4000


class PairingInput(BaseModel):
    """Ids and ground rules only: no names or e-mails ever enter Temporal history."""

    model_config = ConfigDict(frozen=True)

    start: c.StartPairing
    # When the pairing begins (the program's start date, or now for a rematch). A cohort may be
    # set up days before its program starts; the pairing then waits on a durable timer.
    start_at: datetime | None = None
    # The cohort workflow to tell when this pairing ends (exit or completion), by workflow id.
    report_to: str | None = None
    carried_state: PairingState | None = None
    max_history_events: int = DEFAULT_MAX_HISTORY_EVENTS


class CommandResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: int
    events: list[str]
    phase: Phase


class PairingOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    pairing_id: str
    cohort_id: str
    mentor_id: str
    mentee_id: str
    phase: Phase
    exit: e.PairingExited | None = None
    meetings_held: int
    meetings_missed: int
    version: int
    ended_at: datetime


def _refusal(exc: errors.DomainError) -> ApplicationError:
    return ApplicationError(str(exc), {"code": exc.code, "field": exc.field},
                            type=exc.code, non_retryable=True)


@workflow.defn(name="PairingWorkflow")
class PairingWorkflow:
    @workflow.init
    def __init__(self, inp: PairingInput) -> None:
        self._input = inp
        self._state = inp.carried_state or PairingState()
        # Handlers and the timer loop both append to the stream: one at a time, so versions
        # are taken in order and each decision sees the state the previous one left.
        self._lock = asyncio.Lock()
        self._wake = False

    # --- queries -----------------------------------------------------------------------------

    @workflow.query
    def state(self) -> PairingState:
        return self._state

    @workflow.query
    def scheduled_start(self) -> datetime | None:
        """When a pairing that has not started yet will start (None: at once)."""
        return self._input.start_at

    # --- the timer loop ----------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: PairingInput) -> PairingOutcome:
        if self._state.phase is Phase.NOT_STARTED:
            if inp.start_at is not None and inp.start_at > workflow.now():
                await workflow.sleep(inp.start_at - workflow.now())
            async with self._lock:
                await self._apply(inp.start)
        while not self._state.is_closed:
            due = next_due(self._state)
            timeout = None if due is None else due - workflow.now()
            if timeout is None or timeout > timedelta(0):
                try:
                    await workflow.wait_condition(lambda: self._wake, timeout=timeout)
                except TimeoutError:
                    pass
            self._wake = False
            async with self._lock:
                await self._apply(c.AdvanceClock(actor=c.Actor.system()))
            if not self._state.is_closed and self._history_is_long():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    inp.model_copy(update={"carried_state": self._state})
                )
        await workflow.wait_condition(workflow.all_handlers_finished)
        s = self._state
        outcome = PairingOutcome(
            pairing_id=s.pairing_id, cohort_id=s.cohort_id, mentor_id=s.mentor_id,
            mentee_id=s.mentee_id, phase=s.phase, exit=s.exit, meetings_held=s.meetings_held,
            meetings_missed=s.meetings_missed, version=s.version, ended_at=workflow.now(),
        )
        if inp.report_to:
            await self._report(inp.report_to, outcome)
        return outcome

    async def _report(self, cohort_workflow_id: str, outcome: PairingOutcome) -> None:
        try:
            await workflow.get_external_workflow_handle(cohort_workflow_id).signal(
                "pairing_ended", outcome
            )
        except FailureError as exc:
            # The cohort is gone (finished or terminated by ops): the pairing's own record in
            # the store is complete, so finishing is still right; say so in the log.
            workflow.logger.warning("could not tell cohort %s: %s", cohort_workflow_id, exc)

    def _history_is_long(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self._input.max_history_events
        )

    # --- deciding and recording ----------------------------------------------------------------

    def _decide(
        self, command: c.PairingCommand
    ) -> tuple[list[e.DomainEvent], list[e.DomainEvent]]:
        """(events already due on the clock, events the command causes), decided now.

        Catching up with the clock first means an update and a timer due at the same instant
        are decided in time order, whichever reaches the worker first.
        """
        now = workflow.now()
        if isinstance(command, c.AdvanceClock):
            return decide(self._state, command, now), []
        if isinstance(command, c.StartPairing) or self._state.is_closed:
            return [], decide(self._state, command, now)
        due = advance(self._state, now)
        return due, decide(fold(due, self._state), command, now)

    async def _apply(self, command: c.PairingCommand) -> CommandResult:
        due, caused = self._decide(command)
        if due or caused:
            await self._record(due, caused, command.actor)
        return CommandResult(
            version=self._state.version,
            events=[ev.event_type for ev in (*due, *caused)],
            phase=self._state.phase,
        )

    async def _record(
        self, due: list[e.DomainEvent], caused: list[e.DomainEvent], actor: c.Actor
    ) -> None:
        info = workflow.info()
        pairing_id = self._state.pairing_id or self._input.start.pairing_id
        stream = pairing_stream(pairing_id)
        update = workflow.current_update_info()
        base = self._state.version
        now = workflow.now()
        events = [*due, *caused]
        actors = [str(c.Actor.system())] * len(due) + [str(actor)] * len(caused)
        new_events = envelopes(
            stream, base, events, actors, occurred_at=now, workflow_id=info.workflow_id,
            run_id=info.run_id, correlation_id=self._input.start.cohort_id,
            causation_id=update.id if update else None,
        )
        # Notifications come from the decided events; their keys are the event ids, which a
        # retry or replay reproduces, so a delivery is never repeated.
        deliveries = [
            Delivery(
                idempotency_key=f"{new.event_id}:{n.recipient}:{n.template}",
                recipient=n.recipient,
                template=n.template,
                data=n.data,
            )
            for new, n in _notifications(self._state, events, new_events)
        ]
        try:
            appended = await workflow.execute_local_activity_method(
                RecordingActivities.record_and_notify,
                RecordInput(
                    append=AppendEventsInput(
                        stream_id=stream, expected_version=base, events=new_events
                    ),
                    deliveries=deliveries,
                ),
                start_to_close_timeout=RECORD_TIMEOUT,
                retry_policy=RECORD_RETRY,
            )
        except (ActivityError, ApplicationError) as exc:
            # The stream and the workflow disagree: never guess. Failing the workflow *task*
            # (not the workflow) keeps the pairing parked and visible until someone repairs it.
            # (A local activity's failure can arrive unwrapped, as the ApplicationError itself.)
            raise RuntimeError(f"could not append to {stream}: {exc}") from exc
        self._state = fold(
            (EVENTS_BY_TYPE[r.type].model_validate(r.payload) for r in appended.stored),
            self._state,
        )
        upsert_for_pairing(self._state)

    async def _handle(self, command: c.PairingCommand) -> CommandResult:
        async with self._lock:
            try:
                result = await self._apply(command)
            except errors.DomainError as exc:
                # The validator passed but the state moved on while we waited for the lock.
                raise _refusal(exc) from exc
        self._wake = True
        return result

    def _validate(self, command: c.PairingCommand) -> None:
        try:
            self._decide(command)
        except errors.DomainError as exc:
            raise _refusal(exc) from exc

    # --- participant and ops actions -------------------------------------------------------

    @workflow.update
    async def set_goals(self, command: c.SetGoals) -> CommandResult:
        return await self._handle(command)

    @set_goals.validator
    def _validate_set_goals(self, command: c.SetGoals) -> None:
        self._validate(command)

    @workflow.update
    async def log_meeting(self, command: c.LogMeeting) -> CommandResult:
        return await self._handle(command)

    @log_meeting.validator
    def _validate_log_meeting(self, command: c.LogMeeting) -> None:
        self._validate(command)

    @workflow.update
    async def reschedule_meeting(self, command: c.RescheduleMeeting) -> CommandResult:
        return await self._handle(command)

    @reschedule_meeting.validator
    def _validate_reschedule(self, command: c.RescheduleMeeting) -> None:
        self._validate(command)

    @workflow.update
    async def submit_midpoint_review(self, command: c.SubmitMidpointReview) -> CommandResult:
        return await self._handle(command)

    @submit_midpoint_review.validator
    def _validate_midpoint(self, command: c.SubmitMidpointReview) -> None:
        self._validate(command)

    @workflow.update
    async def request_exit(self, command: c.RequestExit) -> CommandResult:
        return await self._handle(command)

    @request_exit.validator
    def _validate_exit(self, command: c.RequestExit) -> None:
        self._validate(command)

    @workflow.update
    async def submit_final_evaluation(self, command: c.SubmitFinalEvaluation) -> CommandResult:
        return await self._handle(command)

    @submit_final_evaluation.validator
    def _validate_final(self, command: c.SubmitFinalEvaluation) -> None:
        self._validate(command)


def _notifications(
    state: PairingState, events: list[e.DomainEvent], new_events: list[NewEvent]
) -> list[tuple[NewEvent, Notification]]:
    """Each event's notifications, judged on the state right after that event."""
    out: list[tuple[NewEvent, Notification]] = []
    for event, new in zip(events, new_events, strict=True):
        state = fold([event], state)
        out += [(new, n) for n in notifications_for(state, event)]
    return out
