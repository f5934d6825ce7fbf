"""Coordinator API: start a cohort from its two files, list and inspect cohorts, review and
approve the proposal, record a departure, download the report."""

from __future__ import annotations

import asyncio
import json
import tempfile
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Header, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field
from temporalio.exceptions import WorkflowAlreadyStartedError

from domain.cohort import CohortState
from domain.cohort_commands import ApproveProposal, RecordParticipantLeft
from domain.ids import cohort_workflow_id
from intake.people_csv import check_people
from intake.problems import Problem as IntakeProblem
from intake.program_yaml import check_program
from projections.queries import CohortStatus, cohort_status
from web import workflow_calls
from web.deps import CoordinatorDep, Services, ServicesDep
from web.params import Body, PathId
from web.problems import Problem, not_found, problem_responses

router = APIRouter(prefix="/cohorts", tags=["coordinator"])

ERRORS = problem_responses(401, 403, 404, 409, 413, 422, 503)
MAX_UPLOAD = 20 * 1024 * 1024

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


class CohortCreated(BaseModel):
    cohort_id: str
    workflow_id: str
    mentors: int
    mentees: int


class CohortListItem(BaseModel):
    cohort_id: str
    program_name: str | None
    phase: str
    pairings_total: int
    starts_at: Any = None
    ends_at: Any = None
    created_at: Any


class LiveCohort(BaseModel):
    """The cohort workflow's own state, summarised (fresher than the read model)."""

    phase: str
    version: int
    approval: str
    proposal_pending: bool
    active_pairings: int
    launched: int
    completed: int
    exited: int
    rematched: int
    waiting: int


class CohortOverview(BaseModel):
    cohort_id: str
    program_name: str | None
    live: LiveCohort
    status: CohortStatus | None
    """From the read models; None until the projector has seen the cohort."""


class ProposedPairView(BaseModel):
    mentor_id: str
    mentor_name: str | None
    mentee_id: str
    mentee_name: str | None
    score: float
    explanation: dict[str, Any]


class ProposalView(BaseModel):
    cohort_id: str
    run_id: str | None
    approval: str
    pairs: list[ProposedPairView]


Pair = tuple[str, str]


class ApproveBody(Body):
    drop: list[Pair] = Field(default_factory=list, max_length=10_000)
    """Pairs ``[mentor, mentee]`` to leave out."""
    swap: list[tuple[Pair, Pair]] = Field(default_factory=list, max_length=10_000)
    """Swap the mentors of two proposed pairs."""


class Approved(BaseModel):
    launched: int


class DepartureBody(Body):
    employee_id: str = Field(min_length=1, max_length=120)
    left_on: date


class DepartureRecorded(BaseModel):
    ended_pairings: list[str]


async def _exists(svc: Services, cohort_id: str) -> Any:
    row = await svc.pool.fetchrow(
        "SELECT cohort_id, program->>'name' AS name FROM cohorts WHERE cohort_id = $1",
        cohort_id)
    if row is None:
        raise not_found("cohort", cohort_id)
    return row


async def _state(svc: Services, cohort_id: str) -> CohortState:
    state: CohortState = await workflow_calls.query(
        svc.client, cohort_workflow_id(cohort_id), "state", result_type=CohortState,
        timeout_s=svc.settings.temporal_timeout_s, what="cohort", ident=cohort_id)
    return state


def _relabel(problems: list[IntakeProblem], temp: Path, names: dict[str, str]) -> list[Any]:
    out = []
    for p in problems:
        label = names.get(p.file, p.file.replace(str(temp) + "/", ""))
        out.append(replace(p, file=label))
    return [{"file": p.file, "line": p.line, "column": p.column, "message": p.message}
            for p in out]


async def _read(upload: UploadFile, what: str) -> bytes:
    data = await upload.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise Problem(413, "upload_too_large", f"{what} is larger than 20 MB", field=what)
    if b"\x00" in data:
        raise Problem(422, "invalid_input", f"{upload.filename or what} is not a text file "
                      "(it contains NUL bytes)", field=what)
    return data


@router.post("", status_code=201, response_model=CohortCreated, responses=ERRORS,
             summary="Start a cohort from program.yaml and people.csv")
