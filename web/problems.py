"""RFC 9457 problem details: every refusal the service gives, mapped in this one place.

Domain refusals arrive from Temporal as ``ApplicationError``s whose ``type`` is the domain
error's stable code (``domain/errors.py``). The code's family decides the status: the
``NotAllowedNow`` family is 409 (well formed, not now), the ``InvalidCommand`` family is 422.
Pages render the same :class:`Problem` as a message on the form instead of JSON.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain import errors

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://sebaya.dev/problems/"

_log = structlog.get_logger("sebaya.web")


def _codes() -> dict[str, type[errors.DomainError]]:
    found: dict[str, type[errors.DomainError]] = {}
    pending: list[type[errors.DomainError]] = [errors.DomainError]
    while pending:
        cls = pending.pop()
        found[cls.code] = cls
        pending.extend(cls.__subclasses__())
    return found


DOMAIN_CODES = _codes()


def status_for_code(code: str) -> int:
    """409 for the ``NotAllowedNow`` family, 422 for ``InvalidCommand`` (and anything else
    the domain refuses)."""
    cls = DOMAIN_CODES.get(code)
    if cls is not None and issubclass(cls, errors.NotAllowedNow):
        return 409
    return 422


class ProblemModel(BaseModel):
    """The body of every error answer (``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    field: str | None = None
    problems: list[dict[str, Any]] | None = None
    """Input file problems (``POST /cohorts``): each with ``file``, ``line``, ``column``,
    ``message``."""


class Problem(Exception):
    """Raise anywhere in a request to answer with a problem document."""

    def __init__(self, status: int, code: str, detail: str, *, title: str | None = None,
                 field: str | None = None, problems: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title or _TITLES.get(status, "Error")
        self.field = field
        self.problems = problems
        self.headers = headers

    @classmethod
    def domain(cls, code: str, message: str, field: str | None = None) -> Problem:
        return cls(status_for_code(code), code, message, field=field)

    def body(self) -> dict[str, Any]:
        doc = ProblemModel(type=TYPE_BASE + self.code, title=self.title, status=self.status,
                           detail=self.detail, code=self.code, field=self.field,
                           problems=self.problems)
        return doc.model_dump(exclude_none=True)


_TITLES = {
    400: "Bad request",
    401: "Sign-in required",
    403: "Not allowed for your role",
    404: "Not found",
    409: "Not allowed now",
    413: "Too large",
    422: "Invalid input",
    503: "Service unavailable",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the refusals a route may give, all problem documents."""
    return {status: {"model": ProblemModel, "content": {PROBLEM_JSON: {}}}
            for status in statuses}


def not_found(what: str, ident: str) -> Problem:
    return Problem(404, f"{what}_not_found", f"no {what} {ident!r}")


def unavailable(detail: str) -> Problem:
    return Problem(503, "unavailable", detail, headers={"Retry-After": "5"})


def problem_response(problem: Problem) -> JSONResponse:
    return JSONResponse(problem.body(), status_code=problem.status, media_type=PROBLEM_JSON,
                        headers=problem.headers)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem+json."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Any:
        if getattr(request.state, "wants_html", False):
            from web.pages import render_problem

            return render_problem(request, exc)
        return problem_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Any:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) or None
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg')}"
            for e in exc.errors()[:10])
        return problem_response(Problem(422, "invalid_request", detail, field=field))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Any:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return problem_response(Problem(exc.status_code, code, str(exc.detail),
                                        headers=getattr(exc, "headers", None)))

    @app.exception_handler(asyncpg.CharacterNotInRepertoireError)
    async def _unstorable(request: Request, exc: Exception) -> Any:
        # A backstop: inputs are checked for NUL characters, but a path that forgot must still
        # answer 422 rather than 500.
        return problem_response(Problem(422, "invalid_request",
                                        "the request holds a character that cannot be stored"))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Any:
        _log.exception("request failed", path=request.url.path)
        return problem_response(Problem(500, "internal_error",
                                        "something went wrong on our side; it has been logged"))
