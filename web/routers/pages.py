"""Participant pages: home (my pairing, next meeting, goals, what I may do, the timeline) and
one form per action. Plain HTML forms: everything works without JavaScript. A form answers
with the domain's own message when the action is refused, and keeps what was typed."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from starlette.datastructures import FormData

from domain import commands as c
from domain.events import Goal
from web.auth import Principal
from web.deps import PUBLIC, AnyoneDep, ParticipantDep, ServicesDep
from web.pages import html_page, render
from web.params import PathId
from web.participant_views import PairingDetail, load_pairing, my_pairings
from web.problems import Problem
from web.routers.pairings import act

router = APIRouter(include_in_schema=False, dependencies=[Depends(html_page)])

ACTIONS = ("set_goals", "log_meeting", "reschedule_meeting", "submit_midpoint_review",
           "request_exit", "submit_final_evaluation")
GOAL_ROWS = 3


@router.get("/", dependencies=[Depends(PUBLIC)])
async def home(request: Request, me: AnyoneDep, svc: ServicesDep) -> Any:
    if me is None:
        return RedirectResponse("/sign-in", status_code=303)
    if me.role == "coordinator":
        return RedirectResponse("/cohorts", status_code=303)
    if me.role != "participant":
        return render(request, "auditor_home.html", {})
    pairings = await my_pairings(svc.pool, me.subject)
    current = next((p for p in pairings if p.phase not in ("completed", "exited")),
                   pairings[0] if pairings else None)
    detail = (await load_pairing(svc.store, svc.pool, current.pairing_id, me.subject)
              if current else None)
    return render(request, "home.html", {"pairings": pairings, "p": detail})


async def _detail(svc: Any, pairing_id: str, me: Principal) -> PairingDetail:
    detail = await load_pairing(svc.store, svc.pool, pairing_id, me.subject)
    if detail is None:
        raise Problem(404, "pairing_not_found", f"no pairing {pairing_id!r}")
    return detail


@router.get("/pairings/{pairing_id}")
async def pairing_page(request: Request, pairing_id: PathId, me: ParticipantDep,
                       svc: ServicesDep) -> Any:
    detail = await _detail(svc, pairing_id, me)
    return render(request, "home.html", {"pairings": [], "p": detail,
                                         "done": request.query_params.get("done")})


@router.get("/pairings/{pairing_id}/{action}")
async def action_form(request: Request, pairing_id: PathId, action: str, me: ParticipantDep,
                      svc: ServicesDep) -> Any:
    if action not in ACTIONS:
        raise Problem(404, "not_found", f"no action {action!r}")
    detail = await _detail(svc, pairing_id, me)
    return render(request, f"action_{action}.html",
                  {"p": detail, "action": action, "form": _defaults(action, detail)})


@router.post("/pairings/{pairing_id}/{action}")
async def action_submit(request: Request, pairing_id: PathId, action: str, me: ParticipantDep,
                        svc: ServicesDep) -> Any:
    if action not in ACTIONS:
        raise Problem(404, "not_found", f"no action {action!r}")
    detail = await _detail(svc, pairing_id, me)
    form = await request.form()
    try:
        command = _command(action, form, me, detail)
        await act(svc, me, pairing_id, action, command, _str(form, "idempotency_key") or None)
    except Problem as problem:
        if problem.status not in (409, 422):
            raise
        return render(request, f"action_{action}.html",
                      {"p": detail, "action": action, "form": form, "problem": problem},
                      status_code=problem.status)
    return RedirectResponse(f"/pairings/{pairing_id}?done={action}", status_code=303)


# --- forms <-> commands -------------------------------------------------------------------------


def _str(form: FormData, key: str) -> str:
    value = form.get(key)
    if not isinstance(value, str):
        return ""
    if "\x00" in value:
        raise Problem(422, "invalid_command", "contains a NUL character", field=key)
    return value.strip()


def _int(form: FormData, key: str, field: str | None = None) -> int | None:
    text = _str(form, key)
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise Problem(422, "invalid_command", f"{text!r} is not a whole number",
                      field=field or key) from None


def _local_time(form: FormData, key: str, zone: str) -> datetime | None:
    text = _str(form, key)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise Problem(422, "invalid_command", f"{text!r} is not a date and time",
                      field=key) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(zone))


def _progress(form: FormData, prefix: str, detail: PairingDetail) -> dict[str, int]:
    out = {}
    for goal in (*detail.my_goals, *detail.partner_goals):
        value = _int(form, f"{prefix}{goal.goal_id}", field=f"{prefix}{goal.goal_id}")
        if value is not None:
            out[goal.goal_id] = value
    return out


def _invalid(exc: ValueError, prefix: str = "") -> Problem:
    """The first problem pydantic found, naming its field like the domain does."""
    if isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        field = prefix + ".".join(str(part) for part in first["loc"])
        return Problem(422, "invalid_command", first["msg"], field=field or None)
    return Problem(422, "invalid_command", str(exc))


def _build(cls: type[c.Command], me: Principal, **fields: Any) -> Any:
    try:
        return cls(actor=c.Actor.employee(me.subject), **fields)
    except ValueError as exc:
        raise _invalid(exc) from None


def _command(action: str, form: FormData, me: Principal, detail: PairingDetail) -> Any:
    if action == "set_goals":
        goals = []
        for i in range(1, GOAL_ROWS + 1):
            goal_id, title = _str(form, f"goal_id_{i}"), _str(form, f"title_{i}")
            measure, target = _str(form, f"measure_{i}"), _str(form, f"target_{i}")
            if not (goal_id or title or measure):
                continue
            try:
                goals.append(Goal(goal_id=goal_id or f"{detail.my_side.value}-{i}",
                                  title=title, success_measure=measure,
                                  target_date=target or None))
            except ValueError as exc:
                raise _invalid(exc, prefix=f"goals[{i}].") from None
        if not goals:
            raise Problem(422, "invalid_command", "write at least one goal", field="goals")
        return _build(c.SetGoals, me, goals=tuple(goals))
    if action == "log_meeting":
        held = _str(form, "held")
        if held not in ("yes", "no"):
            raise Problem(422, "invalid_command", "say whether the meeting took place",
                          field="held")
        return _build(c.LogMeeting, me, meeting_no=_int(form, "meeting_no") or 0,
                      held=held == "yes",
                      held_at=_local_time(form, "held_at", detail.timezone),
                      minutes=_int(form, "minutes"),
                      topics=tuple(v for v in form.getlist("topics")
                                   if isinstance(v, str) and "\x00" not in v),
                      goal_progress=_progress(form, "progress_", detail))
    if action == "reschedule_meeting":
        new_time = _local_time(form, "new_time", detail.timezone)
        if new_time is None:
            raise Problem(422, "invalid_command", "choose the new time", field="new_time")
        return _build(c.RescheduleMeeting, me, meeting_no=_int(form, "meeting_no") or 0,
                      new_time=new_time)
    if action == "submit_midpoint_review":
        return _build(c.SubmitMidpointReview, me, satisfaction=_int(form, "satisfaction") or 0,
                      goal_progress=_progress(form, "progress_", detail),
                      wants_to_continue=_str(form, "wants_to_continue") == "yes")
    if action == "request_exit":
        return _build(c.RequestExit, me, reason=_str(form, "reason") or "other")
    return _build(c.SubmitFinalEvaluation, me,
                  goal_attainment=_progress(form, "attainment_", detail),
                  relationship_rating=_int(form, "relationship_rating") or 0,
                  program_rating=_int(form, "program_rating") or 0,
                  learned=_str(form, "learned"),
                  would_recommend=_str(form, "would_recommend") == "yes")


def _defaults(action: str, detail: PairingDetail) -> dict[str, Any]:
    form: dict[str, Any] = {}
    if action == "set_goals":
        for i, goal in enumerate(detail.my_goals[:GOAL_ROWS], start=1):
            form.update({f"goal_id_{i}": goal.goal_id, f"title_{i}": goal.title,
                         f"measure_{i}": goal.success_measure,
                         f"target_{i}": goal.target_date.isoformat() if goal.target_date
                         else ""})
    if detail.next_meeting is not None:
        form["meeting_no"] = detail.next_meeting.meeting_no
    return form
