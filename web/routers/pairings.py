"""Participant API: my pairings, one pairing, and the six actions (one workflow update each)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header
from pydantic import Field

from domain import commands as c
from domain.events import ExitReason, Goal
from domain.ids import pairing_workflow_id
from web import workflow_calls
from web.auth import Principal
from web.deps import ParticipantDep, Services, ServicesDep
from web.params import Body, PathId
from web.participant_views import PairingDetail, PairingSummary, load_pairing, my_pairings
from web.problems import Problem, problem_responses
from workflows.pairing import CommandResult

router = APIRouter(tags=["participant"])

ERRORS = problem_responses(401, 403, 404, 409, 422, 503)

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="Retrying with the same key returns the "
           "first result and records nothing twice."),
]


class SetGoalsBody(Body):
    goals: list[Goal] = Field(min_length=1, max_length=10)


class LogMeetingBody(Body):
    meeting_no: int = Field(ge=1, le=10_000)
    held: bool
    held_at: datetime | None = None
    minutes: int | None = Field(default=None, ge=1, le=600)
    topics: list[str] = Field(default_factory=list, max_length=20)
    goal_progress: dict[str, int] = Field(default_factory=dict, max_length=20)


class RescheduleBody(Body):
    new_time: datetime


class MidpointReviewBody(Body):
    satisfaction: int = Field(ge=1, le=5)
    goal_progress: dict[str, int] = Field(default_factory=dict, max_length=20)
    wants_to_continue: bool


class ExitBody(Body):
    reason: ExitReason
    """Seen by the coordinators only, never by the partner."""


class FinalEvaluationBody(Body):
    goal_attainment: dict[str, int] = Field(default_factory=dict, max_length=20)
    relationship_rating: int = Field(ge=1, le=5)
    program_rating: int = Field(ge=1, le=5)
    learned: str = Field(min_length=1, max_length=2000)
    would_recommend: bool


def _command(cls: type[c.Command], me: Principal, **fields: Any) -> Any:
    try:
        return cls(actor=c.Actor.employee(me.subject), **fields)
    except ValueError as exc:
        raise Problem(422, "invalid_command", str(exc)) from exc


async def act(svc: Services, me: Principal, pairing_id: str, update: str,
              command: c.Command, idempotency_key: str | None) -> CommandResult:
    """Send one update to the pairing's workflow on behalf of ``me``."""
    try:
        result: CommandResult = await workflow_calls.execute_update(
            svc.client, pairing_workflow_id(pairing_id), update, command,
            result_type=CommandResult,
            update_id=workflow_calls.update_id(f"{update}:{me.subject}", idempotency_key),
            timeout_s=svc.settings.temporal_timeout_s, what="pairing", ident=pairing_id)
    except Problem as problem:
        # Someone else's pairing looks exactly like one that does not exist.
        if problem.code == "not_a_participant":
            raise Problem(404, "pairing_not_found", f"no pairing {pairing_id!r}") from None
        raise
    return result


@router.get("/me/pairings", response_model=list[PairingSummary], responses=ERRORS,
            summary="My pairings")
async def list_my_pairings(me: ParticipantDep, svc: ServicesDep) -> list[PairingSummary]:
    return await my_pairings(svc.pool, me.subject)


@router.get("/pairings/{pairing_id}", response_model=PairingDetail, responses=ERRORS,
            summary="One of my pairings, and what I may do now")
async def get_pairing(pairing_id: PathId, me: ParticipantDep, svc: ServicesDep) -> PairingDetail:
    detail = await load_pairing(svc.store, svc.pool, pairing_id, me.subject)
    if detail is None:
        raise Problem(404, "pairing_not_found", f"no pairing {pairing_id!r}")
    return detail


@router.put("/pairings/{pairing_id}/goals", response_model=CommandResult, responses=ERRORS,
            summary="Set or revise my goals")
async def set_goals(pairing_id: PathId, body: SetGoalsBody, me: ParticipantDep,
                    svc: ServicesDep, key: IdempotencyKey = None) -> CommandResult:
    cmd = _command(c.SetGoals, me, goals=tuple(body.goals))
    return await act(svc, me, pairing_id, "set_goals", cmd, key)


@router.post("/pairings/{pairing_id}/meetings", response_model=CommandResult,
             responses=ERRORS, summary="Log a meeting as held or missed")
async def log_meeting(pairing_id: PathId, body: LogMeetingBody, me: ParticipantDep,
                      svc: ServicesDep, key: IdempotencyKey = None) -> CommandResult:
    cmd = _command(c.LogMeeting, me, meeting_no=body.meeting_no, held=body.held,
                   held_at=body.held_at, minutes=body.minutes, topics=tuple(body.topics),
                   goal_progress=body.goal_progress)
    return await act(svc, me, pairing_id, "log_meeting", cmd, key)


@router.post("/pairings/{pairing_id}/meetings/{meeting_no}/reschedule",
             response_model=CommandResult, responses=ERRORS, summary="Move the next meeting")
async def reschedule_meeting(pairing_id: PathId, meeting_no: int, body: RescheduleBody,
                             me: ParticipantDep, svc: ServicesDep,
                             key: IdempotencyKey = None) -> CommandResult:
    if not 1 <= meeting_no <= 10_000:
        raise Problem(422, "invalid_command", "meeting_no must be 1-10000", field="meeting_no")
    cmd = _command(c.RescheduleMeeting, me, meeting_no=meeting_no, new_time=body.new_time)
    return await act(svc, me, pairing_id, "reschedule_meeting", cmd, key)


@router.post("/pairings/{pairing_id}/midpoint-review", response_model=CommandResult,
             responses=ERRORS, summary="Submit my mid-point review")
async def submit_midpoint_review(pairing_id: PathId, body: MidpointReviewBody,
                                 me: ParticipantDep, svc: ServicesDep,
                                 key: IdempotencyKey = None) -> CommandResult:
    cmd = _command(c.SubmitMidpointReview, me, **body.model_dump())
    return await act(svc, me, pairing_id, "submit_midpoint_review", cmd, key)


@router.post("/pairings/{pairing_id}/exit", response_model=CommandResult, responses=ERRORS,
             summary="Ask for a no-fault exit (the reason stays with the coordinators)")
async def request_exit(pairing_id: PathId, body: ExitBody, me: ParticipantDep,
                       svc: ServicesDep, key: IdempotencyKey = None) -> CommandResult:
    cmd = _command(c.RequestExit, me, reason=body.reason)
    return await act(svc, me, pairing_id, "request_exit", cmd, key)


@router.post("/pairings/{pairing_id}/final-evaluation", response_model=CommandResult,
             responses=ERRORS, summary="Submit my final evaluation")
async def submit_final_evaluation(pairing_id: PathId, body: FinalEvaluationBody,
                                  me: ParticipantDep, svc: ServicesDep,
                                  key: IdempotencyKey = None) -> CommandResult:
    cmd = _command(c.SubmitFinalEvaluation, me, **body.model_dump())
    return await act(svc, me, pairing_id, "submit_final_evaluation", cmd, key)
