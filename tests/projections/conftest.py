"""Fixtures of the projection tests; databases come from ``tests/conftest.py``."""

from __future__ import annotations

from collections.abc import Iterator

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
    """The sample cohort (completed, missed meetings, exit, left the company, silent and
    escalated, rematch) appended decision by decision in domain-time order."""
    sim = sample_cohort("C1")
    await append_decisions(store, sim.all_decisions())
    await past_horizon(store.pool)
    return sim


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, db_dsn: str) -> Iterator[None]:
    """The CLI's services for this test: its database, no Temporal."""
    from sebaya.settings import get_settings

    monkeypatch.setenv("SEBAYA_DATABASE_URL", db_dsn)
    monkeypatch.delenv("TEMPORAL_ADDRESS", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
