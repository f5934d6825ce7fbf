"""Anchors catch what hash chains cannot: a superuser who rewrites a stream and recomputes
every hash with the project's own hashing code. ``audit verify`` then says intact; ``audit
verify --against ANCHOR`` names the stream, and only it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import asyncpg
import pytest

from audit.anchor import (
    AnchoredHead,
    AnchorError,
    DirectorySink,
    merkle_root,
    verify_anchor_chain,
    write_anchor,
)
from eventstore import EventStore
from eventstore.hashing import GENESIS_HASH, canonical_json, event_hash
from sebaya.samples.lifecycles import CohortSim
from tests.audit.cli import output_json, sebaya
from tests.audit.conftest import attacker

TARGET = "C1.E02.M02.1"
STREAM = f"pairing-{TARGET}"


async def rewrite_and_rehash(conn: asyncpg.Connection, stream_id: str) -> int:
    """The attack: turn every missed meeting of ``stream_id`` into a held one, then recompute
    the whole chain and the stream's head exactly as the store would have."""
    rows = await conn.fetch("SELECT version, event_id, type, schema_version, payload::text, "
                            "metadata::text FROM events WHERE stream_id = $1 ORDER BY version",
                            stream_id)
    prev = GENESIS_HASH
    edited = 0
    for row in rows:
        payload = json.loads(row["payload"])
        if row["type"] == "MeetingMissed":
            payload["consecutive_missed"] = 0
            edited += 1
        digest = event_hash(event_id=row["event_id"], stream_id=stream_id,
                            version=row["version"], event_type=row["type"],
                            schema_version=row["schema_version"], payload=payload,
                            metadata=json.loads(row["metadata"]), prev_hash=prev)
        await conn.execute("UPDATE events SET payload = $3::jsonb, prev_hash = $4, hash = $5 "
                           "WHERE stream_id = $1 AND version = $2", stream_id, row["version"],
                           canonical_json(payload), prev, digest)
        prev = digest
    await conn.execute("UPDATE streams SET head_hash = $2 WHERE stream_id = $1", stream_id, prev)
    return edited


def only_anchor(directory: Path) -> Path:
    (path,) = sorted(directory.glob("anchor-*.json"))
    return path


async def test_a_rehashed_rewrite_passes_verify_but_not_the_anchor(
    store: EventStore, db_pool: asyncpg.Pool, cohort: CohortSim, cli_env: None, tmp_path: Path
) -> None:
    anchors = tmp_path / "anchors"
    made = await sebaya("audit", "anchor", "--dir", str(anchors), "--json")
    assert made.exit_code == 0, made.output
    written = output_json(made)
    assert written["written"] and written["sequence"] == 1 and written["previous"] is None
    assert written["stream_count"] == 7  # the cohort's stream and its six pairings
    anchor = only_anchor(anchors)
    assert os.stat(anchor).st_mode & 0o222 == 0  # written read-only

    clean = await sebaya("audit", "verify", "--against", str(anchor))
    assert clean.exit_code == 0, clean.output
    assert "extends its anchored head" in clean.stdout

    async with attacker(db_pool) as conn:
        assert await rewrite_and_rehash(conn, STREAM) > 0

    plain = await sebaya("audit", "verify", "--all", "--json")
    assert plain.exit_code == 0, plain.output  # the chains are consistent again
    assert output_json(plain)["ok"] is True

    caught = await sebaya("audit", "verify", "--against", str(anchor), "--json")
    assert caught.exit_code == 1, caught.output
    document = output_json(caught)
    assert document["broken_streams"] == [STREAM]
    assert [f["kind"] for f in document["findings"]] == ["anchor_mismatch"]
    assert document["anchor"]["streams_compared"] == 7
    text = await sebaya("audit", "verify", "--cohort", "C1", "--against", str(anchor))
    assert text.exit_code == 1 and f"BROKEN {STREAM} v" in text.stdout
    other = await sebaya("audit", "verify", "--stream", "pairing-C1.E01.M01.1",
                         "--against", str(anchor))
    assert other.exit_code == 0, other.output

    # The next anchor refuses to launder the rewrite into the chain of anchors.
    refused = await sebaya("audit", "anchor", "--dir", str(anchors))
    assert refused.exit_code == 1 and STREAM in refused.stdout
    assert only_anchor(anchors) == anchor


