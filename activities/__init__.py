"""The only side effects: append events to the store, deliver notifications, match at scale,
start and end pairing workflows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import asyncpg
from temporalio.client import Client

from activities.cohort import CohortActivities
from activities.notify import NotificationActivities
from activities.recording import RecordingActivities
from activities.store import StoreActivities
from delivery.channels import NotificationChannel
from delivery.message import Renderer
from delivery.routing import Router
from eventstore import EventStore
from sebaya.catalog import domain_registry
from sebaya.settings import Settings, get_settings

# How often a worker retries failed deliveries whose backoff has elapsed.
RETRY_SWEEP = timedelta(minutes=1)


def _dev_mail(settings: Settings) -> tuple[str, int] | None:
    """The embedded stack's mail catcher, when this process runs on the embedded stack."""
    if settings.smtp_host or settings.uses_external_services:
        return None
    from sebaya.devstack import mail_catcher_address

    return mail_catcher_address(settings.state_dir)


def build_notifier(
    pool: asyncpg.Pool,
    settings: Settings,
    *,
    channel: NotificationChannel | None = None,
    retry_every: timedelta | None = None,
) -> NotificationActivities:
    """Notifications as this deployment sends them (the worker, the CLI and the web app)."""
    channels = channel or Router.from_settings(settings, smtp_fallback=_dev_mail(settings))
    return NotificationActivities(pool, channels, renderer=Renderer(settings.web_url),
                                  retry_every=retry_every)


def build_activities(
    pool: asyncpg.Pool,
    settings: Settings | None = None,
    *,
    client: Client | None = None,
    channel: NotificationChannel | None = None,
) -> list[Callable[..., Any]]:
    """Every activity the worker registers, bound to shared infrastructure.

    ``client`` is the worker's own Temporal client: the cohort's activities use it to start
    and end pairing workflows. Without one, only the pairing activities are offered.
    ``channel`` sends every notification one way; without it, channels come from the settings
    (docs/notifications.md), with the embedded stack's mail catcher as the SMTP default.
    """
    settings = settings or get_settings()
    store = EventStore(pool, domain_registry())
    store_acts = StoreActivities(store)
    notify = build_notifier(pool, settings, channel=channel, retry_every=RETRY_SWEEP)
    recording = RecordingActivities(store_acts, notify)
    acts: list[Callable[..., Any]] = [
        store_acts.append_events,
        store_acts.read_events,
        notify.send_notifications,
        recording.record_and_notify,
    ]
    if client is not None:
        cohort = CohortActivities(pool, store, client)
        acts += [cohort.run_matching, cohort.score_pairs, cohort.find_rematch,
                 cohort.launch_pairings, cohort.end_pairing]
    return acts
