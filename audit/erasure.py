"""GDPR erasure: forget who a person is without touching what happened.

Names and e-mail addresses live only in ``participants``; events, which are immutable and
hash-chained, name people by ``employee_id`` alone. Erasing a person blanks their name and
address and records when; every event, every hash and every read model stays as it was, so
the audit trail keeps verifying and keeps its meaning ("employee E0042 held 25 meetings")
without saying who E0042 was. Notifications to an erased person are suppressed by the
notification activity.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
from pydantic import BaseModel, ConfigDict


class ErasureResult(BaseModel):
    """What :func:`erase_person` did."""

    model_config = ConfigDict(frozen=True)

    employee_id: str
    found: bool
    already_erased: bool
    erased_at: datetime | None


async def erase_person(pool: asyncpg.Pool, employee_id: str) -> ErasureResult:
    """Blank the person's name and e-mail and set ``erased_at`` (kept from a first erasure
    when repeated). Events are not touched: they never held either."""
    async with pool.acquire() as conn, conn.transaction():
        before = await conn.fetchrow(
            "SELECT erased_at FROM participants WHERE employee_id = $1 FOR UPDATE", employee_id)
        if before is None:
            return ErasureResult(employee_id=employee_id, found=False, already_erased=False,
                                 erased_at=None)
        erased_at = await conn.fetchval(
            "UPDATE participants SET name = NULL, email = NULL, "
            "erased_at = COALESCE(erased_at, now()), updated_at = now() "
            "WHERE employee_id = $1 RETURNING erased_at", employee_id)
    return ErasureResult(employee_id=employee_id, found=True,
                         already_erased=before["erased_at"] is not None, erased_at=erased_at)
