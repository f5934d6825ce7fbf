"""Append throughput of the event store against bare INSERTs of the same rows.

For 1- and 10-event appends with 1 and 16 concurrent writers (each writer on its own streams),
the same realistic events go through ``EventStore.append`` (registry validation, canonical JSON,
hash chain, stream lock, optimistic concurrency) and through a bare asyncpg INSERT of the same
rows into a table of the same shape and indexes (``LIKE events INCLUDING ALL``), one
transaction per append. Both run in a scratch database created and dropped here, in alternating
slices so drift (table growth, autovacuum, checkpoints) hits both equally, and the median
slice of each side counts. Then reads of one
100-event stream. The last line is one JSON object for the 16-writer, 10-event case.

    python bench/eventstore.py  [--slice-seconds 1] [--slices 6]

Connection: ``SEBAYA_DATABASE_URL`` or postgresql://postgres@127.0.0.1:5432/postgres.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

# This script shares its name with the package it measures, and Python puts the script's own
# directory first on sys.path: drop it, or `import eventstore` would import this file.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import asyncpg  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field  # noqa: E402

from eventstore import (  # noqa: E402
    EventMetadata,
    EventRegistry,
    EventStore,
    NewEvent,
    migrate,
)

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
T0 = datetime(2025, 3, 3, 2, 0, tzinfo=UTC)

BASELINE_INSERT = """
INSERT INTO bench_baseline_events (stream_id, version, event_id, type, schema_version,
                                   payload, metadata, occurred_at, prev_hash, hash)
SELECT $1, e.version, e.event_id, e.type, e.schema_version, e.payload::jsonb,
       e.metadata::jsonb, e.occurred_at, e.prev_hash, e.hash
FROM unnest($2::bigint[], $3::uuid[], $4::text[], $5::integer[], $6::text[], $7::text[],
            $8::timestamptz[], $9::text[], $10::text[])
    AS e(version, event_id, type, schema_version, payload, metadata, occurred_at,
         prev_hash, hash)
"""
ZERO_HASH = "0" * 64


class Attendee(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    employee_id: str
    role: str


class MeetingHeld(BaseModel):
    """Shaped like the domain's event, defined here so the bench depends on the store only."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    event_type: ClassVar[str] = "MeetingHeld"
    schema_version: ClassVar[int] = 1

    pairing_id: str
    meeting_number: int = Field(ge=1)
    held_at: datetime
    duration_minutes: int = Field(ge=1, le=480)
    location: str
    topics: list[str]
    attendees: list[Attendee]
    notes: str
    follow_ups: list[str]
    mentee_rating: float | None = None


def meeting_payload(pairing: str, number: int) -> dict[str, Any]:
    return {
        "pairing_id": pairing,
        "meeting_number": number,
        "held_at": (T0 + timedelta(weeks=number)).isoformat().replace("+00:00", "Z"),
        "duration_minutes": 60,
        "location": "video",
        "topics": ["career growth", "stakeholder management"],
        "attendees": [{"employee_id": "E0012", "role": "mentor"},
                      {"employee_id": "E0345", "role": "mentee"}],
        "notes": "Reviewed the draft goals for the quarter; agreed on a first stretch "
                 "assignment and on how to ask for feedback after design reviews.",
        "follow_ups": ["Draft Q3 goals", "Shadow a design review"],
        "mentee_rating": 4.5,
    }


def new_events(pairing: str, first_number: int, count: int) -> list[NewEvent]:
    return [
        NewEvent(
            event_id=uuid.uuid4(),
            type="MeetingHeld",
            payload=meeting_payload(pairing, first_number + i),
            metadata=EventMetadata(
                actor="employee:E0012",
                occurred_at=T0 + timedelta(weeks=first_number + i),
                workflow_id=f"pairing-{pairing}",
                run_id="3f2c9a4e-8d1b-4c55-9a7e-0c1d2e3f4a5b",
                correlation_id="C2025-01",
            ),
        )
        for i in range(count)
    ]


# --- the two writers ----------------------------------------------------------------------

Writer = Callable[[int, int, Callable[[], bool]], Awaitable[int]]


def ours_writer(store: EventStore, tag: str) -> Writer:
    async def run(writer: int, per_append: int, keep_going: Callable[[], bool]) -> int:
        streams = [f"pairing-{tag}-{writer}-{i}" for i in range(4)]
        versions = dict.fromkeys(streams, 0)
        written = 0
        while keep_going():
            stream = streams[written % len(streams)]
            events = new_events(stream, versions[stream] + 1, per_append)
            await store.append(stream, versions[stream], events)
            versions[stream] += per_append
            written += per_append
        return written

    return run


def baseline_writer(pool: asyncpg.Pool, tag: str) -> Writer:
    async def run(writer: int, per_append: int, keep_going: Callable[[], bool]) -> int:
        streams = [f"pairing-{tag}-{writer}-{i}" for i in range(4)]
        versions = dict.fromkeys(streams, 0)
        written = 0
        while keep_going():
            stream = streams[written % len(streams)]
            first = versions[stream] + 1
            events = new_events(stream, first, per_append)
            # What any writer must do for a bare insert: serialise payload and metadata.
            await pool.execute(
                BASELINE_INSERT,
                stream,
                list(range(first, first + per_append)),
                [e.event_id for e in events],
                [e.type for e in events],
                [e.schema_version for e in events],
                [json.dumps(e.payload) for e in events],
                [e.metadata.model_dump_json(exclude_none=True) for e in events],
                [e.metadata.occurred_at for e in events],
                [ZERO_HASH] * per_append,
                [ZERO_HASH] * per_append,
            )
            versions[stream] += per_append
            written += per_append
        return written

    return run