async def start_cohort(
    me: CoordinatorDep, svc: ServicesDep,
    program: Annotated[UploadFile, File(description="program.yaml")],
    people: Annotated[UploadFile, File(description="people.csv (HR export)")],
    cohort_id: Annotated[str | None, Form(max_length=40)] = None,
) -> CohortCreated:
    from sebaya import operations

    with tempfile.TemporaryDirectory(prefix="sebaya-upload-") as tmp:
        temp = Path(tmp)
        program_path, people_path = temp / "program.yaml", temp / "people.csv"
        program_path.write_bytes(await _read(program, "program"))
        people_path.write_bytes(await _read(people, "people"))
        names = {str(program_path): program.filename or "program.yaml",
                 str(people_path): people.filename or "people.csv"}
        spec, problems = await asyncio.to_thread(check_program, program_path)
        persons, more = await asyncio.to_thread(check_people, people_path, spec)
        problems = problems + more
    if problems or spec is None:
        raise Problem(422, "invalid_input",
                      f"{len(problems)} problem(s) in the uploaded files",
                      problems=_relabel(problems, temp, names))
    if cohort_id is not None and not operations.COHORT_ID.match(cohort_id):
        raise Problem(422, "invalid_cohort_id",
                      "use 1-40 letters, digits, '-' or '_' for the cohort id",
                      field="cohort_id")
    if cohort_id is not None and await svc.pool.fetchval(
            "SELECT 1 FROM cohorts WHERE cohort_id = $1", cohort_id):
        raise Problem(409, "cohort_exists", f"cohort {cohort_id!r} already exists",
                      field="cohort_id")
    try:
        handle = await operations.start_cohort(
            svc.pool, svc.client, program=spec, people=persons,
            task_queue=svc.settings.task_queue, cohort_id=cohort_id,
            started_by=f"coordinator:{me.subject}")
    except WorkflowAlreadyStartedError as exc:
        raise Problem(409, "cohort_exists", "that cohort is already running") from exc
    mentors = sum(p.role.value == "mentor" for p in persons)
    return CohortCreated(cohort_id=handle.id.removeprefix("cohort-"), workflow_id=handle.id,
                         mentors=mentors, mentees=len(persons) - mentors)


@router.get("", response_model=list[CohortListItem], responses=ERRORS, summary="All cohorts")
async def list_cohorts(me: CoordinatorDep, svc: ServicesDep) -> list[CohortListItem]:
    rows = await svc.pool.fetch(
        "SELECT c.cohort_id, coalesce(v.program_name, c.program->>'name') AS program_name, "
        "coalesce(v.phase, 'starting') AS phase, coalesce(v.pairings_total, 0) AS total, "
        "v.starts_at, v.ends_at, c.created_at FROM cohorts c "
        "LEFT JOIN cohort_view v ON v.cohort_id = c.cohort_id ORDER BY c.created_at DESC")
    return [CohortListItem(cohort_id=r["cohort_id"], program_name=r["program_name"],
                           phase=r["phase"], pairings_total=r["total"],
                           starts_at=r["starts_at"], ends_at=r["ends_at"],
                           created_at=r["created_at"]) for r in rows]


@router.get("/{cohort_id}", response_model=CohortOverview, responses=ERRORS,
            summary="Where a cohort stands: counts by phase, pairings at risk, waiting pool")
async def get_cohort(cohort_id: PathId, me: CoordinatorDep, svc: ServicesDep) -> CohortOverview:
    row = await _exists(svc, cohort_id)
    state = await _state(svc, cohort_id)
    status = await cohort_status(svc.pool, cohort_id)
    return CohortOverview(
        cohort_id=cohort_id, program_name=row["name"], status=status,
        live=LiveCohort(phase=state.phase.value, version=state.version,
                        approval=state.approval, proposal_pending=bool(state.proposal),
                        active_pairings=len(state.active), launched=state.launched,
                        completed=state.completed, exited=state.exited,
                        rematched=state.rematched, waiting=len(state.waiting)))


