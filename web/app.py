"""The web service, assembled: :func:`create_app` takes its infrastructure as arguments
(tests pass the test database and the test Temporal server; ``sebaya serve`` passes the
configured ones, see :mod:`sebaya.cli.serve`)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.client import Client

from activities.notify import NotificationActivities
from delivery.channels import NotificationChannel
from eventstore import EventRegistry, EventStore
from web import auth, problems
from web.deps import DEFAULT_AUTHENTICATORS, Authenticator, Services
from web.settings import WebSettings

API_PREFIX = "/api/v1"
STATIC = Path(__file__).resolve().with_name("static")

_log = structlog.get_logger("sebaya.web")


def build_services(*, pool: asyncpg.Pool, client: Client, registry: EventRegistry,
                   settings: WebSettings, channel: NotificationChannel | None = None,
                   notifier: NotificationActivities | None = None,
                   authenticators: tuple[Authenticator, ...] = DEFAULT_AUTHENTICATORS,
                   ) -> Services:
    """``channel`` sends every sign-in mail one way (tests: SMTP to the mail catcher); or give
    the deployment's ``notifier`` (``sebaya.bootstrap.build_notifier``: channels from settings)."""
    if notifier is None:
        if channel is None:
            raise TypeError("give a notification channel or a notifier")
        notifier = NotificationActivities(pool, channel)
    return Services(
        pool=pool, client=client, store=EventStore(pool, registry), settings=settings,
        notifier=notifier,
        links=auth.MagicLinks(pool, settings.secret_key, settings.magic_link_minutes),
        authenticators=authenticators,
    )


ServicesFactory = Callable[[], AbstractAsyncContextManager[Services]]


def create_app(
    *,
    pool: asyncpg.Pool | None = None,
    client: Client | None = None,
    registry: EventRegistry | None = None,
    settings: WebSettings | None = None,
    channel: NotificationChannel | None = None,
    services_factory: ServicesFactory | None = None,
    authenticators: tuple[Authenticator, ...] = DEFAULT_AUTHENTICATORS,
) -> FastAPI:
    """The ASGI app. Give either the infrastructure (``pool``, ``client``, ``registry``,
    ``settings``, ``channel``; the caller owns and closes them) or ``services_factory``, an
    async context manager opened at start-up and closed at shutdown."""
    given: Services | None = None
    if services_factory is None:
        if pool is None or client is None or registry is None or channel is None:
            raise TypeError("give pool, client, registry and channel, or services_factory")
        given = build_services(pool=pool, client=client, registry=registry,
                               settings=settings or WebSettings(), channel=channel,
                               authenticators=authenticators)

        @asynccontextmanager
        async def _given() -> AsyncIterator[Services]:
            yield given

        services_factory = _given

    factory = services_factory

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with factory() as svc:
            app.state.services = svc
            try:
                yield
            finally:
                await svc.notifier.aclose()

    app = FastAPI(
        title="Sebaya",
        version="1",
        description="Peer-mentoring programs: participants, coordinators and auditors.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    if given is not None:
        app.state.services = given  # usable before the lifespan runs (ASGI test clients)
    _describe_naive_times(app)
    problems.install(app)
    app.add_middleware(RequestLog)
    _include_routers(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _describe_naive_times(app: FastAPI) -> None:
    """Pydantic labels a ``datetime.time`` ``format: time``, which JSON Schema reads as RFC 3339
    (with an offset); the domain's times of day are local (``meeting_time: "10:00:00"``), so
    the published schema says exactly that with a pattern instead."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            _replace_time_format(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _replace_time_format(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("format") == "time" and node.get("type") == "string":
            del node["format"]
            node["pattern"] = r"^\d{2}:\d{2}(:\d{2}(\.\d+)?)?$"
        for value in node.values():
            _replace_time_format(value)
    elif isinstance(node, list):
        for value in node:
            _replace_time_format(value)


def _include_routers(app: FastAPI) -> None:
    from web.routers import (
        audit,
        calendar,
        codec,
        cohorts,
        health,
        pages,
        pairings,
        sign_in,
        staff_pages,
    )

    api = APIRouter(prefix=API_PREFIX)
    api.include_router(pairings.router)
    api.include_router(sign_in.api_router)
    api.include_router(cohorts.router)
    api.include_router(audit.router)
    api.include_router(codec.router)
    app.include_router(health.router)
    app.include_router(api)
    app.include_router(sign_in.page_router)
    app.include_router(pages.router)
    app.include_router(staff_pages.router)
    app.include_router(calendar.router)


class RequestLog:
    """Pure ASGI middleware: one structlog line per request, bound to a request id (the
    caller's ``X-Request-ID`` when sane), echoed in the answer's ``X-Request-ID``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("x-request-id", "")
        request_id = given if 0 < len(given) <= 100 and given.isprintable() \
            else uuid.uuid4().hex
        start = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                _log.info("request", method=scope["method"], path=scope["path"],
                          status=status, ms=round((time.perf_counter() - start) * 1000, 1))
