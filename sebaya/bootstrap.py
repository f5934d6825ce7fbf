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
from datetime import timedelta
from typing import Any, TypeVar

import asyncpg
from pydantic import BaseModel
from temporalio.client import Client
from temporalio.runtime import Runtime

from activities import build_activities
from activities.notify import NotificationActivities
from delivery.channels import NotificationChannel, SmtpChannel, WebhookChannel
from delivery.dispatch import MessageDecorator
from delivery.invites import CalendarAttacher, organizer_from
from delivery.message import Renderer
from delivery.routing import Router
from domain import catalog
from domain.program import NotifyVia
from eventstore import EventRegistry, EventStore
from sebaya.logging import get_logger
from sebaya.runtime import Services, connect_pool, connect_temporal, resolve_services
from sebaya.settings import Settings, get_settings

__all__ = [
    "Infrastructure",
    "build_notifier",
    "build_registry",
    "build_router",
    "build_worker_activities",
    "open_infrastructure",
]

# How often a worker retries failed deliveries whose backoff has elapsed.
RETRY_SWEEP = timedelta(minutes=1)

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


def _dev_mail(settings: Settings) -> tuple[str, int] | None:
    """The embedded stack's mail catcher (`sebaya dev up`), unless a mail server is configured."""
    if settings.smtp_host:
        return None
    from sebaya.devstack import mail_catcher_address

    return mail_catcher_address(settings.state_dir)


def build_router(settings: Settings) -> Router:
    """The deployment's channels from ``SEBAYA_SMTP_*`` / ``SEBAYA_WEBHOOK_*``
    (docs/notifications.md); without an SMTP host, the embedded stack's mail catcher."""
    email: NotificationChannel | None = None
    fallback = _dev_mail(settings)
    if settings.smtp_host:
        email = SmtpChannel(
            settings.smtp_host, settings.smtp_port, sender=settings.smtp_from,
            tls=settings.smtp_tls, username=settings.smtp_username,
            password=(settings.smtp_password.get_secret_value()
                      if settings.smtp_password else None),
            connections=settings.smtp_connections,
        )
    elif fallback is not None:
        email = SmtpChannel(fallback[0], fallback[1], sender=settings.smtp_from,
                            tls="none", connections=settings.smtp_connections)
    chat: NotificationChannel | None = None
    if settings.webhook_url:
        chat = WebhookChannel(
            settings.webhook_url, style=settings.webhook_style,
            secret=(settings.webhook_secret.get_secret_value()
                    if settings.webhook_secret else None),
        )
    default = None if settings.notify_channel == "auto" else NotifyVia(settings.notify_channel)
    return Router(email=email, chat=chat, default=default)


def build_notifier(
    pool: asyncpg.Pool,
    registry: EventRegistry,
    settings: Settings,
    *,
    client: Client | None = None,
    channel: NotificationChannel | None = None,
    decorators: tuple[MessageDecorator, ...] | None = None,
    retry_every: timedelta | None = RETRY_SWEEP,
) -> NotificationActivities:
    """Notifications as this deployment sends them (the worker, the CLI, the web app).

    ``channel``: every notification one way (tests, a single-channel deployment); default:
    :func:`build_router`. ``decorators`` add to each rendered message before it is sent;
    default: the pairing's calendar invite. ``client`` lets a delivery due outside the
    recipient's working hours wait on a durable timer.
    """
    if decorators is None:
        decorators = (CalendarAttacher(EventStore(pool, registry),
                                       organizer_from(settings.smtp_from)),)
    return NotificationActivities(
        pool, channel if channel is not None else build_router(settings),
        renderer=Renderer(settings.web_url), decorators=decorators, retry_every=retry_every,
        client=client)


def build_worker_activities(
    pool: asyncpg.Pool,
    registry: EventRegistry,
    settings: Settings,
    *,
    client: Client | None = None,
    channel: NotificationChannel | None = None,
) -> list[Callable[..., Any]]:
    """Every activity a worker registers, on this deployment's notifier."""
    notifier = build_notifier(pool, registry, settings, client=client, channel=channel)
    return build_activities(pool, registry, notifier, client=client)


@dataclass(frozen=True)
class Infrastructure:
    """What an entry point runs on. ``client`` is None when it was not asked for."""

    settings: Settings
    services: Services
    registry: EventRegistry
    pool: asyncpg.Pool
    notifier: NotificationActivities
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
    services = resolve_services(settings, temporal=temporal)
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
    registry = build_registry()
    notifier = build_notifier(pool, registry, settings, client=client)
    try:
        yield Infrastructure(
            settings=settings,
            services=services,
            registry=registry,
            pool=pool,
            notifier=notifier,
            client=client,
        )
    finally:
        await notifier.aclose()
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