async def proposal_of(svc: Services, cohort_id: str) -> ProposalView:
    await _exists(svc, cohort_id)
    state = await _state(svc, cohort_id)
    pairs: list[ProposedPairView] = []
    if state.proposal:
        rows = await svc.pool.fetch(
            "SELECT mp.mentor_id, mp.mentee_id, mp.explanation::text AS explanation, "
            "a.name AS mentor_name, b.name AS mentee_name FROM match_proposals mp "
            "LEFT JOIN participants a ON a.employee_id = mp.mentor_id "
            "LEFT JOIN participants b ON b.employee_id = mp.mentee_id "
            "WHERE mp.cohort_id = $1 AND mp.run_id = $2", cohort_id, state.proposal_run_id)
        found = {(r["mentor_id"], r["mentee_id"]): r for r in rows}
        for p in state.proposal:
            r = found.get((p.mentor, p.mentee))
            pairs.append(ProposedPairView(
                mentor_id=p.mentor, mentee_id=p.mentee, score=p.score,
                mentor_name=r["mentor_name"] if r else None,
                mentee_name=r["mentee_name"] if r else None,
                explanation=json.loads(r["explanation"]) if r else {}))
    return ProposalView(cohort_id=cohort_id, run_id=state.proposal_run_id,
                        approval=state.approval, pairs=pairs)


@router.get("/{cohort_id}/proposal", response_model=ProposalView, responses=ERRORS,
            summary="The proposed pairs awaiting approval, with explanations")
async def get_proposal(cohort_id: PathId, me: CoordinatorDep, svc: ServicesDep) -> ProposalView:
    return await proposal_of(svc, cohort_id)


async def approve_proposal(svc: Services, coordinator: str, cohort_id: str,
                           body: ApproveBody, key: str | None) -> Approved:
    await _exists(svc, cohort_id)
    cmd = ApproveProposal(approved_by=f"coordinator:{coordinator}", drop=tuple(body.drop),
                          swap=tuple(body.swap))
    launched = await workflow_calls.execute_update(
        svc.client, cohort_workflow_id(cohort_id), "approve", cmd, result_type=int,
        update_id=workflow_calls.update_id(f"approve:{coordinator}", key),
        timeout_s=svc.settings.temporal_timeout_s, what="cohort", ident=cohort_id)
    return Approved(launched=launched)


@router.post("/{cohort_id}/approve", response_model=Approved, responses=ERRORS,
             summary="Approve the proposal, after dropping or swapping pairs")
async def approve(cohort_id: PathId, body: ApproveBody, me: CoordinatorDep, svc: ServicesDep,
                  key: IdempotencyKey = None) -> Approved:
    return await approve_proposal(svc, me.subject, cohort_id, body, key)


@router.post("/{cohort_id}/departures", response_model=DepartureRecorded, responses=ERRORS,
             summary="Record that a participant left the company")
async def participant_left(cohort_id: PathId, body: DepartureBody, me: CoordinatorDep,
                           svc: ServicesDep, key: IdempotencyKey = None) -> DepartureRecorded:
    await _exists(svc, cohort_id)
    cmd = RecordParticipantLeft(employee_id=body.employee_id, left_on=body.left_on,
                                recorded_by=f"coordinator:{me.subject}")
    ended = await workflow_calls.execute_update(
        svc.client, cohort_workflow_id(cohort_id), "participant_left", cmd,
        result_type=list[str],
        update_id=workflow_calls.update_id(f"left:{me.subject}", key),
        timeout_s=svc.settings.temporal_timeout_s, what="cohort", ident=cohort_id)
    return DepartureRecorded(ended_pairings=ended)


REPORT_TYPES = {"json": "application/json", "csv": "text/csv; charset=utf-8",
                "html": "text/html; charset=utf-8"}


@router.get("/{cohort_id}/report", responses={
    **ERRORS, 200: {"content": {t: {} for t in REPORT_TYPES.values()},
                    "description": "The report in the format asked for"}},
    summary="The cohort's evaluation report as JSON, CSV or HTML")
async def report(cohort_id: PathId, me: CoordinatorDep, svc: ServicesDep,
                 format: Literal["json", "csv", "html"] = "json",
                 as_of: date | None = None) -> Any:
    from sebaya.report import render
    from sebaya.report_service import cohort_report

    await _exists(svc, cohort_id)
    try:
        result = await cohort_report(svc.pool, cohort_id, as_of=as_of)
    except LookupError as exc:
        raise Problem(404, "report_not_ready", str(exc)) from exc
    text = render(result, format)
    if format == "json":
        return JSONResponse(json.loads(text))
    if format == "csv":
        return PlainTextResponse(text, media_type=REPORT_TYPES["csv"], headers={
            "Content-Disposition": f'attachment; filename="{cohort_id}-report.csv"'})
    return HTMLResponse(text)
