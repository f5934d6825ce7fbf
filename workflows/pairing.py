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
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.envelope import envelopes
    from activities.notify import Delivery, NotificationActivities, SendNotificationsInput
    from activities.recording import RecordingActivities, RecordInput
    from activities.store import AppendEventsInput, StoredEvent
    from contracts.pairing import (
        PAIRING_WORKFLOW,
        CommandResult,
        PairingInput,
        PairingOutcome,
    )
    from domain import commands as c
    from domain import errors
    from domain import events as e
    from domain.catalog import current_event
    from domain.ids import event_id_for, pairing_stream
    from domain.notifications import Notification, notifications_for
    from domain.pairing import (
        PairingState,
        Phase,
        advance,
        decide,
        fold,
        next_due,
        next_wake,
    )
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

# A worker that died after its append committed leaves events the retried task did not decide.
# The workflow adopts them and decides its command again on top (ADR 0005). Histories recorded
# before this never adopt; the marker keeps them replaying the old way.
ADOPT_STORED_PATCH = "pairing-adopt-events-of-a-lost-attempt"
# Each adoption takes everything the stream holds past the workflow's version, so a second one
# in a row means someone else writes to the stream: park instead of chasing it.
MAX_ADOPTIONS = 2

# One timer a week instead of two: sleep until ``next_wake`` (a missed meeting is noticed with
# the next meeting's reminder), and an update that leaves that time unchanged does not restart
# the timer. Histories recorded before keep ``next_due`` and a wake-up per update.
ONE_TIMER_PATCH = "pairing-one-timer-a-week"


@dataclass(frozen=True)
class _Recorded:
    """What one append left in the stream from the workflow's version on."""

    events: list[e.DomainEvent]
    causes: list[str | None]
    base_version: int
    # The stream held an earlier attempt's events instead of the proposed ones.
    adopted: bool


def _refusal(exc: errors.DomainError) -> ApplicationError:
    return ApplicationError(str(exc), {"code": exc.code, "field": exc.field},
                            type=exc.code, non_retryable=True)


