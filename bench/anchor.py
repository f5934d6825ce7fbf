"""The cost of anchoring, against the full chain verification an auditor would otherwise run.

A scratch database gets ``--streams`` streams of ``--events`` events each. The first anchor
verifies every chain; then 1% of the streams get one more event and the next anchor
(``audit.anchor.write_anchor``: heads read in one snapshot, divergence checked against the
previous anchor, only the changed streams' chains recomputed) is timed against
``EventStore.verify()`` over everything (the baseline). ``verify --against`` (the comparison
with an anchor alone) is printed too. The last line is JSON.

    python bench/anchor.py [--streams 2000] [--events 20]

Connection: ``SEBAYA_DATABASE_URL`` or postgresql://postgres@127.0.0.1:5432/postgres.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

# bench/ holds a script named eventstore.py, and Python puts the script's own directory first
# on sys.path: drop it, or `import eventstore` would import that script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import asyncpg  # noqa: E402

from audit.anchor import (  # noqa: E402
    DirectorySink,
    check_against_anchor,
    load_anchor,
    write_anchor,
)
from eventstore import EventMetadata, EventStore, NewEvent, migrate  # noqa: E402

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
T0 = datetime(2025, 3, 3, 2, 0, tzinfo=UTC)


def events(stream: int, first: int, count: int) -> list[NewEvent]:
    return [NewEvent(event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{stream}/{v}"),
                     type="MeetingHeld", schema_version=1,
                     payload={"meeting_no": v, "minutes": 45, "topics": ["karier"]},
                     metadata=EventMetadata(actor="employee:E001",
                                            occurred_at=T0 + timedelta(days=7 * v)))
            for v in range(first, first + count)]


async def timed(coro: object) -> tuple[float, object]:
    start = time.perf_counter()
    result = await coro  # type: ignore[misc]
    return time.perf_counter() - start, result


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--events", type=int, default=20)
    args = parser.parse_args()
    server = os.environ.get("SEBAYA_DATABASE_URL", DEFAULT_DSN)
    name = f"sebaya_bench_anchor_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = urlunsplit(urlsplit(server)._replace(path="/" + name))
    try:
        await migrate(dsn)
        pool = await asyncpg.create_pool(dsn, min_size=2, max_size=8)
        assert pool is not None
        store = EventStore(pool)
        ids = [f"pairing-B.{n:06d}" for n in range(args.streams)]
        sem = asyncio.Semaphore(8)

        async def fill(n: int, stream_id: str) -> None:
            async with sem:
                await store.append(stream_id, 0, events(n, 1, args.events))

        await asyncio.gather(*(fill(n, s) for n, s in enumerate(ids)))
        with tempfile.TemporaryDirectory() as tmp:
            sink = DirectorySink(Path(tmp))
            first_s, first = await timed(write_anchor(store, sink))
            changed = ids[:: 100]
            for n, stream_id in enumerate(changed):
                await store.append(stream_id, args.events, events(n, args.events + 1, 1))
            ours_s, second = await timed(write_anchor(store, sink))
            base_s, report = await timed(store.verify())
            assert first.written and second.written and report.ok  # type: ignore[attr-defined]
            doc, digest = load_anchor(Path(tmp) / second.name)  # type: ignore[attr-defined]
            against_s, check = await timed(check_against_anchor(store, doc, "b", digest))
            assert check.ok  # type: ignore[attr-defined]
        await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    total = args.streams * args.events
    print(f"{args.streams} streams, {total} events; first anchor (verifies all) {first_s:.2f}s; "
          f"anchor after {len(changed)} streams changed {ours_s:.3f}s; full verify "
          f"{base_s:.2f}s; comparison with an anchor alone {against_s:.3f}s")
    print(json.dumps({"bench": "anchor_incremental_vs_full_verify", "ours": round(ours_s, 4),
                      "baseline": round(base_s, 4), "unit": "s",
                      "ratio": round(ours_s / base_s, 4)}))


if __name__ == "__main__":
    asyncio.run(main())
