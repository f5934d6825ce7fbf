"""Tampering done as a database superuser (append-only triggers off) is found by ``verify``,
by stream and version; an exported bundle is checked offline and any edit to it is found."""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from audit.bundle import export_bundle, verify_bundle
from audit.verify import verify
from eventstore import EventStore
from eventstore.hashing import canonical_json, event_hash
from sebaya.samples.lifecycles import CohortSim
from tests.audit.cli import output_json, sebaya
from tests.audit.conftest import attacker

TARGET = "C1.E02.M02.1"
STREAM = f"pairing-{TARGET}"

Attack = Callable[[asyncpg.Connection], Awaitable[object]]


async def edit(conn: asyncpg.Connection) -> None:
    # Turn a missed meeting into a held one.
    version = await conn.fetchval("SELECT min(version) FROM events WHERE stream_id = $1 "
                                  "AND type = 'MeetingMissed'", STREAM)
    await conn.execute("UPDATE events SET payload = payload || '{\"consecutive_missed\": 1}', "
                       "metadata = metadata || '{\"actor\": \"employee:M02\"}' "
                       "WHERE stream_id = $1 AND version = $2", STREAM, version)


async def delete(conn: asyncpg.Connection) -> None:
    await conn.execute("DELETE FROM events WHERE stream_id = $1 AND version = 10", STREAM)


async def insert(conn: asyncpg.Connection) -> None:
    # A forged row that chains correctly onto version 9, pushed in as a new version 10 with
    # every later version renumbered up by one (as if it had always been there).
    await conn.execute("UPDATE events SET version = version + 1000 "
                       "WHERE stream_id = $1 AND version >= 10", STREAM)
    await conn.execute("UPDATE events SET version = version - 999 "
                       "WHERE stream_id = $1 AND version >= 1010", STREAM)
    prev = await conn.fetchval("SELECT hash FROM events WHERE stream_id = $1 AND version = 9",
                               STREAM)
    payload = {"consecutive_missed": 1}
    metadata = {"actor": "ops:mallory", "occurred_at": "2025-03-20T03:00:00.000000Z"}
    event_id = uuid.uuid4()
    digest = event_hash(event_id=event_id, stream_id=STREAM, version=10,
                        event_type="PairingNudged", schema_version=1, payload=payload,
                        metadata=metadata, prev_hash=prev)
    await conn.execute(
        "INSERT INTO events (stream_id, version, event_id, type, schema_version, payload, "
        "metadata, occurred_at, prev_hash, hash) VALUES ($1, 10, $2, 'PairingNudged', 1, "
        "$3::jsonb, $4::jsonb, '2025-03-20T03:00:00Z', $5, $6)",
        STREAM, event_id, canonical_json(payload), canonical_json(metadata), prev, digest)


async def reorder(conn: asyncpg.Connection) -> None:
    # Swap versions 11 and 12 (through a spare number: the primary key is checked per row).
    await conn.execute("UPDATE events SET version = 5000 WHERE stream_id = $1 AND version = 11",
                       STREAM)
    await conn.execute("UPDATE events SET version = 11 WHERE stream_id = $1 AND version = 12",
                       STREAM)
    await conn.execute("UPDATE events SET version = 12 WHERE stream_id = $1 AND version = 5000",
                       STREAM)


@pytest.mark.parametrize(
    ("attack", "first_broken_version"),
    # (A deleted version 10 is reported at 11: "expected version 10, found 11".)
    [(edit, None), (delete, 11), (insert, 11), (reorder, 11)],
    ids=["edit", "delete", "insert", "reorder"],
)
async def test_verify_names_the_broken_stream_and_version(
    store: EventStore, db_pool: asyncpg.Pool, cohort: CohortSim, cli_env: None,
    attack: Attack, first_broken_version: int | None,
) -> None:
    clean = await verify(store, cohort="C1")
    assert clean.ok, clean.findings
    assert clean.streams_checked == 7  # the cohort's stream and its six pairings
    assert (await verify(store)).ok

    async with attacker(db_pool) as conn:
        await attack(conn)

    for result in (await verify(store, cohort="C1"), await verify(store, stream=STREAM),
                   await verify(store)):
        assert not result.ok
        assert result.broken_streams() == [STREAM]
        versions = sorted(f.version for f in result.findings if f.version is not None)
        if first_broken_version is not None:
            assert versions[0] == first_broken_version
    assert (await verify(store, stream="pairing-C1.E01.M01.1")).ok

    shown = await sebaya("audit", "verify", "--cohort", "C1")
    assert shown.exit_code == 1
    assert f"BROKEN {STREAM} v" in shown.stdout
    document = output_json(await sebaya("audit", "verify", "--all", "--json"))
    assert document["ok"] is False and document["broken_streams"] == [STREAM]


