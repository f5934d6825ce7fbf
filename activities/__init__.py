"""The only side effects: append events to the store, deliver notifications, match at scale,
start and end pairing workflows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
from temporalio.client import Client

from activities.cohort import CohortActivities
from activities.digest import DigestActivities
from activities.notify import NotificationActivities
from activities.recording import RecordingActivities
from activities.store import StoreActivities
from eventstore import EventRegistry, EventStore


def build_activities(
    pool: asyncpg.Pool,
    registry: EventRegistry,
    notifier: NotificationActivities,
    *,
    client: Client | None = None,
) -> list[Callable[..., Any]]:
    """Every activity the worker registers, bound to the infrastructure the composition root
    (``sebaya/bootstrap.py``) built: the pool, the event registry and the notifier (channels,
    templates, invites, quiet hours as this deployment is configured).

    ``client`` is the worker's own Temporal client: the cohort's activities use it to start
    and end pairing workflows. Without one, only the pairing activities are offered.
    """
    store = EventStore(pool, registry)
    store_acts = StoreActivities(store, registry)
    recording = RecordingActivities(store_acts, notifier)
    acts: list[Callable[..., Any]] = [
        store_acts.append_events,
        store_acts.read_events,
        notifier.send_notifications,
        recording.record_and_notify,
        DigestActivities(pool, notifier, client).send_coordinator_digest,
    ]
    if client is not None:
        cohort = CohortActivities(pool, store, client)
        acts += [cohort.run_matching, cohort.score_swaps, cohort.score_pairs,
                 cohort.find_rematch, cohort.launch_pairings, cohort.end_pairing,
                 cohort.apply_roster, cohort.check_running_pairs, cohort.match_joiners,
                 cohort.offer_exit]
    return acts