async def test_shorter_and_missing_streams_are_named(
    store: EventStore, db_pool: asyncpg.Pool, cohort: CohortSim, cli_env: None, tmp_path: Path
) -> None:
    sink = DirectorySink(tmp_path)
    assert (await write_anchor(store, sink)).written
    shorter, gone = STREAM, "pairing-C1.E01.M01.1"
    async with attacker(db_pool) as conn:
        # Cut the stream back to version 40 with a consistent head: the chain still verifies.
        await conn.execute("DELETE FROM events WHERE stream_id = $1 AND version > 40", shorter)
        await conn.execute("UPDATE streams SET version = 40, head_hash = (SELECT hash FROM "
                           "events WHERE stream_id = $1 AND version = 40) WHERE stream_id = $1",
                           shorter)
        await conn.execute("DELETE FROM events WHERE stream_id = $1", gone)
        await conn.execute("DELETE FROM streams WHERE stream_id = $1", gone)
    assert output_json(await sebaya("audit", "verify", "--all", "--json"))["ok"] is True
    result = await sebaya("audit", "verify", "--against", str(only_anchor(tmp_path)), "--json")
    assert result.exit_code == 1
    kinds = {(f["stream_id"], f["kind"]) for f in output_json(result)["findings"]}
    assert kinds == {(shorter, "anchor_stream_shorter"), (gone, "anchor_stream_missing")}
    # Scoped to the cohort, the vanished stream is still compared with its anchored head.
    scoped = await sebaya("audit", "verify", "--cohort", "C1", "--against",
                          str(only_anchor(tmp_path)), "--json")
    kinds = {(f["stream_id"], f["kind"]) for f in output_json(scoped)["findings"]}
    assert (gone, "anchor_stream_missing") in kinds and (gone, "stream_missing") in kinds


async def test_appends_after_the_anchor_still_extend_it_and_anchors_chain(
    store: EventStore, db_pool: asyncpg.Pool, cohort: CohortSim, cli_env: None, tmp_path: Path
) -> None:
    sink = DirectorySink(tmp_path)
    first = await write_anchor(store, sink)
    from sebaya.samples.lifecycles import append_decisions, sample_cohort

    # More history: a second cohort and its pairings, appended normally.
    await append_decisions(store, sample_cohort("C2").all_decisions())
    result = await sebaya("audit", "verify", "--against", str(tmp_path / str(first.name)))
    assert result.exit_code == 0, result.output
    second = await write_anchor(store, sink)
    assert second.written and second.previous is not None
    assert second.previous.sha256 == first.sha256 and second.stream_count == 14
    assert second.streams_verified == 7  # only the new streams' chains were recomputed

    chain = await sebaya("audit", "anchors", "verify", "--dir", str(tmp_path), "--json")
    assert chain.exit_code == 0, chain.output
    assert output_json(chain)["anchors_checked"] == 2

    # Editing the first anchor (even with a recomputed root) breaks the link from the second.
    path = tmp_path / str(first.name)
    doc = json.loads(path.read_text())
    doc["streams"] = [h for h in doc["streams"] if h["stream_id"] != STREAM]
    doc["stream_count"] -= 1
    doc["merkle_root"] = merkle_root([AnchoredHead(**h) for h in doc["streams"]])
    path.chmod(0o644)
    path.write_text(canonical_json(doc) + "\n")
    report = verify_anchor_chain(sink)
    assert [f.kind for f in report.findings] == ["anchor_chain_broken"]

    # An edit that leaves the root stale is found in the anchor itself.
    doc["streams"][0]["head_hash"] = "f" * 64
    path.write_text(canonical_json(doc) + "\n")
    broken = await sebaya("audit", "verify", "--against", str(path), "--json")
    assert broken.exit_code == 1
    assert "anchor_damaged" in {f["kind"] for f in output_json(broken)["findings"]}
    chain = await sebaya("audit", "anchors", "verify", "--dir", str(tmp_path))
    assert chain.exit_code == 1 and "anchor_damaged" in chain.stdout

    # Removing the oldest anchors leaves the first remaining one pointing at nothing.
    path.unlink()
    assert [f.kind for f in verify_anchor_chain(sink).findings] == ["anchor_chain_broken"]


def test_an_anchor_is_never_overwritten(tmp_path: Path) -> None:
    sink = DirectorySink(tmp_path / "a")
    name = "anchor-00000001-20261202T010000Z.json"
    sink.create(name, b"first\n")
    with pytest.raises(AnchorError, match="already exists"):
        sink.create(name, b"second\n")
    assert sink.read(name) == b"first\n"
    assert sink.names() == [name]  # no temp file left behind
    assert [p.name for p in (tmp_path / "a").iterdir()] == [name]
