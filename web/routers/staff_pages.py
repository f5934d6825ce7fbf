"""Coordinator pages: the cohorts, one cohort (counts by phase, pairings at risk, the
waiting pool, the proposal to approve) and its report."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from projections.queries import cohort_status
from web.deps import CoordinatorDep, ServicesDep
from web.pages import html_page, render
from web.params import PathId
from web.problems import Problem
from web.routers.cohorts import ApproveBody, approve_proposal, list_cohorts, proposal_of

router = APIRouter(prefix="/cohorts", include_in_schema=False,
                   dependencies=[Depends(html_page)])


@router.get("")
async def cohorts_page(request: Request, me: CoordinatorDep, svc: ServicesDep) -> Any:
    return render(request, "cohorts.html", {"cohorts": await list_cohorts(me, svc)})


async def _page(request: Request, svc: Any, cohort_id: str, *, status_code: int = 200,
                **extra: Any) -> Any:
    proposal = await proposal_of(svc, cohort_id)
    status = await cohort_status(svc.pool, cohort_id)
    return render(request, "cohort.html", {"cohort_id": cohort_id, "status": status,
                                           "proposal": proposal, **extra},
                  status_code=status_code)


@router.get("/{cohort_id}")
async def cohort_page(request: Request, cohort_id: PathId, me: CoordinatorDep,
                      svc: ServicesDep) -> Any:
    approved = request.query_params.get("approved")
    return await _page(request, svc, cohort_id, approved=approved)


@router.post("/{cohort_id}/approve")
async def approve_page(request: Request, cohort_id: PathId, me: CoordinatorDep,
                       svc: ServicesDep) -> Any:
    form = await request.form()
    drop = []
    for value in form.getlist("drop"):
        mentor, sep, mentee = str(value).partition(":")
        if sep:
            drop.append((mentor, mentee))
    key = str(form.get("idempotency_key") or "") or None
    try:
        result = await approve_proposal(svc, me.subject, cohort_id, ApproveBody(drop=drop), key)
    except Problem as problem:
        if problem.status not in (409, 422):
            raise
        return await _page(request, svc, cohort_id, problem=problem,
                           status_code=problem.status)
    return RedirectResponse(f"/cohorts/{cohort_id}?approved={result.launched}",
                            status_code=303)


@router.get("/{cohort_id}/report")
async def report_page(request: Request, cohort_id: PathId, me: CoordinatorDep,
                      svc: ServicesDep) -> Any:
    from sebaya.report import to_html
    from sebaya.report_service import cohort_report

    if not await svc.pool.fetchval("SELECT 1 FROM cohorts WHERE cohort_id = $1", cohort_id):
        raise Problem(404, "cohort_not_found", f"no cohort {cohort_id!r}")
    try:
        report = await cohort_report(svc.pool, cohort_id)
    except LookupError as exc:
        raise Problem(404, "report_not_ready", str(exc)) from exc
    return HTMLResponse(to_html(report))
