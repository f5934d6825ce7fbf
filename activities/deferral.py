"""Quiet hours at the edge: decide per delivery whether it goes now or waits, and make the
wait durable.

A delivery that falls due outside its recipient's working hours is recorded as ``deferred``
and handed to a :data:`DEFERRED_WORKFLOW` whose id is derived from the delivery key, so a
retried notification activity finds the wait already under way (or finished) and never starts
a second one. When the window opens the workflow calls the notification activity with
``released``: the row goes back to ``pending`` and is sent once, like any other.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import asyncpg
import structlog
from pydantic import BaseModel, ConfigDict
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from adapters.roster import load_program
from delivery.channels import Delivery
from delivery.dispatch import COORDINATOR_PREFIX
from delivery.quiet_hours import NEVER_DEFERRED, WorkingHours, deliver_at
from domain.program import ProgramSpec

log = structlog.get_logger("sebaya.delivery")

DEFERRED_WORKFLOW = "DeferredDeliveryWorkflow"


def deferred_delivery_id(idempotency_key: str) -> str:
    return f"deferred-{idempotency_key}"


class DeferredDeliveryInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    delivery: Delivery
    deliver_at: datetime


class QuietHours:
    """Splits a decision's deliveries into "now" and "later" (``client`` starts the waits)."""

    def __init__(self, pool: asyncpg.Pool, client: Client) -> None:
        self._pool = pool
        self._client = client

    async def defer_outside_hours(self, deliveries: Sequence[Delivery], due: datetime,
                                  task_queue: str) -> list[Delivery]:
        """Defers what falls outside working hours; returns what goes out now."""
        candidates = [d for d in deliveries if d.template not in NEVER_DEFERRED]
        if not candidates:
            return list(deliveries)
        zones = await self._zones([d.recipient for d in candidates])
        programs: dict[str, ProgramSpec | None] = {}
        now: list[Delivery] = []
        for delivery in deliveries:
            when = None
            if delivery.template not in NEVER_DEFERRED:
                scope = delivery.recipient if delivery.recipient.startswith(
                    COORDINATOR_PREFIX) else str(delivery.data.get("cohort_id", ""))
                if scope not in programs:
                    programs[scope] = await self._program(delivery)
                when = held_until(delivery.template, zones.get(delivery.recipient),
                                  programs[scope], due)
            if when is None:
                now.append(delivery)
            else:
                await self._defer(delivery, when, task_queue)
        return now

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """The window opened: deferred rows become ``pending`` so the dispatcher sends them."""
        await self._pool.execute(
            "UPDATE deliveries SET status = 'pending', updated_at = now() "
            "WHERE idempotency_key = ANY($1::text[]) AND status = 'deferred'",
            [d.idempotency_key for d in deliveries])

    async def _defer(self, delivery: Delivery, when: datetime, task_queue: str) -> None:
        status = await self._pool.fetchval(
            """
            INSERT INTO deliveries (idempotency_key, recipient, template, payload, status,
                                    deliver_at)
            VALUES ($1, $2, $3, $4::jsonb, 'deferred', $5)
            ON CONFLICT (idempotency_key) DO UPDATE SET attempts = deliveries.attempts
            RETURNING status
            """,
            delivery.idempotency_key, delivery.recipient, delivery.template,
            json.dumps(delivery.data), when)
        if status != "deferred":
            return  # already sent (or failed and retried by the dispatcher): nothing to wait for
        try:
            await self._client.start_workflow(
                DEFERRED_WORKFLOW,
                DeferredDeliveryInput(delivery=delivery, deliver_at=when),
                id=deferred_delivery_id(delivery.idempotency_key),
                task_queue=task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
        except WorkflowAlreadyStartedError:
            pass  # the wait already ran to its end: it delivered, or will be retried there
        log.info("delivery deferred to working hours", idempotency_key=delivery.idempotency_key,
                 deliver_at=when.isoformat())

    async def _zones(self, recipients: Sequence[str]) -> dict[str, str]:
        rows = await self._pool.fetch(
            "SELECT employee_id, timezone FROM participants "
            "WHERE employee_id = ANY($1::text[]) AND timezone IS NOT NULL", list(recipients))
        return {r["employee_id"]: r["timezone"] for r in rows}

    async def _program(self, delivery: Delivery) -> ProgramSpec | None:
        cohort = (delivery.recipient.removeprefix(COORDINATOR_PREFIX)
                  if delivery.recipient.startswith(COORDINATOR_PREFIX)
                  else delivery.data.get("cohort_id"))
        if not cohort:
            return None
        try:
            return await load_program(self._pool, str(cohort))
        except LookupError:
            return None  # an unregistered cohort (tests, demos): no program to go by


def held_until(template: str, zone: str | None, program: ProgramSpec | None,
               due: datetime) -> datetime | None:
    """Until when quiet hours hold back a delivery decided at ``due`` (None: it goes now).

    Whose hours? The recipient's own ``zone``, else the program's; with neither known there is
    nothing to judge by, so it goes now. The one rule, also what the chaos run's checker holds
    each run's deliveries to."""
    if template in NEVER_DEFERRED:
        return None
    zone = zone or (program.ground_rules.timezone if program else None)
    return None if zone is None else deliver_at(due, zone, _hours_of(program))


def _hours_of(program: ProgramSpec | None) -> WorkingHours:
    if program is None:
        return WorkingHours()
    opens, closes = program.notifications.working_hours
    return WorkingHours(opens=opens, closes=closes)
