"""Reading the read models back whole, to compare two projections of the same log."""

from __future__ import annotations

from typing import Any

import asyncpg

_TABLES = {
    "pairing_view": "pairing_id",
    "pairing_snapshots": "pairing_id",
    "cohort_view": "cohort_id",
    "participant_view": "cohort_id, employee_id",
}


async def dump_views(pool: asyncpg.Pool) -> dict[str, list[dict[str, Any]]]:
    """Every row of every view, ordered, without ``updated_at`` (wall-clock time of the
    write, the one column two projections of the same log legitimately differ in)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for table, key in _TABLES.items():
        rows = await pool.fetch(f"SELECT * FROM {table} ORDER BY {key}")
        out[table] = [{k: v for k, v in dict(r).items() if k != "updated_at"} for r in rows]
    return out


async def checkpoint(pool: asyncpg.Pool, name: str = "read_models") -> tuple[int, int, int]:
    row = await pool.fetchrow("SELECT tx_id, global_position, events_applied "
                              "FROM projection_checkpoints WHERE name = $1", name)
    assert row is not None
    return row[0], row[1], row[2]
