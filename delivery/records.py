"""Reading the delivery records (``deliveries``) for operations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import asyncpg

STATUSES = ("pending", "sent", "failed", "dead", "suppressed_erased")


@dataclass(frozen=True)
class DeliveryRecord:
    idempotency_key: str
    recipient: str
    template: str
    status: str
    channel: str | None
    attempts: int
    last_error: str | None
    provider_message_id: str | None
    created_at: datetime
    last_attempt_at: datetime | None
    delivered_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {k: v.isoformat() if isinstance(v, datetime) else v
                for k, v in asdict(self).items()}


async def list_deliveries(pool: asyncpg.Pool, statuses: Sequence[str] = (),
                          recipient: str | None = None, limit: int = 100
                          ) -> list[DeliveryRecord]:
    """Newest first; ``statuses`` empty means all."""
    unknown = set(statuses) - set(STATUSES)
    if unknown:
        raise ValueError(f"unknown status {sorted(unknown)[0]!r}; one of {', '.join(STATUSES)}")
    rows = await pool.fetch(
        """
        SELECT idempotency_key, recipient, template, status, channel, attempts, last_error,
               provider_message_id, created_at, last_attempt_at, delivered_at
          FROM deliveries
         WHERE (cardinality($1::text[]) = 0 OR status = ANY($1::text[]))
           AND ($2::text IS NULL OR recipient = $2)
         ORDER BY created_at DESC, idempotency_key
         LIMIT $3
        """, list(statuses), recipient, limit)
    return [DeliveryRecord(**dict(r)) for r in rows]


async def count_by_status(pool: asyncpg.Pool) -> dict[str, int]:
    rows = await pool.fetch("SELECT status, count(*) AS n FROM deliveries GROUP BY status")
    return {r["status"]: r["n"] for r in rows}
