"""The only side effects: append events to the store, deliver notifications, match at scale."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg

from activities.notify import LogChannel, NotificationActivities, NotificationChannel
from activities.recording import RecordingActivities
from activities.store import StoreActivities
from eventstore import EventStore
from sebaya.catalog import domain_registry
from sebaya.settings import Settings


def build_activities(
    pool: asyncpg.Pool, settings: Settings | None = None, *,
    channel: NotificationChannel | None = None,
) -> list[Callable[..., Any]]:
    """Every activity the worker registers, bound to shared infrastructure."""
    store = EventStore(pool, domain_registry())
    store_acts = StoreActivities(store)
    notify = NotificationActivities(pool, channel or LogChannel())
    recording = RecordingActivities(store_acts, notify)
    return [store_acts.append_events, notify.send_notifications, recording.record_and_notify]
