"""Self-contained audit bundles: export a pairing's or a cohort's streams to files, and check
such a bundle later, anywhere, without a database.

A bundle is a directory with two files:

* ``events.jsonl``: one stored event per line, streams one after the other, each in version
  order. Each line is the canonical JSON (``eventstore.hashing.canonical_json``) of an object
  holding every field the event's hash covers (``event_id``, ``stream_id``, ``version``,
  ``type``, ``schema_version``, ``payload``, ``metadata``) plus ``prev_hash`` and ``hash``,
  and, not covered by the hash and given for information, ``occurred_at``, ``recorded_at``,
  ``tx_id`` and ``global_position``.
* ``manifest.json``: the format, when and what was exported, the SHA-256 of ``events.jsonl``,
  and per stream the event count, first and last version, and the stream's head (version and
  hash) as the ``streams`` table recorded it at export time.

:func:`verify_bundle` recomputes every hash with the store's own pure functions
(``eventstore.hashing``, ``eventstore.chain``): an edited, deleted, inserted or moved line
breaks a chain or its head, and any change at all to the file breaks its digest.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from audit.verify import Finding, cohort_streams
from domain.ids import cohort_stream, pairing_stream
from eventstore import EventStore, Position
from eventstore.chain import StoredEvent, StreamHead, check_stream
from eventstore.hashing import GENESIS_HASH, canonical_json

BUNDLE_FORMAT = "sebaya-audit-bundle"
FORMAT_VERSION = 1
EVENTS_FILE = "events.jsonl"
MANIFEST_FILE = "manifest.json"

HASHING = {
    "algorithm": "sha256",
    "chain": "per stream; version 1 links to the genesis hash, each later version to the "
             "hash of the version before it",
    "genesis_hash": GENESIS_HASH,
    "hashed_object": ["event_id", "metadata", "payload", "prev_hash", "schema_version",
                      "stream_id", "type", "version"],
    "canonical_json": "keys sorted by code point, no whitespace, UTF-8; strings escape only "
                      "\" \\ and control characters; numbers as exact decimals without "
                      "exponent or trailing zeros; see eventstore/hashing.py",
    "hash": "hex(sha256(utf8(canonical_json(hashed_object))))",
}

_LINE_FIELDS = ("stream_id", "version", "event_id", "type", "schema_version", "payload",
                "metadata", "prev_hash", "hash")

_EXPORT_COLUMNS = (
    "stream_id, version, event_id::text AS event_id, type, schema_version, "
    "payload::text AS payload, metadata::text AS metadata, occurred_at, recorded_at, "
    "tx_id, global_position, prev_hash, hash"
)


class BundleStream(BaseModel):
    """One stream in a bundle, as the store described it at export time."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stream_id: str
    events: int
    first_version: int | None
    last_version: int | None
    head_version: int | None
    head_hash: str | None


