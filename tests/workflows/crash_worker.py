"""A real worker process for crash tests: ``python -m tests.workflows.crash_worker ...``.

With ``--crash-after-append N`` it dies with ``os._exit`` right after the N-th append has
committed and before the activity reports back (or delivers its notifications): the worst
moment, when the store holds the events but Temporal has no record that they were written.
"""

from __future__ import annotations

import argparse
import asyncio
import os

import asyncpg
from temporalio import activity
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from activities.notify import NotificationActivities
from activities.recording import RecordingActivities, RecordInput
from activities.store import AppendEventsResult, StoreActivities
from delivery.channels import LogChannel
from eventstore import EventStore
from sebaya.catalog import domain_registry
from workflows import ALL_WORKFLOWS


class CrashingRecorder(RecordingActivities):
    def __init__(self, store: StoreActivities, notify: NotificationActivities,
                 crash_after: int) -> None:
        super().__init__(store, notify)
        self._store_acts = store
        self._crash_after = crash_after
        self._appends = 0

    @activity.defn(name="record_and_notify")
    async def record_and_notify(self, inp: RecordInput) -> AppendEventsResult:
        await self._store_acts.append_events(inp.append)
        self._appends += 1
        if self._appends == self._crash_after:
            print(f"crash_worker: dying after append #{self._appends}", flush=True)
            os._exit(137)
        # The real activity again: the append is now a recognised retry, then deliveries.
        return await super().record_and_notify(inp)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--crash-after-append", type=int, default=0)
    args = parser.parse_args()
    client = await Client.connect(args.address, namespace=args.namespace,
                                  data_converter=pydantic_data_converter)
    pool = await asyncpg.create_pool(args.dsn, min_size=1, max_size=5)
    store = StoreActivities(EventStore(pool, domain_registry()))
    notify = NotificationActivities(pool, LogChannel())
    recorder = CrashingRecorder(store, notify, args.crash_after_append)
    worker = Worker(client, task_queue=args.task_queue, workflows=ALL_WORKFLOWS,
                    activities=[store.append_events, store.read_events,
                                notify.send_notifications, recorder.record_and_notify])
    print("crash_worker: polling", flush=True)
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main())
