"""Signing in: participants by a link sent to their e-mail, staff in the browser with their
API token; signing out.

Asking for a link always answers the same (202, or the same page), whether or not the
address belongs to anyone, and the mail goes out after the answer, so neither the answer nor
its timing tells who has an account. Opening the link only shows a page; its "Continue"
button (a POST) uses the link up, so mail scanners that fetch links cannot burn it.
"""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, BackgroundTasks, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from activities.notify import Delivery, SendNotificationsInput
from web import auth
from web.auth import LinkInvalid
from web.deps import PUBLIC, SESSION_COOKIE, Services, ServicesDep, SignedInDep
from web.pages import html_page, render
from web.params import Body
from web.problems import problem_responses

api_router = APIRouter(tags=["sign-in"])
page_router = APIRouter(tags=["pages"], include_in_schema=False,
                        dependencies=[Depends(html_page)])

_log = structlog.get_logger("sebaya.web.sign_in")

# Links mailed to one person per validity window (15 minutes): enough for typos and a lost
# mail, not enough to flood an inbox.
MAX_LINKS_PER_WINDOW = 5


class MagicLinkRequest(Body):
    email: str = Field(min_length=3, max_length=320)


class Accepted(BaseModel):
    status: str = "accepted"
    detail: str = "if this address belongs to a participant, a sign-in link is on its way"


class Me(BaseModel):
    role: str
    subject: str
    via: str
    csrf_token: str | None
    """Send it as ``X-CSRF-Token`` on writes made with the session cookie."""


async def send_link(svc: Services, email: str) -> None:
    """Find the participant by e-mail and mail them a link; nothing when there is none."""
    employee = await svc.pool.fetchval(
        "SELECT employee_id FROM participants "
        "WHERE lower(email) = lower($1) AND erased_at IS NULL ORDER BY employee_id LIMIT 1",
        email.strip())
    if employee is None:
        _log.info("sign-in link asked for an unknown address")
        return
    recent = await svc.pool.fetchval(
        "SELECT count(*) FROM magic_links WHERE employee_id = $1 "
        "AND created_at > now() - make_interval(mins => $2)", employee, svc.links.minutes)
    if recent >= MAX_LINKS_PER_WINDOW:
        # Someone keeps asking for this person's links: no more mail until the window passes
        # (the answer stays the same 202, so this says nothing about the account either).
        _log.warning("sign-in links throttled", employee_id=employee, recent=recent)
        return
    token = await svc.links.issue(employee)
    url = auth.sign_in_url(svc.settings.public_url, token)
    key = f"magic-link:{auth.digest(token)[:32]}"
    await svc.notifier.send_notifications(
        SendNotificationsInput(deliveries=[Delivery(
            idempotency_key=key, recipient=employee, template="magic_link",
            data={"url": url, "expires_minutes": svc.links.minutes})]))
    # The delivery log keeps each message's data; a usable link must not stay readable there.
    # A send that failed is not retried later with the redacted link: the person asks again.
    await svc.pool.execute(
        "UPDATE deliveries SET payload = payload || '{\"url\": \"[redacted]\"}'::jsonb, "
        "status = CASE WHEN status = 'failed' THEN 'dead' ELSE status END "
        "WHERE idempotency_key = $1", key)


async def _send_quietly(svc: Services, email: str) -> None:
    try:
        await send_link(svc, email)
    except Exception:
        _log.exception("sending a sign-in link failed")


@api_router.post("/auth/magic-link", status_code=202, response_model=Accepted,
                 dependencies=[Depends(PUBLIC)], responses=problem_responses(422),
                 summary="E-mail me a sign-in link")
async def request_link(body: MagicLinkRequest, svc: ServicesDep,
                       background: BackgroundTasks) -> Accepted:
    background.add_task(_send_quietly, svc, body.email)
    return Accepted()


@api_router.get("/me", response_model=Me, responses=problem_responses(401, 403),
                summary="Who am I (and my CSRF token)")
async def who_am_i(me: SignedInDep, svc: ServicesDep) -> Me:
    return Me(role=me.role, subject=me.subject, via=me.via,
              csrf_token=auth.csrf_token(svc.settings.secret_key, me.session_id)
              if me.session_id else None)


# --- pages ------------------------------------------------------------------------------------


def _set_session(response: Response, svc: Services, session_id: str) -> None:
    response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="lax",
                        secure=svc.settings.secure_cookies,
                        max_age=svc.settings.session_days * 86400, path="/")


@page_router.get("/sign-in", dependencies=[Depends(PUBLIC)])
async def sign_in_page(request: Request) -> Any:
    return render(request, "sign_in.html", {})


@page_router.post("/sign-in", dependencies=[Depends(PUBLIC)])
async def sign_in_submit(request: Request, svc: ServicesDep, background: BackgroundTasks,
                         email: Annotated[str, Form(max_length=320)] = "") -> Any:
    if len(email.strip()) < 3:
        return render(request, "sign_in.html", {"error": "email_required"}, status_code=422)
    background.add_task(_send_quietly, svc, email)
    return render(request, "sign_in_sent.html", {}, status_code=202)


@page_router.get("/auth/magic", dependencies=[Depends(PUBLIC)])
async def magic_link_page(request: Request, svc: ServicesDep, token: str = "") -> Any:
    try:
        await svc.links.check(token)
    except LinkInvalid as exc:
        return render(request, "link_invalid.html", {"reason": exc.reason}, status_code=400)
    return render(request, "link_continue.html", {"token": token})


@page_router.post("/auth/magic", dependencies=[Depends(PUBLIC)])
async def magic_link_continue(request: Request, svc: ServicesDep,
                              token: Annotated[str, Form()] = "") -> Any:
    try:
        employee = await svc.links.consume(token)
    except LinkInvalid as exc:
        return render(request, "link_invalid.html", {"reason": exc.reason}, status_code=400)
    session_id = await auth.create_session(svc.pool, "participant", employee,
                                           days=svc.settings.session_days)
    response = RedirectResponse("/", status_code=303)
    _set_session(response, svc, session_id)
    return response


@page_router.get("/staff/sign-in", dependencies=[Depends(PUBLIC)])
async def staff_sign_in_page(request: Request) -> Any:
    return render(request, "staff_sign_in.html", {})


@page_router.post("/staff/sign-in", dependencies=[Depends(PUBLIC)])
async def staff_sign_in(request: Request, svc: ServicesDep,
                        token: Annotated[str, Form()] = "") -> Any:
    principal = await auth.principal_for_token(svc.pool, token.strip()) if token else None
    if principal is None:
        return render(request, "staff_sign_in.html", {"error": "bad_token"}, status_code=400)
    session_id = await auth.create_session(svc.pool, principal.role, principal.subject,
                                           days=1, token_id=principal.token_id)
    response = RedirectResponse("/cohorts" if principal.role == "coordinator" else "/",
                                status_code=303)
    _set_session(response, svc, session_id)
    return response


@page_router.post("/sign-out")
async def sign_out(request: Request, svc: ServicesDep,
                   me: SignedInDep) -> Any:
    if me.session_id:
        await auth.revoke_session(svc.pool, me.session_id)
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
