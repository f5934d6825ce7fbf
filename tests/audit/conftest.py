"""Fixtures of the audit tests; databases come from ``tests/conftest.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
import pytest_asyncio

from eventstore import EventStore
from sebaya.bootstrap import build_registry
from sebaya.samples.lifecycles import CohortSim, append_decisions, sample_cohort
from tests.projections.views import past_horizon


@pytest.fixture
def store(db_pool: asyncpg.Pool) -> EventStore:
    return EventStore(db_pool, build_registry())


@pytest_asyncio.fixture
async def cohort(store: EventStore) -> CohortSim:
    """The sample cohort: completed (C1.E01.M01.1, C1.E02.M02.1 with missed meetings),
    exited (C1.E03.M03.1 by the mentor, C1.E04.M04.1 because E04 left), silent and escalated
    (C1.E05.M05.1), and the rematch of E03 with M01 (C1.E03.M01.1)."""
    sim = sample_cohort("C1")
    await append_decisions(store, sim.all_decisions())
    await past_horizon(store.pool)
    return sim


@asynccontextmanager
async def attacker(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A superuser session with the append-only triggers switched off, as an attacker with
    database administrator rights would work."""
    async with pool.acquire() as conn:
        await conn.execute("SET session_replication_role = replica")
        try:
            yield conn
        finally:
            await conn.execute("RESET session_replication_role")


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, db_dsn: str) -> Iterator[None]:
    """The CLI's services for this test: its database; no Temporal unless a test adds it."""
    from sebaya.settings import get_settings

    monkeypatch.setenv("SEBAYA_DATABASE_URL", db_dsn)
    monkeypatch.delenv("TEMPORAL_ADDRESS", raising=False)
    monkeypatch.delenv("SEBAYA_AUDIT_ROLE", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
