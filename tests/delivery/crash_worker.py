"""A real worker process that dies at a chosen point of a delivery:
``python -m tests.delivery.crash_worker --crash after_send --on 1 ...``.

- ``before_send``: the key is claimed (``pending``), nothing handed to the SMTP server yet.
- ``after_send``: the SMTP server accepted the message, the record still says ``pending``
  (the documented duplicate window).
- ``after_mark``: the delivery is marked ``sent``, the activity has not reported back.
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
from delivery.channels import Contact, Delivery, SmtpChannel
from delivery.message import Message
from delivery.routing import Router
from eventstore import EventStore
from sebaya.bootstrap import build_registry
from worker import WORKFLOW_RUNNER
from workflows import ALL_WORKFLOWS


def die(where: str) -> None:
    print(f"crash_worker: dying {where}", flush=True)
    os._exit(137)


class CrashingSmtp(SmtpChannel):
    def __init__(self, *args: object, crash: str, on: int, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.crash, self.on, self.sends = crash, on, 0

    async def send(self, contact: Contact, delivery: Delivery, message: Message) -> str | None:
        self.sends += 1
        ordinal = self.sends  # sends of one call run concurrently: count before awaiting
        if self.crash == "before_send" and ordinal == self.on:
            die(f"before sending {delivery.idempotency_key}")
        provider_id = await super().send(contact, delivery, message)
        if self.crash == "after_send" and ordinal == self.on:
            die(f"after the server accepted {delivery.idempotency_key}")
        return provider_id


class CrashingRecorder(RecordingActivities):
    def __init__(self, store: StoreActivities, notify: NotificationActivities, on: int) -> None:
        super().__init__(store, notify)
        self.on, self.calls = on, 0

    @activity.defn(name="record_and_notify")
    async def record_and_notify(self, inp: RecordInput) -> AppendEventsResult:
        result = await super().record_and_notify(inp)
        if inp.deliveries:
            self.calls += 1
            if self.calls == self.on:
                die("after marking its deliveries sent")
        return result


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--smtp-port", type=int, required=True)
    parser.add_argument("--crash", choices=["none", "before_send", "after_send", "after_mark"],
                        default="none")
    parser.add_argument("--on", type=int, default=1)
    args = parser.parse_args()
    client = await Client.connect(args.address, data_converter=pydantic_data_converter)
    pool = await asyncpg.create_pool(args.dsn, min_size=1, max_size=5)
    smtp = CrashingSmtp("127.0.0.1", args.smtp_port, sender="Sebaya <noreply@sebaya.test>",
                        tls="none", crash=args.crash, on=args.on)
    registry = build_registry()
    store = StoreActivities(EventStore(pool, registry), registry)
    notify = NotificationActivities(pool, Router(email=smtp))
    recorder = (CrashingRecorder(store, notify, args.on) if args.crash == "after_mark"
                else RecordingActivities(store, notify))
    worker = Worker(client, task_queue=args.task_queue, workflows=ALL_WORKFLOWS,
                    workflow_runner=WORKFLOW_RUNNER,
                    activities=[store.append_events, store.read_events,
                                notify.send_notifications, recorder.record_and_notify])
    print("crash_worker: polling", flush=True)
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main())
