"""The projector of Sebaya's read models: the generic :class:`~projections.runner.ProjectionRunner`
driving :class:`~projections.read_models.ReadModels` under one checkpoint, ``read_models``.
What ``sebaya projections ...``, ``sebaya cohort status`` and the tests start. See
``docs/projections.md``.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg

from eventstore import EventStore
from projections import runner
from projections.read_models import ReadModels, ReadModelWrites
from projections.runner import BeforeCommit, ProjectionRunner, ProjectionStatus

DEFAULT_NAME = "read_models"


class Projector(ProjectionRunner[ReadModelWrites]):
    """Maintains ``pairing_view``, ``pairing_snapshots``, ``cohort_view`` and
    ``participant_view`` from the store.

    ``store``: the event store to follow, opened with the event registry the composition root
    built (it decodes the events and upcasts older schema versions). ``batch_size``,
    ``rebuild_batch_size`` and ``before_commit`` as for :class:`ProjectionRunner` (larger
    rebuild batches write each pairing's row fewer times; memory grows by about 3 KB per event
    in a batch); ``cache_size`` and ``snapshot_every`` as for :class:`ReadModels`.
    """

    def __init__(
        self,
        store: EventStore,
        *,
        name: str = DEFAULT_NAME,
        batch_size: int = 20_000,
        rebuild_batch_size: int = 100_000,
        cache_size: int = 20_000,
        snapshot_every: int = 64,
        before_commit: BeforeCommit | None = None,
    ) -> None:
        if store.registry is None:
            raise ValueError("the projector needs an EventStore opened with the event registry")
        super().__init__(
            store.pool, store.registry,
            ReadModels(cache_size=cache_size, snapshot_every=snapshot_every),
            name=name, batch_size=batch_size, rebuild_batch_size=rebuild_batch_size,
            before_commit=before_commit)


    async def settle(self, wait_at_most: float = 10.0) -> ProjectionStatus:
        """Catch up, then keep catching up while committed events are held back by an older
        transaction still running somewhere on the server (the global horizon, ADR 0001),
        for at most ``wait_at_most`` seconds: what a reader who just acted expects to see."""
        deadline = time.monotonic() + wait_at_most
        while True:
            await self.catch_up()
            status = await projection_status(self._pool, self.name)
            if (status.held_back == 0 and status.events_behind == 0) \
                    or time.monotonic() >= deadline:
                return status
            await asyncio.sleep(0.1)  # real time: waiting for another transaction to end


async def projection_status(pool: asyncpg.Pool, name: str = DEFAULT_NAME) -> ProjectionStatus:
    """Where the read models' projector (or projection ``name``) is against the head of the
    log (``sebaya projections status``)."""
    return await runner.projection_status(pool, name)
