"""The web service on the real test services: Postgres (``db_pool``), the Temporal dev server
(``temporal_env``) with a real worker, and the projector following the store as the stack's
would. Requests go through httpx to the ASGI app in process."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest_asyncio
import uvicorn
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from delivery.channels import LogChannel, NotificationChannel
from eventstore import EventStore
from projections import Projector
from sebaya.bootstrap import build_registry
from tests.projections.views import past_horizon
from tests.test_devstack import make_stack, migrator, state_dir  # noqa: F401 - shared fixtures
from tests.workflows.harness import running_worker, six_month_rules, start_pairing, started_state
from web import auth
from web.app import create_app
from web.settings import WebSettings

BASE_URL = "http://testserver"


@dataclass
class WebEnv:
    app: Any
    pool: asyncpg.Pool
    client: Client
    env: WorkflowEnvironment
    task_queue: str
    settings: WebSettings
    projector: Projector

    def http(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),
                                 base_url=BASE_URL, **kwargs)

    async def participant(self, employee_id: str) -> httpx.AsyncClient:
        """A client signed in as ``employee_id`` (server-side session + its CSRF token)."""
        session_id = await auth.create_session(self.pool, "participant", employee_id, days=1)
        return self.http(cookies={"sebaya_session": session_id}, headers={
            "X-CSRF-Token": auth.csrf_token(self.settings.secret_key, session_id)})

    async def staff(self, role: auth.StaffRole, name: str = "tester") -> httpx.AsyncClient:
        _, token = await auth.create_api_token(self.pool, role, f"{name}-{uuid.uuid4().hex[:4]}")
        return self.http(headers={"Authorization": f"Bearer {token}"})

    async def project(self) -> None:
        """Bring the read models up to every event stored so far."""
        await past_horizon(self.pool)
        await self.projector.catch_up()

    async def pairing(self, mentor: str = "M001", mentee: str = "E001",
                      **kwargs: Any) -> tuple[str, WorkflowHandle[Any, Any]]:
        await self.pool.executemany(
            "INSERT INTO participants (employee_id, name, email) VALUES ($1, $2, $3) "
            "ON CONFLICT (employee_id) DO NOTHING",
            [(mentor, f"Mentor {mentor}", f"{mentor.lower()}@example.co.id"),
             (mentee, f"Mentee {mentee}", f"{mentee.lower()}@example.co.id")])
        kwargs.setdefault("rules", six_month_rules(goals_required_before_meetings=True))
        handle = await start_pairing(self.client, self.task_queue, mentor=mentor,
                                     mentee=mentee, **kwargs)
        state = await started_state(handle)
        await self.project()
        return state.pairing_id, handle


def web_settings(task_queue: str, **overrides: Any) -> WebSettings:
    values: dict[str, Any] = {"task_queue": task_queue, "public_url": BASE_URL,
                              # Generous: a loaded CI machine must not turn a slow update into
                              # a 503 (the 503 tests set their own short bound).
                              "temporal_timeout_s": 30.0, **overrides}
    return WebSettings(**values)


@contextlib.asynccontextmanager
async def web_env_for(temporal_env: Any, db_pool: asyncpg.Pool, task_queue: str,
                      channel: NotificationChannel | None = None,
                      **settings: Any) -> AsyncIterator[WebEnv]:
    config = web_settings(task_queue, **settings)
    app = create_app(pool=db_pool, client=temporal_env.client, registry=build_registry(),
                     settings=config, channel=channel or LogChannel())
    projector = Projector(EventStore(db_pool, build_registry()))
    async with running_worker(temporal_env.client, db_pool, task_queue):
        following = asyncio.create_task(projector.run(poll_interval=0.2))
        try:
            yield WebEnv(app=app, pool=db_pool, client=temporal_env.client, env=temporal_env,
                         task_queue=task_queue, settings=config, projector=projector)
        finally:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def serving(app: Any, port: int) -> AsyncIterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           lifespan="off", access_log=False))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn stopped"
        await asyncio.sleep(0.05)  # real time: the server binds its port
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest_asyncio.fixture
async def web(temporal_env: Any, db_pool: asyncpg.Pool, task_queue: str
              ) -> AsyncIterator[WebEnv]:
    async with web_env_for(temporal_env, db_pool, task_queue) as env:
        yield env