async def run_slice(write: Writer, writers: int, per_append: int, seconds: float) -> tuple[int,
                                                                                           float]:
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    counts = await asyncio.gather(
        *(write(w, per_append, lambda: time.perf_counter() < deadline) for w in range(writers))
    )
    return sum(counts), time.perf_counter() - started


async def measure(sides: dict[str, Callable[[str], Writer]], writers: int, per_append: int,
                  slice_seconds: float, slices: int) -> dict[str, float]:
    """Median events/s of each side over alternating slices. The order flips every slice and
    the median discards the slices hit hardest by drift or by other load on the machine
    (table growth, autovacuum, checkpoints, neighbours)."""
    rates: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for s in range(slices):
        for name in names if s % 2 == 0 else names[::-1]:
            tag = f"{name.replace(' ', '').replace(',', '')}-{writers}-{per_append}-{s}"
            count, elapsed = await run_slice(sides[name](tag), writers, per_append,
                                             slice_seconds)
            rates[name].append(count / elapsed)
    return {name: statistics.median(values) for name, values in rates.items()}


# --- driver -------------------------------------------------------------------------------


def with_database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path="/" + database))


async def main(slice_seconds: float, slices: int) -> None:
    server_dsn = os.environ.get("SEBAYA_DATABASE_URL", DEFAULT_DSN)
    scratch = f"sebaya_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{scratch}"')
    finally:
        await admin.close()
    try:
        await bench(with_database(server_dsn, scratch), slice_seconds, slices)
    finally:
        admin = await asyncpg.connect(server_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        finally:
            await admin.close()


async def bench(dsn: str, slice_seconds: float, slices: int) -> None:
    await migrate(dsn)
    pool = await asyncpg.create_pool(dsn, min_size=17, max_size=17)
    assert pool is not None
    try:
        # Same columns, defaults, identity, constraints and indexes as events; no triggers
        # (the store's fire on UPDATE/DELETE/TRUNCATE only, never on insert).
        await pool.execute("CREATE TABLE bench_baseline_events (LIKE events INCLUDING ALL)")
        registry = EventRegistry()
        registry.register(MeetingHeld)
        store = EventStore(pool, registry)
        sample = new_events("warmup", 1, 1)[0]
        payload_bytes = len(json.dumps(sample.payload, separators=(",", ":")).encode())

        print(f"event store append benchmark: median of {slices} alternating slices of "
              f"{slice_seconds:g}s per side and case, payload ~{payload_bytes} bytes, PostgreSQL "
              f"{await pool.fetchval('SHOW server_version')}, {os.cpu_count()} CPUs")
        # Warm up connections, prepared statements and caches on both sides.
        await run_slice(ours_writer(store, "warm"), 16, 10, 1.0)
        await run_slice(baseline_writer(pool, "warm"), 16, 10, 1.0)

        untyped = EventStore(pool)  # the same store without registry validation
        sides: dict[str, Callable[[str], Writer]] = {
            "ours": lambda tag: ours_writer(store, tag),
            "baseline": lambda tag: baseline_writer(pool, tag),
        }
        rows: list[tuple[str, float, float]] = []
        headline: tuple[float, float] | None = None
        for per_append in (1, 10):
            for writers in (1, 16):
                case = f"{writers:>2} writer(s) x {per_append:>2} event(s)/append"
                if (writers, per_append) == (16, 10):
                    sides["ours, no registry"] = lambda tag: ours_writer(untyped, tag)
                rates = await measure(sides, writers, per_append, slice_seconds, slices)
                rows.append((case, rates["ours"], rates["baseline"]))
                if (writers, per_append) == (16, 10):
                    headline = (rates["ours"], rates["baseline"])
                    rows.append((f"{case} (no registry)", rates["ours, no registry"],
                                 rates["baseline"]))

        print()
        print(f"{'case':<48}{'ours ev/s':>11}{'baseline ev/s':>15}{'ratio':>7}")
        for case, ours, baseline in rows:
            print(f"{case:<48}{ours:>11.0f}{baseline:>15.0f}{ours / baseline:>7.2f}")

        stream = "pairing-read-100"
        await store.append(stream, 0, new_events(stream, 1, 50))
        await store.append(stream, 50, new_events(stream, 51, 50))
        for _ in range(20):
            await store.read_stream(stream)
        timings = []
        for _ in range(200):
            started = time.perf_counter()
            events = await store.read_stream(stream)
            timings.append((time.perf_counter() - started) * 1000)
        assert len(events) == 100
        timings.sort()
        cuts = statistics.quantiles(timings, n=100)
        p50, p99 = cuts[49], cuts[98]
        print()
        print(f"read_stream of a 100-event stream, 200 reads: p50 {p50:.2f} ms, p99 {p99:.2f} ms")

        verified = await store.verify()
        print(f"verify(): {verified.events_checked} events in {verified.streams_checked} "
              f"streams, ok={verified.ok}")
        assert headline is not None
        ours, baseline = headline
        print(json.dumps({"bench": "eventstore_append", "ours": round(ours, 1),
                          "baseline": round(baseline, 1), "unit": "events/s",
                          "ratio": round(ours / baseline, 3)}))
    finally:
        await pool.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slice-seconds", type=float, default=1.0)
    parser.add_argument("--slices", type=int, default=6)
    args = parser.parse_args()
    asyncio.run(main(args.slice_seconds, args.slices))
    sys.stdout.flush()
