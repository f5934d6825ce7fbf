"""The coordinator digest activity: read the cohort's read models, send one digest.

Everything it reads is a read model (``projections.queries``) or a delivery record, so the
digest is as fresh as the projector; it goes out through the normal notification path under a
key derived from the cohort and the week, so a retry never sends a second one.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
from pydantic import BaseModel, ConfigDict
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.notify import Delivery, NotificationActivities, SendNotificationsInput
from adapters.roster import load_program
from delivery.digest import digest_data, digest_key
from delivery.message import COORDINATOR_DIGEST
from domain.ids import cohort_workflow_id
from projections.queries import cohort_status, pairings_of_cohort

# A cohort workflow in one of these states will launch nothing more: its digest stops.
_CLOSED = frozenset({
    WorkflowExecutionStatus.COMPLETED, WorkflowExecutionStatus.FAILED,
    WorkflowExecutionStatus.CANCELED, WorkflowExecutionStatus.TERMINATED,
    WorkflowExecutionStatus.TIMED_OUT,
})


class DigestRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    cohort_id: str
    # The end of the week the digest covers (the workflow's time), which also keys it.
    period_end: datetime


class DigestResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    cohort_ended: bool
    sent: bool
    attention: int = 0


class DigestActivities:
    def __init__(self, pool: asyncpg.Pool, notify: NotificationActivities,
                 client: Client | None = None) -> None:
        self._pool = pool
        self._notify = notify
        self._client = client

    @activity.defn(name="send_coordinator_digest")
    async def send_coordinator_digest(self, req: DigestRequest) -> DigestResult:
        if await self._cohort_ended(req.cohort_id):
            return DigestResult(cohort_ended=True, sent=False)
        program = await load_program(self._pool, req.cohort_id)
        status = await cohort_status(self._pool, req.cohort_id, now=req.period_end)
        if status is None:
            # Not projected yet (a cohort set up minutes ago): nothing to report this week.
            return DigestResult(cohort_ended=False, sent=False)
        rows = await pairings_of_cohort(self._pool, req.cohort_id)
        data = digest_data(
            status, rows, await self._failing(req.cohort_id),
            period_end=req.period_end, timezone=program.ground_rules.timezone,
            language=str(program.language),
        )
        recipient = f"coordinator:{req.cohort_id}"
        await self._notify.send_notifications(SendNotificationsInput(deliveries=[Delivery(
            idempotency_key=digest_key(req.cohort_id, req.period_end), recipient=recipient,
            template=COORDINATOR_DIGEST, data=data,
        )], decided_at=req.period_end))
        return DigestResult(cohort_ended=False, sent=True, attention=len(data["attention"]))

    async def _failing(self, cohort_id: str) -> dict[str, str]:
        """Participants of the cohort whose latest delivery did not go out (a later success
        means the address works again)."""
        rows = await self._pool.fetch(
            """
            SELECT DISTINCT ON (d.recipient) d.recipient, d.status
              FROM deliveries d
              JOIN pairing_view p ON d.recipient IN (p.mentor_id, p.mentee_id)
             WHERE p.cohort_id = $1 AND d.status <> 'deferred'
             ORDER BY d.recipient, d.created_at DESC
            """,
            cohort_id,
        )
        return {r["recipient"]: r["status"] for r in rows if r["status"] in ("failed", "dead")}

    async def _cohort_ended(self, cohort_id: str) -> bool:
        phase = await self._pool.fetchval(
            "SELECT phase FROM cohort_view WHERE cohort_id = $1", cohort_id)
        if phase == "completed":
            return True
        if self._client is None:
            return False
        try:
            described = await self._client.get_workflow_handle(
                cohort_workflow_id(cohort_id)).describe()
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                return False  # cohorts loaded from events alone (imports, tests)
            raise
        return described.status in _CLOSED
