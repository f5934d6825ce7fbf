"""The composition root: the one place that builds Sebaya's shared infrastructure.

Entry points (the worker, the CLI, the web service, the demo, benches) ask this module for
the event registry, the Postgres pool, the notification channel and the Temporal client;
nothing below them builds its own. Lower layers receive what they need as arguments, so the
dependencies point down (see ``docs/architecture.md``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
from pydantic import BaseModel
from temporalio.client import Client
from temporalio.runtime import Runtime

from activities.notify import LogChannel, NotificationChannel
from domain import catalog
from eventstore import EventRegistry
from sebaya.logging import get_logger
from sebaya.runtime import Services, connect_pool, connect_temporal, resolve_services
from sebaya.settings import Settings, get_settings

__all__ = ["Infrastructure", "build_channel", "build_registry", "open_infrastructure"]

T = TypeVar("T")
log = get_logger("sebaya.bootstrap")


def build_registry(
    event_types: Iterable[type[BaseModel]] = catalog.EVENT_TYPES,
    legacy_models: Mapping[tuple[str, int], type[BaseModel]] = catalog.LEGACY_MODELS,
    upcasters: Mapping[tuple[str, int], catalog.Upcaster] = catalog.UPCASTERS,
) -> EventRegistry:
    """The store's registry from the domain's event catalogue (every type, every old version
    it may meet in the store, and the upcasters between them)."""
    registry = EventRegistry()
    for model in event_types:
        registry.register(model)
    for (name, version), model in legacy_models.items():
        registry.register(model, name=name, version=version)
    for (name, version), upcaster in upcasters.items():
        registry.register_upcaster(name, version, upcaster)
    return registry


def build_channel(settings: Settings) -> NotificationChannel:
    """The notification channel this deployment delivers through."""
    del settings  # one channel today; delivery configuration selects among several
    return LogChannel()


@dataclass(frozen=True)
class Infrastructure:
    """What an entry point runs on. ``client`` is None when it was not asked for."""

    settings: Settings
    services: Services
    registry: EventRegistry
    pool: asyncpg.Pool
    channel: NotificationChannel
    client: Client | None

    @property
    def temporal(self) -> Client:
        if self.client is None:
            raise RuntimeError("this entry point was opened without a Temporal client")
        return self.client


@asynccontextmanager
async def open_infrastructure(
    settings: Settings | None = None,
    *,
    temporal: bool = True,
    pool_min_size: int = 1,
    pool_max_size: int = 10,
    connect_timeout: float = 0.0,
    runtime: Runtime | None = None,
) -> AsyncIterator[Infrastructure]:
    """Connect to the configured services (environment first, then the embedded stack) and
    close everything on exit. Raises ``ServicesNotConfigured`` naming what is missing.

    ``connect_timeout``: keep retrying a service that does not accept connections yet for this
    long (the worker under Compose may start before Temporal or Postgres is ready).
    ``runtime``: the SDK runtime the client runs on (the worker's carries its metrics).
    """
    settings = settings or get_settings()
    services = resolve_services(settings)
    client = None
    if temporal:
        client = await _retry(
            "temporal",
            lambda: connect_temporal(services, settings=settings, runtime=runtime),
            connect_timeout,
        )
    pool = await _retry(
        "postgres",
        lambda: connect_pool(services, min_size=pool_min_size, max_size=pool_max_size),
        connect_timeout,
    )
    try:
        yield Infrastructure(
            settings=settings,
            services=services,
            registry=build_registry(),
            pool=pool,
            channel=build_channel(settings),
            client=client,
        )
    finally:
        await pool.close()


async def _retry(what: str, attempt: Callable[[], Awaitable[T]], give_up_after: float) -> T:
    deadline = time.monotonic() + give_up_after
    delay = 0.5
    while True:
        try:
            return await attempt()
        except Exception as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("cannot connect yet, retrying", service=what, error=str(exc), in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