async def test_a_deleted_stream_is_found_through_the_cohort(
    store: EventStore, db_pool: asyncpg.Pool, cohort: CohortSim, cli_env: None
) -> None:
    async with attacker(db_pool) as conn:
        await conn.execute("DELETE FROM events WHERE stream_id = $1", STREAM)
        await conn.execute("DELETE FROM streams WHERE stream_id = $1", STREAM)
    assert (await verify(store)).ok  # no chain is broken: the whole stream is gone
    result = await verify(store, cohort="C1")
    assert [(f.stream_id, f.kind) for f in result.findings] == [(STREAM, "stream_missing")]
    shown = await sebaya("audit", "verify", "--stream", STREAM)
    assert shown.exit_code == 1 and "stream_missing" in shown.stdout


# --- bundles -----------------------------------------------------------------------------------


def _lines(bundle: Path) -> list[bytes]:
    return (bundle / "events.jsonl").read_bytes().splitlines(keepends=True)


def _write(bundle: Path, lines: list[bytes]) -> None:
    (bundle / "events.jsonl").write_bytes(b"".join(lines))


async def test_export_and_verify_a_pairing_and_a_cohort_offline(
    store: EventStore, cohort: CohortSim, tmp_path: Path
) -> None:
    manifest = await export_bundle(store, TARGET, tmp_path / "pairing")
    assert manifest.subject == {"kind": "pairing", "id": TARGET}
    (stream,) = manifest.streams
    assert stream.stream_id == STREAM and stream.events == manifest.event_count == 91
    assert (stream.first_version, stream.last_version, stream.head_version) == (1, 91, 91)
    first = json.loads(_lines(tmp_path / "pairing")[0])
    assert first["version"] == 1 and first["type"] == "PairingMatched"
    assert set(first) >= {"event_id", "stream_id", "version", "type", "schema_version",
                          "payload", "metadata", "prev_hash", "hash"}
    report = verify_bundle(tmp_path / "pairing")
    assert report.ok, report.findings
    assert (report.streams_checked, report.events_checked) == (1, 91)

    whole = await export_bundle(store, "C1", tmp_path / "cohort")
    assert whole.subject["kind"] == "cohort" and len(whole.streams) == 7
    assert verify_bundle(tmp_path / "cohort").ok


def _edit_line(lines: list[bytes]) -> None:
    line = json.loads(lines[5])
    line["metadata"]["actor"] = "ops:mallory"
    lines[5] = canonical_json(line).encode() + b"\n"


@pytest.mark.parametrize(
    ("change", "kinds"),
    [
        (_edit_line, {"file_digest_mismatch", "hash_mismatch"}),
        (lambda lines: lines.pop(7), {"file_digest_mismatch", "version_gap", "count_mismatch",
                                      "prev_hash_mismatch"}),
        (lambda lines: lines.pop(), {"file_digest_mismatch", "head_mismatch",
                                     "count_mismatch"}),
        (lambda lines: lines.insert(4, lines[3]), {"file_digest_mismatch", "version_gap",
                                                   "prev_hash_mismatch", "position_order",
                                                   "count_mismatch"}),
        (lambda lines: lines.__setitem__(slice(8, 10), [lines[9], lines[8]]),
         {"file_digest_mismatch", "version_gap", "prev_hash_mismatch", "position_order"}),
    ],
    ids=["edited", "deleted", "truncated", "inserted", "reordered"],
)
async def test_verify_bundle_finds_any_change_to_the_file(
    store: EventStore, cohort: CohortSim, tmp_path: Path,
    change: Callable[[list[bytes]], object], kinds: set[str],
) -> None:
    await export_bundle(store, TARGET, tmp_path)
    lines = _lines(tmp_path)
    change(lines)
    _write(tmp_path, lines)
    report = verify_bundle(tmp_path)
    assert not report.ok
    assert {f.kind for f in report.findings} == kinds, report.findings


