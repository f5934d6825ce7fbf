"""Request dependencies: the shared services, and who is calling.

A route states who may call it in its signature (``me: ParticipantDep``); the authorization
matrix test reads these :class:`Allow` rules off the route table, so a route without one
fails the suite.

Authentication is a list of :class:`Authenticator`s tried in order (session cookie, then
bearer API token). Single sign-on is one more authenticator (an OIDC bearer-token check, or
an OIDC callback route that opens the same server-side session): routes do not change.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the annotations of
# ``Allow.__call__`` at run time, and an instance has no globals to resolve strings in.
from dataclasses import dataclass
from typing import Annotated, Any, Optional, Protocol

import asyncpg
from fastapi import Depends, Request
from temporalio.client import Client

from activities.notify import NotificationActivities
from eventstore import EventStore
from web import auth
from web.auth import Principal, Role
from web.problems import Problem
from web.settings import WebSettings

SESSION_COOKIE = "sebaya_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Authenticator(Protocol):
    async def authenticate(self, request: Request, services: "Services"
                           ) -> Principal | None: ...


@dataclass(frozen=True)
class Services:
    """Everything a request may use; made once at start-up, shared by all requests."""

    pool: asyncpg.Pool
    client: Client
    store: EventStore
    settings: WebSettings
    notifier: NotificationActivities
    """The notification layer (one per process: it keeps SMTP connections open)."""
    links: auth.MagicLinks
    authenticators: tuple[Authenticator, ...]


class SessionCookie:
    async def authenticate(self, request: Request, services: Services) -> Principal | None:
        session_id = request.cookies.get(SESSION_COOKIE)
        if not session_id:
            return None
        return await auth.principal_for_session(services.pool, session_id)


class BearerToken:
    async def authenticate(self, request: Request, services: Services) -> Principal | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        principal = await auth.principal_for_token(services.pool, token.strip())
        if principal is None:
            raise Problem(401, "invalid_token", "this API token is unknown or revoked",
                          headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return principal


DEFAULT_AUTHENTICATORS: tuple[Authenticator, ...] = (BearerToken(), SessionCookie())


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


ServicesDep = Annotated[Services, Depends(services)]


async def authenticate(request: Request) -> Principal | None:
    """The caller, or None; computed once per request."""
    if "principal" in request.scope.get("state", {}):
        cached: Principal | None = request.state.principal
        return cached
    svc = services(request)
    principal = None
    for authenticator in svc.authenticators:
        principal = await authenticator.authenticate(request, svc)
        if principal is not None:
            break
    request.state.principal = principal
    return principal


async def check_csrf(request: Request, principal: Principal) -> None:
    """Cookie-authenticated writes must carry the session's CSRF token (form field or
    header); bearer tokens are not sent by browsers on their own, so they need none."""
    if principal.session_id is None or request.method not in UNSAFE_METHODS:
        return
    presented = request.headers.get(CSRF_HEADER)
    if presented is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        presented = value if isinstance(value, str) else None
    if not auth.csrf_ok(services(request).settings.secret_key, principal.session_id, presented):
        raise Problem(403, "csrf_failed",
                      "the form has expired or did not come from this site; reload and retry")


class Allow:
    """Who may call a route: ``Allow("participant")``; ``Allow.public()`` for everyone."""

    def __init__(self, *roles: Role, public: bool = False) -> None:
        self.roles = frozenset(roles)
        self.public = public

    @classmethod
    def public_route(cls) -> "Allow":
        return cls(public=True)

    async def __call__(self, request: Request) -> Optional[Principal]:  # noqa: UP045
        principal = await authenticate(request)
        if self.public:
            return principal
        if principal is None:
            raise Problem(401, "unauthenticated", "sign in first",
                          headers={"WWW-Authenticate": "Bearer"})
        if principal.role not in self.roles:
            raise Problem(403, "forbidden",
                          f"a {principal.role} may not do this (allowed: "
                          f"{', '.join(sorted(self.roles))})")
        await check_csrf(request, principal)
        return principal


PUBLIC = Allow.public_route()
ParticipantDep = Annotated[Principal, Depends(Allow("participant"))]
CoordinatorDep = Annotated[Principal, Depends(Allow("coordinator"))]
# Auditors read; coordinators may read the same record.
ReaderDep = Annotated[Principal, Depends(Allow("auditor", "coordinator"))]
SignedInDep = Annotated[Principal, Depends(Allow("participant", "coordinator", "auditor"))]
AnyoneDep = Annotated[Principal | None, Depends(PUBLIC)]


def rule_of(dependant: Any) -> "Allow | None":
    """The :class:`Allow` rule among a route's dependencies (recursively), if any."""
    for dep in dependant.dependencies:
        if isinstance(dep.call, Allow):
            return dep.call
        found = rule_of(dep)
        if found is not None:
            return found
    return None
