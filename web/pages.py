"""Rendering server-side pages: Jinja2 templates, the page's language, the CSRF token."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from web import auth
from web.i18n import EXIT_REASONS, pick_language, translator
from web.problems import Problem

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().with_name("templates"))


def _localtime(moment: datetime | None, zone: str) -> str:
    if moment is None:
        return ""
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


TEMPLATES.env.filters["localtime"] = _localtime
# A fresh Idempotency-Key per rendered form: submitting the same form twice records once.
TEMPLATES.env.globals["new_key"] = lambda: uuid.uuid4().hex
LANG_COOKIE = "sebaya_lang"


def language(request: Request) -> str:
    svc = request.app.state.services
    return pick_language(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE),
                         request.headers.get("accept-language"),
                         svc.settings.default_language)


async def html_page(request: Request) -> None:
    """Router dependency: refusals render as pages (a 401 sends people to sign in)."""
    request.state.wants_html = True


def render(request: Request, template: str, context: dict[str, Any], *,
           status_code: int = 200) -> HTMLResponse:
    svc = request.app.state.services
    lang = language(request)
    principal: auth.Principal | None = getattr(request.state, "principal", None)
    csrf = (auth.csrf_token(svc.settings.secret_key, principal.session_id)
            if principal is not None and principal.session_id else None)
    response = TEMPLATES.TemplateResponse(request, template, {
        "t": translator(lang), "lang": lang, "me": principal, "csrf": csrf,
        "exit_reasons": EXIT_REASONS[lang], "minutes": svc.settings.magic_link_minutes,
        **context,
    }, status_code=status_code)
    if request.query_params.get("lang") == lang:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax")
    return response


def render_problem(request: Request, problem: Problem) -> HTMLResponse:
    if problem.status == 401:
        from fastapi.responses import RedirectResponse

        return RedirectResponse("/sign-in", status_code=303)  # type: ignore[return-value]
    return render(request, "problem.html", {"problem": problem}, status_code=problem.status)
