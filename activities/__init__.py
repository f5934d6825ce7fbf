"""The only side effects: append events to the store, deliver notifications, match at scale,
start and end pairing workflows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
from temporalio.client import Client

from activities.cohort import CohortActivities
from activities.digest import DigestActivities
from activities.notify import LogChannel, NotificationActivities, NotificationChannel
from activities.recording import RecordingActivities
from activities.store import StoreActivities
from eventstore import EventStore
from sebaya.catalog import domain_registry
from sebaya.settings import Settings


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
    """
    store = EventStore(pool, domain_registry())
    store_acts = StoreActivities(store)
    notify = NotificationActivities(pool, channel or LogChannel())
    recording = RecordingActivities(store_acts, notify)
    acts: list[Callable[..., Any]] = [
        store_acts.append_events,
        store_acts.read_events,
        notify.send_notifications,
        recording.record_and_notify,
        DigestActivities(pool, notify, client).send_coordinator_digest,
    ]
    if client is not None:
        cohort = CohortActivities(pool, store, client)
        acts += [cohort.run_matching, cohort.score_pairs, cohort.find_rematch,
                 cohort.launch_pairings, cohort.end_pairing]
    return acts
