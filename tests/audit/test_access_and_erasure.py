"""The auditor role reads the record and the read models and nothing personal, and can change
nothing; GDPR erasure forgets names and e-mails and leaves every event and hash as it was."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from audit.bundle import export_bundle, verify_bundle
from audit.erasure import erase_person
from audit.history import pairing_history
from audit.verify import verify
from eventstore import EventStore
from projections import Projector
from sebaya.bootstrap import build_registry
from sebaya.samples.lifecycles import CohortSim
from tests.audit.cli import output_json, sebaya

READABLE = ("events", "streams", "audit_events", "pairing_view", "pairing_snapshots",
            "cohort_view", "participant_view", "projection_checkpoints")
PERSONAL = ("participants", "deliveries")


@pytest_asyncio.fixture
async def auditor(db_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(db_dsn)
    await conn.execute("SET ROLE sebaya_auditor")
    try:
        yield conn
    finally:
        await conn.close()


async def test_auditor_reads_the_record_and_read_models(
    store: EventStore, cohort: CohortSim, auditor: asyncpg.Connection
) -> None:
    await Projector(store).catch_up()
    assert await auditor.fetchval("SELECT current_user") == "sebaya_auditor"
    for table in READABLE:
        await auditor.fetch(f"SELECT * FROM {table} LIMIT 1")
    assert await auditor.fetchval("SELECT count(*) FROM pairing_view") == 6


@pytest.mark.parametrize("table", PERSONAL)
async def test_auditor_cannot_read_personal_data(
    auditor: asyncpg.Connection, table: str
) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await auditor.fetch(f"SELECT * FROM {table}")


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO events (stream_id, version, event_id, type, schema_version, payload, "
        "metadata, occurred_at, prev_hash, hash) VALUES ('x', 1, gen_random_uuid(), 'T', 1, "
        "'{}', '{}', now(), repeat('0', 64), repeat('0', 64))",
        "UPDATE events SET payload = '{}'",
        "DELETE FROM events",
        "UPDATE streams SET version = 0",
        "SELECT * FROM eventstore_append('x', 0, ARRAY[]::uuid[], ARRAY[]::text[], "
        "ARRAY[]::int[], ARRAY[]::text[], ARRAY[]::text[], ARRAY[]::timestamptz[], "
        "ARRAY[]::text[], ARRAY[]::text[])",
        "SELECT * FROM eventstore_append_v2('x', 0, ARRAY[gen_random_uuid()], ARRAY['T'], "
        "ARRAY[1], ARRAY['{}'], ARRAY['{}'], ARRAY[now()], ARRAY[','], NULL, NULL)",
        "UPDATE pairing_view SET phase = 'completed'",
        "DELETE FROM projection_checkpoints",
        "TRUNCATE cohort_view",
        "UPDATE participants SET name = 'x'",
    ],
    ids=["insert", "update", "delete", "move-head", "append", "append-v2", "view", "checkpoint",
         "truncate", "participants"],
)
async def test_auditor_cannot_write(
    store: EventStore, cohort: CohortSim, auditor: asyncpg.Connection, statement: str
) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await auditor.execute(statement)


async def test_audit_tools_work_as_the_auditor(
    store: EventStore, cohort: CohortSim, db_dsn: str, tmp_path: Path, cli_env: None
) -> None:
    pool = await asyncpg.create_pool(db_dsn, server_settings={"role": "sebaya_auditor"})
    assert pool is not None
    try:
        as_auditor = EventStore(pool, build_registry())
        assert await pool.fetchval("SELECT current_user") == "sebaya_auditor"
        history = await pairing_history(as_auditor, "C1.E01.M01.1")
        assert history.match is not None and history.match.run_id == "run-1"
        assert (await verify(as_auditor, cohort="C1")).ok
        await export_bundle(as_auditor, "C1", tmp_path)
        assert verify_bundle(tmp_path).ok
    finally:
        await pool.close()
    # The CLI's --role does the same for every command that reads.
    shown = await sebaya("audit", "verify", "--all", "--role", "sebaya_auditor", "--json")
    assert shown.exit_code == 0, shown.output
    assert output_json(shown)["ok"] is True


async def _events_digest(pool: asyncpg.Pool) -> str:
    return await pool.fetchval(
        "SELECT md5(string_agg(stream_id || version || payload::text || metadata::text "
        "|| prev_hash || hash, ',' ORDER BY stream_id, version)) FROM events")


async def test_erasure_blanks_the_person_and_leaves_the_record(
    store: EventStore, db_pool: asyncpg.Pool, cohort: CohortSim, cli_env: None
) -> None:
    await db_pool.executemany(
        "INSERT INTO participants (employee_id, name, email, timezone) VALUES ($1, $2, $3, "
        "'Asia/Jakarta')",
        [("E01", "Siti Rahmawati", "siti@example.co.id"),
         ("M01", "Budi Santoso", "budi@example.co.id")])
    before = await _events_digest(db_pool)
    heads = await db_pool.fetch("SELECT * FROM streams ORDER BY stream_id")

    result = await erase_person(db_pool, "E01")
    assert result.found and not result.already_erased and result.erased_at is not None
    row = await db_pool.fetchrow("SELECT * FROM participants WHERE employee_id = 'E01'")
    assert (row["name"], row["email"]) == (None, None)
    assert row["erased_at"] == result.erased_at
    other = await db_pool.fetchrow("SELECT * FROM participants WHERE employee_id = 'M01'")
    assert other["name"] == "Budi Santoso"

    assert await _events_digest(db_pool) == before
    assert await db_pool.fetch("SELECT * FROM streams ORDER BY stream_id") == heads
    assert (await verify(store)).ok
    # The timeline still says what E01 did, by id.
    history = await pairing_history(store, "C1.E01.M01.1")
    assert "employee:E01" in {t.actor for t in history.timeline}

    again = await erase_person(db_pool, "E01")
    assert again.already_erased and again.erased_at == result.erased_at
    assert not (await erase_person(db_pool, "E404")).found

    refused = await sebaya("audit", "erase", "M01")
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    assert (await db_pool.fetchval("SELECT name FROM participants WHERE employee_id = 'M01'")
            == "Budi Santoso")
    done = await sebaya("audit", "erase", "M01", "--yes", "--json")
    assert done.exit_code == 0, done.output
    assert output_json(done)["found"] is True
    assert await db_pool.fetchval("SELECT name FROM participants WHERE employee_id = 'M01'") \
        is None
    assert await _events_digest(db_pool) == before
