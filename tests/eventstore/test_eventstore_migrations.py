"""Migrations (ordered, checksummed, idempotent, safe to race) and what they create:
append-only triggers, the support tables and the read-only auditor role."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import asyncpg
import pytest

from eventstore import EventStore, MigrationError, migrate
from eventstore.migrate import MIGRATIONS_DIR, load_migrations

from .eventstore_support import batch

ALL = [m.name for m in load_migrations()]


def test_migration_files_are_ordered_and_named() -> None:
    assert ALL[:3] == ["0001_events", "0002_deliveries_participants", "0003_auditor_role"]
    assert ALL == sorted(ALL)


async def test_migrate_twice_applies_nothing_the_second_time(empty_db_dsn: str) -> None:
    assert await migrate(empty_db_dsn) == ALL
    assert await migrate(empty_db_dsn) == []
    conn = await asyncpg.connect(empty_db_dsn)
    try:
        rows = await conn.fetch("SELECT name, checksum FROM schema_migrations ORDER BY name")
    finally:
        await conn.close()
    assert [(r["name"], r["checksum"]) for r in rows] == [
        (m.name, m.checksum) for m in load_migrations()
    ]


async def test_template_clone_is_up_to_date(db_dsn: str) -> None:
    assert await migrate(db_dsn) == []


async def test_concurrent_migrations_both_succeed(empty_db_dsn: str) -> None:
    results = await asyncio.gather(*(migrate(empty_db_dsn) for _ in range(4)))
    applied = [name for result in results for name in result]
    assert sorted(applied) == ALL  # each migration applied exactly once, by someone
    assert results.count([]) == 3


async def test_a_changed_applied_migration_is_refused(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute("UPDATE schema_migrations SET checksum = 'edited' "
                           "WHERE name = '0002_deliveries_participants'")
    finally:
        await conn.close()
    with pytest.raises(MigrationError, match="0002_deliveries_participants was changed"):
        await migrate(db_dsn)


async def test_a_failing_migration_is_rolled_back(db_dsn: str, tmp_path: Path) -> None:
    for path in MIGRATIONS_DIR.glob("*.sql"):
        shutil.copy(path, tmp_path)
    (tmp_path / "0900_broken.sql").write_text(
        "CREATE TABLE half_done (id int);\nSELECT no_such_function();\n"
    )
    with pytest.raises(asyncpg.UndefinedFunctionError):
        await migrate(db_dsn, directory=tmp_path)
    (tmp_path / "0900_broken.sql").write_text("CREATE TABLE half_done (id int);\n")
    assert await migrate(db_dsn, directory=tmp_path) == ["0900_broken"]

    (tmp_path / "0901 Bad Name.sql").write_text("SELECT 1;\n")
    with pytest.raises(MigrationError, match=r"not named NNNN_name\.sql"):
        await migrate(db_dsn, directory=tmp_path)


async def test_events_are_append_only(store: EventStore, db_pool: asyncpg.Pool) -> None:
    await store.append("pairing-1", 0, batch(2))
    for statement, operation in [
        ("UPDATE events SET type = 'x' WHERE version = 1", "UPDATE"),
        ("DELETE FROM events WHERE version = 2", "DELETE"),
        ("TRUNCATE events", "TRUNCATE"),
        ("DELETE FROM streams", "DELETE"),
        ("TRUNCATE streams CASCADE", "TRUNCATE"),
    ]:
        with pytest.raises(asyncpg.RestrictViolationError, match=f"{operation} refused"):
            await db_pool.execute(statement)
    assert await db_pool.fetchval("SELECT count(*) FROM events") == 2
    assert (await store.verify()).ok


async def test_support_tables(db_pool: asyncpg.Pool) -> None:
    await db_pool.execute("INSERT INTO deliveries (idempotency_key, channel, recipient, template, "
                          "payload, status) VALUES ('k', 'email', 'E0012', 'welcome', '{}', "
                          "'pending')")
    row = await db_pool.fetchrow("SELECT attempts, created_at, delivered_at FROM deliveries")
    assert row is not None and row["attempts"] == 0 and row["created_at"] is not None
    with pytest.raises(asyncpg.UniqueViolationError):
        await db_pool.execute("INSERT INTO deliveries (idempotency_key) VALUES ('k')")

    await db_pool.execute("INSERT INTO participants (employee_id, name, email, timezone) "
                          "VALUES ('E0012', 'Siti', 'siti@example.com', 'Asia/Jakarta')")
    await db_pool.execute("UPDATE participants SET name = NULL, email = NULL, "
                          "erased_at = now() WHERE employee_id = 'E0012'")
    assert await db_pool.fetchval("SELECT erased_at IS NOT NULL FROM participants") is True


async def test_auditor_role_reads_events_only(store: EventStore, db_pool: asyncpg.Pool) -> None:
    await store.append("pairing-1", 0, batch(2))
    assert await db_pool.fetchval(
        "SELECT NOT rolcanlogin FROM pg_roles WHERE rolname = 'sebaya_auditor'"
    ) is True
    async with db_pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL ROLE sebaya_auditor")
        assert await conn.fetchval("SELECT count(*) FROM events") == 2
        assert await conn.fetchval("SELECT count(*) FROM streams") == 1
        # audit_events is cut at the cluster-wide horizon, which other sessions on a shared
        # server can hold back for a moment.
        deadline = asyncio.get_running_loop().time() + 60
        while await conn.fetchval("SELECT count(*) FROM audit_events") < 2:
            assert asyncio.get_running_loop().time() < deadline, "horizon never moved"
            await asyncio.sleep(0.05)
        for table in ("participants", "deliveries", "schema_migrations"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                async with conn.transaction():  # a savepoint keeps the outer one usable
                    await conn.fetchval(f"SELECT count(*) FROM {table}")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with conn.transaction():
                await conn.execute("INSERT INTO streams (stream_id, version, head_hash) "
                                   "VALUES ('x', 0, repeat('0', 64))")
