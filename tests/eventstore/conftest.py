"""Fixtures of the event store tests; the databases come from ``tests/conftest.py``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio

from eventstore import EventRegistry, EventStore

from .eventstore_support import domain_registry


@pytest.fixture
def store(db_pool: asyncpg.Pool) -> EventStore:
    return EventStore(db_pool)


@pytest.fixture
def registry() -> EventRegistry:
    return domain_registry()


@pytest.fixture
def typed_store(db_pool: asyncpg.Pool, registry: EventRegistry) -> EventStore:
    return EventStore(db_pool, registry)


@pytest_asyncio.fixture
async def empty_db_dsn(pg_server_dsn: str) -> AsyncIterator[str]:
    """A brand-new database with no migration applied."""
    name = f"sebaya_t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield urlunsplit(urlsplit(pg_server_dsn)._replace(path="/" + name))
    finally:
        admin = await asyncpg.connect(pg_server_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