async def test_verify_bundle_finds_a_consistent_forgery_through_the_manifest(
    store: EventStore, cohort: CohortSim, tmp_path: Path, cli_env: None
) -> None:
    """An attacker who edits a line, re-chains every later line and fixes the file digest
    still has to move the exported head, and the auditor holds the original manifest."""
    exported = await sebaya("audit", "export", TARGET, "--out", str(tmp_path / "b"))
    assert exported.exit_code == 0, exported.output
    original = (tmp_path / "b" / "manifest.json").read_text()
    shutil.copytree(tmp_path / "b", tmp_path / "forged")
    lines = [json.loads(line) for line in _lines(tmp_path / "forged")]
    lines[3]["metadata"]["actor"] = "ops:mallory"
    prev = lines[2]["hash"]
    for line in lines[3:]:
        line["prev_hash"] = prev
        line["hash"] = prev = event_hash(
            event_id=line["event_id"], stream_id=line["stream_id"], version=line["version"],
            event_type=line["type"], schema_version=line["schema_version"],
            payload=line["payload"], metadata=line["metadata"], prev_hash=line["prev_hash"])
    _write(tmp_path / "forged", [canonical_json(line).encode() + b"\n" for line in lines])
    report = verify_bundle(tmp_path / "forged")
    assert {f.kind for f in report.findings} == {"file_digest_mismatch", "head_mismatch"}

    manifest = json.loads(original)
    manifest["events_sha256"] = hashlib.sha256(
        (tmp_path / "forged" / "events.jsonl").read_bytes()).hexdigest()
    manifest["streams"][0]["head_hash"] = prev
    (tmp_path / "forged" / "manifest.json").write_text(json.dumps(manifest))
    # Internally consistent now; only the manifest kept apart tells: its digest differs.
    assert verify_bundle(tmp_path / "forged").ok
    assert json.loads(original)["events_sha256"] != manifest["events_sha256"]

    # A manifest edited on its own is caught.
    tampered = json.loads(original)
    tampered["streams"][0]["events"] = 90
    (tmp_path / "b" / "manifest.json").write_text(json.dumps(tampered))
    shown = await sebaya("audit", "verify-bundle", str(tmp_path / "b"))
    assert shown.exit_code == 1 and "count_mismatch" in shown.stdout
    (tmp_path / "b" / "manifest.json").write_text(original)
    ok = await sebaya("audit", "verify-bundle", str(tmp_path / "b"), "--json")
    assert ok.exit_code == 0 and output_json(ok)["ok"] is True


async def test_export_of_a_tampered_store_does_not_verify(
    store: EventStore, db_pool: asyncpg.Pool, cohort: CohortSim, tmp_path: Path
) -> None:
    async with attacker(db_pool) as conn:
        await edit(conn)
    await export_bundle(store, TARGET, tmp_path)
    kinds = {f.kind for f in verify_bundle(tmp_path).findings}
    assert kinds == {"hash_mismatch"}


async def test_history_of_a_damaged_stream_points_to_verify(
    store: EventStore, db_pool: asyncpg.Pool, cohort: CohortSim, cli_env: None
) -> None:
    async with attacker(db_pool) as conn:
        await conn.execute("UPDATE events SET metadata = metadata - 'actor' "
                           "WHERE stream_id = $1 AND version = 3", STREAM)
    shown = await sebaya("audit", "history", TARGET)
    assert shown.exit_code == 1
    assert "sebaya audit verify" in shown.stderr
    found = await verify(store, stream=STREAM)
    assert [(f.version, f.kind) for f in found.findings] == [(3, "hash_mismatch")]