class Manifest(BaseModel):
    """``manifest.json``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["sebaya-audit-bundle"]
    format_version: int
    created_at: datetime
    subject: dict[str, str]
    events_file: str
    events_sha256: str
    event_count: int
    streams: list[BundleStream]
    hashing: dict[str, Any]


class BundleReport(BaseModel):
    """``sebaya audit verify-bundle``."""

    model_config = ConfigDict(frozen=True)

    path: str
    subject: dict[str, str] | None
    created_at: datetime | None
    streams_checked: int
    events_checked: int
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        return not self.findings


class SubjectNotFound(LookupError):
    """Neither a pairing nor a cohort of that id has any event."""


async def export_bundle(
    store: EventStore,
    subject: str,
    out: Path,
    *,
    kind: Literal["pairing", "cohort"] | None = None,
    now: datetime | None = None,
) -> Manifest:
    """Write the bundle of pairing or cohort ``subject`` into directory ``out`` (created if
    missing; existing bundle files are replaced). ``kind`` is guessed from which stream
    exists when not given."""
    if kind is None:
        if await store.stream_version(pairing_stream(subject)):
            kind = "pairing"
        elif await store.stream_version(cohort_stream(subject)) or \
                await store.list_streams(pairing_stream(f"{subject}.")):
            kind = "cohort"
        else:
            raise SubjectNotFound(f"no pairing or cohort {subject!r} in the store")
    if kind == "pairing":
        streams = [pairing_stream(subject)]
    else:
        streams, _ = await cohort_streams(store, subject)
    async with store.pool.acquire() as conn:
        # One snapshot for heads and events, so a concurrent append cannot make the bundle
        # look truncated.
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            heads = {row["stream_id"]: row for row in await conn.fetch(
                "SELECT stream_id, version, head_hash FROM streams "
                "WHERE stream_id = ANY($1::text[])", streams)}
            rows = await conn.fetch(
                f"SELECT {_EXPORT_COLUMNS} FROM events WHERE stream_id = ANY($1::text[])",
                streams)
    by_stream: dict[str, list[Any]] = {s: [] for s in streams}
    for row in rows:
        by_stream[row["stream_id"]].append(row)
    # File writing is blocking: off the event loop.
    return await asyncio.to_thread(_write_bundle, out, kind, subject, streams, by_stream,
                                   heads, now or datetime.now(UTC))


def _write_bundle(out: Path, kind: str, subject: str, streams: list[str],
                  by_stream: dict[str, list[Any]], heads: dict[str, Any],
                  created_at: datetime) -> Manifest:
    out.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    manifest_streams = []
    count = 0
    with (out / EVENTS_FILE).open("wb") as handle:
        for stream_id in streams:
            stream_rows = sorted(by_stream[stream_id], key=lambda r: r["version"])
            for row in stream_rows:
                line = canonical_json({
                    "stream_id": row["stream_id"],
                    "version": row["version"],
                    "event_id": row["event_id"],
                    "type": row["type"],
                    "schema_version": row["schema_version"],
                    "payload": json.loads(row["payload"]),
                    "metadata": json.loads(row["metadata"]),
                    "prev_hash": row["prev_hash"],
                    "hash": row["hash"],
                    "occurred_at": row["occurred_at"].astimezone(UTC).isoformat(),
                    "recorded_at": row["recorded_at"].astimezone(UTC).isoformat(),
                    "tx_id": row["tx_id"],
                    "global_position": row["global_position"],
                }).encode("utf-8") + b"\n"
                handle.write(line)
                digest.update(line)
                count += 1
            head = heads.get(stream_id)
            manifest_streams.append(BundleStream(
                stream_id=stream_id, events=len(stream_rows),
                first_version=stream_rows[0]["version"] if stream_rows else None,
                last_version=stream_rows[-1]["version"] if stream_rows else None,
                head_version=head["version"] if head else None,
                head_hash=head["head_hash"] if head else None,
            ))
    manifest = Manifest(
        format=BUNDLE_FORMAT, format_version=FORMAT_VERSION, created_at=created_at,
        subject={"kind": kind, "id": subject}, events_file=EVENTS_FILE,
        events_sha256=digest.hexdigest(), event_count=count, streams=manifest_streams,
        hashing=HASHING,
    )
    (out / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2) + "\n",
                                     encoding="utf-8")
    return manifest


def verify_bundle(path: Path) -> BundleReport:
    """Check a bundle directory offline: the file digest, every line's hash and link, the
    version sequence and order, and each stream's head and counts against the manifest."""
    findings: list[Finding] = []

    def bundle_problem(kind: str, detail: str, stream: str | None = None,
                       version: int | None = None) -> None:
        findings.append(Finding(stream_id=stream, version=version, kind=kind, detail=detail))

    try:
        manifest = Manifest.model_validate_json((path / MANIFEST_FILE).read_bytes())
    except FileNotFoundError:
        bundle_problem("manifest_missing", f"{path / MANIFEST_FILE} does not exist")
        return BundleReport(path=str(path), subject=None, created_at=None, streams_checked=0,
                            events_checked=0, findings=findings)
    except ValidationError as exc:
        bundle_problem("manifest_invalid", f"manifest.json is not a valid bundle manifest: "
                       f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}")
        return BundleReport(path=str(path), subject=None, created_at=None, streams_checked=0,
                            events_checked=0, findings=findings)
    if manifest.format_version != FORMAT_VERSION:
        bundle_problem("manifest_invalid", f"format version {manifest.format_version} is not "
                       f"{FORMAT_VERSION}: use the Sebaya release that wrote the bundle")
    events_path = path / manifest.events_file
    try:
        data = events_path.read_bytes()
    except FileNotFoundError:
        bundle_problem("events_missing", f"{events_path} does not exist")
        data = b""
    actual = hashlib.sha256(data).hexdigest()
    if actual != manifest.events_sha256:
        bundle_problem("file_digest_mismatch",
                       f"{manifest.events_file} has SHA-256 {actual[:16]}…, the manifest says "
                       f"{manifest.events_sha256[:16]}…: the file was changed after export")

    # Lines in file order, grouped by stream; a stream must be one contiguous block.
    streams: dict[str, list[StoredEvent]] = {}
    order: list[str] = []
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            line = json.loads(raw)
            if not isinstance(line, dict) or any(f not in line for f in _LINE_FIELDS):
                raise ValueError("missing fields")
            row = StoredEvent(
                stream_id=line["stream_id"], version=line["version"],
                event_id=line["event_id"], event_type=line["type"],
                schema_version=line["schema_version"], payload=line["payload"],
                metadata=line["metadata"], prev_hash=line["prev_hash"], hash=line["hash"],
                occurred_at=_instant(line.get("occurred_at")),
                position=(Position(line["tx_id"], line["global_position"])
                          if "tx_id" in line and "global_position" in line else None),
            )
        except (ValueError, TypeError) as exc:
            bundle_problem("malformed_line", f"line {number} is not an exported event: {exc}")
            continue
        if row.stream_id not in streams:
            streams[row.stream_id] = []
            order.append(row.stream_id)
        elif order[-1] != row.stream_id:
            bundle_problem("line_order", f"line {number} returns to {row.stream_id} after "
                           f"{order[-1]}: lines were moved", row.stream_id, row.version)
        streams[row.stream_id].append(row)

    described = {s.stream_id: s for s in manifest.streams}
    events_checked = 0
    for stream_id in order:
        rows = streams[stream_id]
        events_checked += len(rows)
        info = described.get(stream_id)
        if info is None:
            bundle_problem("unexpected_stream", "the file holds a stream the manifest does not "
                           "list", stream_id)
            head = None
        else:
            head = (StreamHead(info.head_version, info.head_hash)
                    if info.head_version is not None and info.head_hash is not None else None)
        # File order, not sorted: a moved line must show as a broken sequence.
        for problem in check_stream(stream_id, rows, head):
            bundle_problem(problem.kind, problem.detail, problem.stream_id, problem.version)
        if info is not None and info.events != len(rows):
            bundle_problem("count_mismatch", f"the manifest lists {info.events} event(s), the "
                           f"file holds {len(rows)}", stream_id)
    for stream_id, info in described.items():
        if stream_id not in streams and info.events:
            bundle_problem("stream_missing", f"the manifest lists {info.events} event(s), the "
                           "file holds none", stream_id)
    if events_checked != manifest.event_count:
        bundle_problem("count_mismatch", f"the manifest counts {manifest.event_count} "
                       f"event(s), the file holds {events_checked}")
    return BundleReport(path=str(path), subject=manifest.subject, created_at=manifest.created_at,
                        streams_checked=len(order), events_checked=events_checked,
                        findings=findings)


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else None
