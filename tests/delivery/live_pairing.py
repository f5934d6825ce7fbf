"""A real pairing on the dev server whose e-mails go through the SMTP channel to a real
aiosmtpd catcher: the worker the way ``worker.py`` builds it, one program, two people."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from delivery.catcher import CaughtMessage, MailCatcher
from delivery.channels import SmtpChannel
from domain import commands as c
from domain.ids import pairing_id_for, pairing_workflow_id
from domain.program import NotificationPolicy
from domain.rules import GroundRules
from intake import load_program
from sebaya.bootstrap import build_registry, build_worker_activities
from sebaya.settings import Settings
from tests.delivery.support import add_cohort, add_person
from workflows import ALL_WORKFLOWS
from workflows.pairing import PairingInput, PairingWorkflow

ROOT = Path(__file__).resolve().parents[2]
MENTOR, MENTEE = "M1", "E1"
MENTOR_EMAIL, MENTEE_EMAIL = "budi@example.co.id", "sari@example.com"


async def setup_cohort(pool: asyncpg.Pool, cohort_id: str, *, mentee_zone: str,
                       working_hours: tuple[time, time] = (time(8), time(20))) -> GroundRules:
    """The example program (Jakarta, Indonesian) and a pair: Budi in Jakarta mentors Sari,
    who lives in ``mentee_zone``."""
    spec = load_program(ROOT / "examples" / "program.yaml")
    spec = spec.model_copy(update={"notifications": NotificationPolicy(
        coordinator_email="koordinator@example.co.id", working_hours=working_hours)})
    await add_cohort(pool, cohort_id, spec.model_dump_json())
    await add_person(pool, MENTOR, "Budi Santoso", MENTOR_EMAIL, timezone="Asia/Jakarta")
    await add_person(pool, MENTEE, "Sari Dewi", MENTEE_EMAIL, timezone=mentee_zone)
    return spec.ground_rules


@asynccontextmanager
async def smtp_worker(client: Client | None, pool: asyncpg.Pool, task_queue: str,
                      catcher: MailCatcher, worker_client: Client) -> AsyncIterator[Worker]:
    """``client``: the activities' Temporal client (None: no quiet hours, no cohorts)."""
    settings = Settings(smtp_from="Program Mentoring <mentoring@sebaya.test>")
    smtp = SmtpChannel("127.0.0.1", catcher.port, sender=settings.smtp_from, tls="none")
    worker = Worker(worker_client, task_queue=task_queue, workflows=ALL_WORKFLOWS,
                    activities=build_worker_activities(pool, build_registry(), settings,
                                                       client=client, channel=smtp))
    async with worker:
        yield worker


async def start_pairing(client: Client, task_queue: str, cohort_id: str, rules: GroundRules,
                        start_at: datetime) -> WorkflowHandle[PairingWorkflow, Any]:
    pairing_id = pairing_id_for(cohort_id, MENTOR, MENTEE)
    start = c.StartPairing(actor=c.Actor.ops("ops-test"), pairing_id=pairing_id,
                           cohort_id=cohort_id, mentor_id=MENTOR, mentee_id=MENTEE,
                           ground_rules=rules, match_score=0.8)
    return await client.start_workflow(
        PairingWorkflow.run, PairingInput(start=start, start_at=start_at),
        id=pairing_workflow_id(pairing_id), task_queue=task_queue)


async def advance_to(env: Any, handle: WorkflowHandle[Any, Any], target: datetime) -> None:
    now = await env.get_current_time(handle)
    if target > now:
        await env.fast_forward(handle, target - now)


def tomorrow_at(hour_utc: int) -> datetime:
    """A start instant in the future whatever the wall clock says (the workflow waits for it
    on a durable timer, which the test skips)."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=2, hours=hour_utc)


def mail_to(catcher: MailCatcher, address: str, key_part: str) -> list[CaughtMessage]:
    return [m for m in catcher.messages()
            if address in m.recipients and m.delivery_key and key_part in m.delivery_key]
