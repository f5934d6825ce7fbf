"""Reading the read models back whole, to compare two projections of the same log."""

from __future__ import annotations

import asyncio
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


# The horizon is cluster-wide: a transaction in any database on the server (other test
# sessions share it) keeps new events unreadable in the global order for a while. Projectors
# wait for it by design; tests that need "everything projected" wait for it explicitly.
HORIZON_PATIENCE_S = 120.0


async def past_horizon(pool: asyncpg.Pool) -> None:
    """Wait until every stored event is readable in the global order, so that one catch-up
    projects all of them."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HORIZON_PATIENCE_S
    while True:
        held = await pool.fetchval(
            "SELECT count(*) FROM events "
            "WHERE tx_id >= (SELECT pg_snapshot_xmin(pg_current_snapshot()))")
        if held == 0:
            return
        if loop.time() > deadline:
            raise AssertionError(f"{held} event(s) still above the global horizon after "
                                 f"{HORIZON_PATIENCE_S:.0f}s: a transaction somewhere on the "
                                 "server stays open")
        await asyncio.sleep(0.05)  # real time: another session's transaction must end