@workflow.defn(name=PAIRING_WORKFLOW)
class PairingWorkflow:
    @workflow.init
    def __init__(self, inp: PairingInput) -> None:
        self._input = inp
        self._state = inp.carried_state or PairingState()
        # Handlers and the timer loop both append to the stream: one at a time, so versions
        # are taken in order and each decision sees the state the previous one left.
        self._lock = asyncio.Lock()
        self._wake = False
        # What the timer loop sleeps until; an update wakes it only to change this.
        self._sleeping_until: datetime | None = None

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
            due = self._sleeping_until = self._next_wake()
            timeout = None if due is None else due - workflow.now()
            if workflow.patched(ONE_TIMER_PATCH):
                await self._sleep(timeout)
            elif timeout is None or timeout > timedelta(0):
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

    async def _sleep(self, duration: timedelta | None) -> None:
        """Until ``duration`` passes (None: forever) or an update wakes the loop."""
        if duration is None:
            await workflow.wait_condition(lambda: self._wake)
            return
        if duration <= timedelta(0):
            return
        timer = asyncio.ensure_future(workflow.sleep(duration))
        await workflow.wait_condition(lambda: self._wake or timer.done())
        # A pairing that just closed completes in this very task: leaving its timer unfired
        # costs nothing, cancelling it costs a history event.
        if not timer.done() and not self._state.is_closed:
            timer.cancel()

    def _next_wake(self) -> datetime | None:
        if workflow.patched(ONE_TIMER_PATCH):
            return next_wake(self._state)
        return next_due(self._state)

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
        recorded: list[e.DomainEvent] = [*due, *caused]
        undelivered: list[Delivery] = []
        for adoptions in range(MAX_ADOPTIONS + 1):
            if not (due or caused):
                break
            before = self._state
            held = await self._record(due, caused, command.actor, undelivered)
            recorded = held.events
            if not held.adopted:
                undelivered = []  # sent with this append
            if not held.adopted or not workflow.patched(ADOPT_STORED_PATCH):
                break
            # An earlier attempt of this task wrote these before its worker died; they are
            # folded now. Tell people about them (their first notifications died with the
            # worker; delivery keys make a repeat a no-op), then decide the command again on
            # the state they left, unless they already carry it.
            undelivered = undelivered + self._deliveries(
                before, held.events,
                [event_id_for(self._stream, held.base_version + k)
                 for k in range(1, len(held.events) + 1)],
            )
            workflow.logger.warning(
                "pairing %s: adopted %s event(s) an earlier attempt wrote at versions %s-%s",
                self._pairing_id, len(held.events), held.base_version + 1, self._state.version,
                extra={"pairing_id": self._pairing_id},
            )
            if self._already_recorded(command, held):
                recorded = [ev for ev, cause in zip(held.events, held.causes, strict=True)
                            if cause == _update_id()]
                break
            if adoptions == MAX_ADOPTIONS:
                self._park(f"the stream kept moving under {MAX_ADOPTIONS} adoptions")
            due, caused = self._decide(command)
            recorded = [*due, *caused]
        if undelivered:
            await workflow.execute_local_activity_method(
                NotificationActivities.send_notifications,
                SendNotificationsInput(deliveries=undelivered),
                start_to_close_timeout=RECORD_TIMEOUT,
                retry_policy=RECORD_RETRY,
            )
        return CommandResult(
            version=self._state.version,
            events=[ev.event_type for ev in recorded],
            phase=self._state.phase,
        )

    def _already_recorded(self, command: c.PairingCommand, held: _Recorded) -> bool:
        if isinstance(command, c.StartPairing):
            return self._state.phase is not Phase.NOT_STARTED
        update_id = _update_id()
        return update_id is not None and update_id in held.causes

    @property
    def _pairing_id(self) -> str:
        return self._state.pairing_id or self._input.start.pairing_id

    @property
    def _stream(self) -> str:
        return pairing_stream(self._pairing_id)

    def _park(self, reason: str) -> NoReturn:
        """Fail this workflow *task* (not the workflow): the stream and the workflow disagree,
        so never guess. The pairing stays Running and retries the task until someone repairs
        the stream; everyone asking it for anything meanwhile is refused."""
        workflow.logger.error(
            "pairing %s parked: %s", self._pairing_id, reason,
            extra={"pairing_id": self._pairing_id, "stream_id": self._stream},
        )
        raise RuntimeError(f"pairing {self._pairing_id} parked: {reason}")

    def _deliveries(
        self, state: PairingState, events: list[e.DomainEvent], event_ids: list[uuid.UUID]
    ) -> list[Delivery]:
        """The notifications ``events`` cause, keyed by event id so a retry never repeats one."""
        return [
            Delivery(
                idempotency_key=f"{event_id}:{n.recipient}:{n.template}",
                recipient=n.recipient,
                template=n.template,
                data=n.data,
            )
            for event_id, n in _notifications(state, events, event_ids)
        ]

    async def _record(
        self, due: list[e.DomainEvent], caused: list[e.DomainEvent], actor: c.Actor,
        carried: list[Delivery],
    ) -> _Recorded:
        info = workflow.info()
        stream = self._stream
        update_id = _update_id()
        base = self._state.version
        now = workflow.now()
        events = [*due, *caused]
        actors = [str(c.Actor.system())] * len(due) + [str(actor)] * len(caused)
        new_events = envelopes(
            stream, base, events, actors, occurred_at=now, workflow_id=info.workflow_id,
            run_id=info.run_id, correlation_id=self._input.start.cohort_id,
            causation_id=update_id,
        )
        # Notifications come from the decided events; their keys are the event ids, which a
        # retry or replay reproduces, so a delivery is never repeated.
        deliveries = carried + self._deliveries(
            self._state, events, [new.event_id for new in new_events])
        try:
            appended = await workflow.execute_local_activity_method(
                RecordingActivities.record_and_notify,
                RecordInput(
                    append=AppendEventsInput(
                        stream_id=stream, expected_version=base, events=new_events,
                        adopt_own_events=True,
                    ),
                    deliveries=deliveries,
                ),
                start_to_close_timeout=RECORD_TIMEOUT,
                retry_policy=RECORD_RETRY,
            )
        except (ActivityError, ApplicationError) as exc:
            # (A local activity's failure can arrive unwrapped, as the ApplicationError itself.)
            self._park(f"could not append to {stream}: {_cause(exc)}")
        stored = [_decode(r) for r in appended.stored]
        self._state = fold(stored, self._state)
        upsert_for_pairing(self._state)
        return _Recorded(events=stored, causes=[r.causation_id for r in appended.stored],
                         base_version=base, adopted=appended.adopted)

    async def _handle(self, command: c.PairingCommand) -> CommandResult:
        async with self._lock:
            try:
                result = await self._apply(command)
            except errors.DomainError as exc:
                # The validator passed but the state moved on while we waited for the lock.
                raise _refusal(exc) from exc
        # Restarting the timer costs two history events; only do it when the time changed
        # (a held meeting moves nothing: its successor's reminder was already the wake time).
        if not workflow.patched(ONE_TIMER_PATCH) or self._next_wake() != self._sleeping_until:
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
    async def offer_exit(self, command: c.OfferExit) -> CommandResult:
        return await self._handle(command)

    @offer_exit.validator
    def _validate_offer_exit(self, command: c.OfferExit) -> None:
        self._validate(command)

    @workflow.update
    async def submit_final_evaluation(self, command: c.SubmitFinalEvaluation) -> CommandResult:
        return await self._handle(command)

    @submit_final_evaluation.validator
    def _validate_final(self, command: c.SubmitFinalEvaluation) -> None:
        self._validate(command)


def _update_id() -> str | None:
    update = workflow.current_update_info()
    return update.id if update else None


def _decode(stored: StoredEvent) -> e.DomainEvent:
    return current_event(stored.type, stored.schema_version, stored.payload)


def _cause(exc: BaseException) -> str:
    """The store's own refusal, unwrapped from the activity error around it."""
    while isinstance(exc, ActivityError) and exc.cause is not None:
        exc = exc.cause
    return f"{type(exc).__name__}: {exc}" if not isinstance(exc, ApplicationError) \
        else f"{exc.type}: {exc.message}"


def _notifications(
    state: PairingState, events: list[e.DomainEvent], event_ids: list[uuid.UUID]
) -> list[tuple[uuid.UUID, Notification]]:
    """Each event's notifications, judged on the state right after that event."""
    out: list[tuple[uuid.UUID, Notification]] = []
    for event, event_id in zip(events, event_ids, strict=True):
        state = fold([event], state)
        out += [(event_id, n) for n in notifications_for(state, event)]
    return out
