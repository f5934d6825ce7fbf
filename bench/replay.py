"""Rebuilding every read model from the event log, against a bare read of the same log.

Setup (timed separately): a scratch database is filled with about a million events: cohorts
of pairings started four weeks apart, each pairing's stream decided by the domain itself
(``domain.pairing.decide``/``fold`` through ``sebaya/samples/lifecycles.py``: goals, weekly
meetings with some missed, reminders, reviews, exits, silent pairings that escalate), plus each
cohort's own stream (match run, launches, endings, people waiting and leaving). To keep setup
to a couple of minutes, each cohort simulates a few dozen distinct lifecycles and gives each
of its pairings one of them under the pairing's own ids; every event is then hash-chained
exactly as the store chains it and bulk-loaded with COPY in domain-time order (so streams
interleave in the global order as live pairings do). A sample of streams is checked with
``EventStore.verify`` to prove the chains are the store's.

Measured:

* ours: ``Projector.rebuild()`` -- truncate, then read the log in global order, decode every
  event into its domain model, fold pairings and cohorts, write ``pairing_view``,
  ``cohort_view``, ``participant_view`` and the checkpoint batch by batch, one transaction
  each, then store every state snapshot;
* baseline: a bare asyncpg cursor over the same rows in the same order, ``json.loads`` of
  payload and metadata, nothing written.

    python bench/replay.py [--events 1000000] [--batch-size 10000]

Connection: ``SEBAYA_DATABASE_URL`` or postgresql://postgres@127.0.0.1:5432/postgres. The last
line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
# Python puts the script's own folder first on sys.path, where bench/eventstore.py would shadow
# the eventstore package: drop it. The repository root must be importable instead (the script
# also runs without the package installed).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from domain import events as e  # noqa: E402
from domain.cohort_events import (  # noqa: E402
    CohortCompleted,
    CohortStarted,
    MatchRunContinued,
    MatchRunRecorded,
    PairingEnded,
    PairingLaunched,
    ParticipantLeft,
    ParticipantWaiting,
    ProposalApproved,
    ProposedPair,
)
from domain.ids import cohort_stream, event_id_for, pairing_id_for  # noqa: E402
from domain.matching import ALGORITHM_VERSION  # noqa: E402
from eventstore import EventStore, migrate  # noqa: E402
from eventstore.hashing import (  # noqa: E402
    GENESIS_HASH,
    EnvelopeParts,
    canonical_json,
    canonical_timestamp,
    encode_json_string,
)
from projections.pairing import pairing_record  # noqa: E402
from projections.projector import Projector  # noqa: E402
from sebaya.bootstrap import build_registry  # noqa: E402
from sebaya.samples.lifecycles import (  # noqa: E402
    OPS,
    T0,
    PairingSim,
    completed_pairing,
    exited_pairing,
    silent_pairing,
)

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
PAIRS_PER_COHORT = 1000
TEMPLATES_PER_COHORT = 48
COHORT_SPACING = timedelta(days=28)
EVENT_COLUMNS = ["stream_id", "version", "event_id", "type", "schema_version", "payload",
                 "metadata", "occurred_at", "prev_hash", "hash"]
BASELINE_SQL = (
    "SELECT global_position, tx_id, stream_id, version, event_id, type, schema_version, "
    "payload::text AS payload, metadata::text AS metadata, recorded_at, prev_hash, hash "
    "FROM events ORDER BY tx_id, global_position"
)

Row = tuple[Any, ...]


# --- generating the log ------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateEvent:
    type: str
    schema_version: int
    payload_json: str | None  # None: carries ids, rendered per pairing
    event: e.DomainEvent
    actor: str  # "mentor" | "mentee" | "system:sebaya" | "ops:..."
    occurred_at: datetime
    occurred_text: str


def simulate(cohort_id: str, start: datetime, rng: random.Random) -> PairingSim:
    """One pairing lifecycle decided by the domain, under placeholder ids."""
    sim = PairingSim.start(cohort_id=cohort_id, mentor="TMENTOR", mentee="TMENTEE", at=start,
                           score=round(rng.uniform(0.5, 0.98), 4), explanation={
                               "cross_functional": {"value": float(rng.random() < 0.6),
                                                    "weight": 0.1, "points": 0.1}})
    roll = rng.random()
    if roll < 0.62:
        skips = rng.sample(range(2, 26), k=rng.choice((0, 0, 1, 2, 4)))
        completed_pairing(sim, skip=skips, rng=rng)
    elif roll < 0.80:
        actor = rng.choice((sim.mentor_actor, sim.mentee_actor, OPS))
        exited_pairing(sim, after=timedelta(days=rng.randint(5, 175)), actor=actor,
                       reason=rng.choice((e.ExitReason.NOT_A_FIT, e.ExitReason.WORKLOAD,
                                          e.ExitReason.SCHEDULE_CONFLICT,
                                          e.ExitReason.ROLE_CHANGE)))
    elif roll < 0.86:
        exited_pairing(sim, after=timedelta(days=rng.randint(10, 150)), actor=OPS,
                       reason=e.ExitReason.LEFT_COMPANY, leaving="TMENTEE")
    else:
        # Nobody acts: goals overdue, meetings missed, escalation, then the clock closes it.
        silent_pairing(sim, until=timedelta(days=200))
    return sim


def template_events(sim: PairingSim) -> list[TemplateEvent]:
    out = []
    for decision in sim.decisions:
        actor = decision.actor
        if actor == "employee:TMENTOR":
            actor = "mentor"
        elif actor == "employee:TMENTEE":
            actor = "mentee"
        for event in decision.events:
            carries_ids = isinstance(event, e.PairingMatched) or (
                isinstance(event, e.PairingExited) and event.leaving_employee_id is not None)
            out.append(TemplateEvent(
                event.event_type, event.schema_version,
                None if carries_ids else canonical_json(event.model_dump(mode="json")),
                event, actor, decision.occurred_at,
                canonical_timestamp(decision.occurred_at)))
    return out


def chain(stream_id: str, items: list[tuple[str, int, str, str, datetime]]) -> Iterator[Row]:
    """Hash-chain one stream exactly as ``eventstore_append`` does."""
    prev = GENESIS_HASH
    for version, (event_type, schema_version, payload, metadata, occurred_at) in enumerate(
            items, start=1):
        event_id = event_id_for(stream_id, version)
        digest = EnvelopeParts.build(
            event_id=event_id, stream_id=stream_id, version=version, event_type=event_type,
            schema_version=schema_version, payload_json=payload, metadata_json=metadata,
        ).link(prev)
        yield (stream_id, version, event_id, event_type, schema_version, payload, metadata,
               occurred_at, prev, digest)
        prev = digest


def metadata_json(actor: str, cohort_id: str, occurred_text: str, workflow_id: str) -> str:
    # EventMetadata.canonical_json() for exactly these four fields, keys in code point order.
    return (f'{{"actor":{encode_json_string(actor)},"correlation_id":'
            f'{encode_json_string(cohort_id)},"occurred_at":"{occurred_text}",'
            f'"workflow_id":{encode_json_string(workflow_id)}}}')


def generate_cohort(index: int, pairs: int, rng: random.Random, until: datetime | None
                    ) -> tuple[list[Row], int]:
    """Every event of one cohort (its stream and its pairings' streams), up to ``until``."""
    if until is None:
        until = datetime.max.replace(tzinfo=T0.tzinfo)
    cohort_id = f"B{index:03d}"
    start = T0 + COHORT_SPACING * index
    templates = [template_events(simulate(cohort_id, start, rng))
                 for _ in range(TEMPLATES_PER_COHORT)]
    rows: list[Row] = []
    cohort_items: list[tuple[str, int, str, str, datetime]] = []

    def cohort_event(event: Any, at: datetime, actor: str = "system:sebaya") -> None:
        if at <= until:
            cohort_items.append((event.event_type, event.schema_version,
                                 canonical_json(event.model_dump(mode="json")),
                                 metadata_json(actor, cohort_id, canonical_timestamp(at),
                                               f"cohort-{cohort_id}"), at))

    chosen = [(f"M{index:03d}-{k // 2:04d}", f"E{index:03d}-{k:04d}",
               rng.randrange(len(templates))) for k in range(pairs)]
    proposal = [ProposedPair(mentor=m, mentee=n,
                             score=templates[t][0].event.match_score)  # type: ignore[attr-defined]
                for m, n, t in chosen]
    at = start - timedelta(days=3)
    cohort_event(CohortStarted(
        cohort_id=cohort_id, program_name=f"Program Mentoring {index}",
        objective={"kind": "new_hire_retention", "metric": "retention_45d"},
        baseline={"retention_45d": 0.78, "retention_1y": 0.6}, starts_at=start,
        ends_at=start + timedelta(days=182), rematch_until=start + timedelta(days=120),
        cool_off_days=7, approval="manual", people_digest="sha256:" + "ab" * 32,
        mentors=pairs // 2, mentees=pairs), at, "ops:ops-bench")
    run_id = f"{cohort_id}-run-1"
    cohort_event(MatchRunRecorded(
        run_id=run_id, kind="initial", input_digest="sha256:" + "cd" * 32,
        algorithm_version=ALGORITHM_VERSION, policy={"objective": "balanced"},
        total_score=round(sum(p.score for p in proposal), 4), pair_count=pairs,
        unmatched_count=0, pairs=tuple(proposal[:200])), at)
    for chunk, first in enumerate(range(200, pairs, 200), start=1):
        cohort_event(MatchRunContinued(run_id=run_id, chunk=chunk,
                                       pairs=tuple(proposal[first:first + 200])), at)
    cohort_event(ProposalApproved(run_id=run_id, approved_by="ops:ops-bench", pairs=pairs),
                 at + timedelta(hours=2), "ops:ops-bench")

    endings: list[tuple[datetime, Any]] = []
    for mentor, mentee, t in chosen:
        template = templates[t]
        pairing_id = pairing_id_for(cohort_id, mentor, mentee)
        stream = f"pairing-{pairing_id}"
        workflow_id = stream
        actors = {"mentor": f"employee:{mentor}", "mentee": f"employee:{mentee}"}
        items = []
        for te in template:
            if te.occurred_at > until:
                break
            payload = te.payload_json
            if payload is None:
                if isinstance(te.event, e.PairingMatched):
                    event: Any = te.event.model_copy(update={
                        "pairing_id": pairing_id, "mentor_id": mentor, "mentee_id": mentee})
                else:
                    event = te.event.model_copy(update={"leaving_employee_id": mentee})
                payload = canonical_json(event.model_dump(mode="json"))
            items.append((te.type, te.schema_version, payload,
                          metadata_json(actors.get(te.actor, te.actor), cohort_id,
                                        te.occurred_text, workflow_id), te.occurred_at))
        rows.extend(chain(stream, items))
        cohort_event(PairingLaunched(pairing_id=pairing_id, mentor_id=mentor, mentee_id=mentee,
                                     score=template[0].event.match_score,  # type: ignore[attr-defined]
                                     starts_at=start), start)
        last = template[-1]
        closing = isinstance(last.event, e.PairingCompleted | e.PairingExited)
        if last.occurred_at <= until and closing:
            endings.append((last.occurred_at, (pairing_id, mentor, mentee, last.event, template)))
    for ended_at, (pairing_id, _mentor, mentee, final, template) in sorted(endings,
                                                                          key=lambda x: x[0]):
        exited = isinstance(final, e.PairingExited)
        held = sum(1 for te in template if te.type == "MeetingHeld")
        missed = sum(1 for te in template if te.type == "MeetingMissed")
        cohort_event(PairingEnded(
            pairing_id=pairing_id, outcome="exited" if exited else "completed",
            initiated_by=final.initiated_by.value if exited else None,
            reason=final.reason.value if exited else None,
            phase_at_exit=final.phase_at_exit if exited else None,
            leaving_employee_id=mentee if exited and final.leaving_employee_id else None,
            ended_at=ended_at, meetings_held=held, meetings_missed=missed), ended_at)
        if exited and final.reason is e.ExitReason.LEFT_COMPANY:
            cohort_event(ParticipantLeft(employee_id=mentee, left_on=ended_at.date(),
                                         recorded_by="hr-import"), ended_at, "ops:ops-bench")
        elif exited:
            cohort_event(ParticipantWaiting(employee_id=mentee, role="mentee",
                                            after_pairing=pairing_id,
                                            available_at=ended_at + timedelta(days=7)),
                         ended_at)
    if endings and len(endings) == pairs:
        done = max(at for at, _ in endings)
        phases = [x[3] for _, x in endings]
        cohort_event(CohortCompleted(
            completed_at=done, pairings=pairs,
            completed=sum(1 for f in phases if isinstance(f, e.PairingCompleted)),
            exited=sum(1 for f in phases if isinstance(f, e.PairingExited))), done)
    cohort_items.sort(key=lambda item: item[4])  # stable: same-instant events keep their order
    rows.extend(chain(cohort_stream(cohort_id), cohort_items))
    return rows, pairs


async def load(pool: asyncpg.Pool, rows: list[Row]) -> None:
    """COPY in domain-time order, 100k rows per transaction, then the stream heads."""
    rows.sort(key=lambda r: (r[7], r[0], r[1]))
    for first in range(0, len(rows), 100_000):
        async with pool.acquire() as conn, conn.transaction():
            await conn.copy_records_to_table("events", records=rows[first:first + 100_000],
                                             columns=EVENT_COLUMNS)
    heads: dict[str, tuple[int, str]] = {}
    for row in rows:
        head = heads.get(row[0])
        if head is None or row[1] > head[0]:
            heads[row[0]] = (row[1], row[9])
    async with pool.acquire() as conn:
        await conn.copy_records_to_table(
            "streams", records=[(s, v, h) for s, (v, h) in heads.items()],
            columns=["stream_id", "version", "head_hash"])
        await conn.execute("VACUUM (ANALYZE) events")
        await conn.execute("VACUUM (ANALYZE) streams")


async def build_log(pool: asyncpg.Pool, target_events: int, rng: random.Random
                    ) -> tuple[int, int]:
    """Generate and load about ``target_events`` events; returns (events, pairings)."""
    started = time.perf_counter()
    rows: list[Row] = []
    pairings = cohorts = 0
    per_pairing = 0.0
    while len(rows) < target_events:
        remaining = target_events - len(rows)
        full = per_pairing * PAIRS_PER_COHORT
        if not per_pairing or remaining > 1.5 * full:
            size, until = PAIRS_PER_COHORT, None
        else:
            # The cohort running "now": ninety days in, so the log ends with open pairings
            # (about 40% of a lifecycle's events happen in its first ninety days).
            size = max(20, min(3 * PAIRS_PER_COHORT, int(remaining / (0.4 * per_pairing)) + 1))
            until = T0 + COHORT_SPACING * cohorts + timedelta(days=90)
        produced, n = generate_cohort(cohorts, size, rng, until)
        if until is None:
            per_pairing = len(produced) / n
        rows.extend(produced)
        pairings += n
        cohorts += 1
    print(f"generated {len(rows):,} events ({pairings:,} pairings in {cohorts} cohorts) "
          f"in {time.perf_counter() - started:.1f}s")
    started = time.perf_counter()
    total = len(rows)
    await load(pool, rows)
    print(f"loaded with COPY in {time.perf_counter() - started:.1f}s")
    return total, pairings


# --- measuring ---------------------------------------------------------------------------------


async def baseline_read(pool: asyncpg.Pool, prefetch: int) -> tuple[int, float]:
    started = time.perf_counter()
    count = 0
    loads = json.loads
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                        readonly=True):
        async for row in conn.cursor(BASELINE_SQL, prefetch=prefetch):
            loads(row[7])
            loads(row[8])
            count += 1
    return count, time.perf_counter() - started


async def ours_rebuild(store: EventStore, batch_size: int | None) -> tuple[int, float]:
    projector = (Projector(store) if batch_size is None
                 else Projector(store, rebuild_batch_size=batch_size))
    started = time.perf_counter()
    count = await projector.rebuild()
    return count, time.perf_counter() - started


async def check_views(pool: asyncpg.Pool, store: EventStore, pairings: int,
                      rng: random.Random) -> None:
    """The rebuilt views hold every pairing, sampled rows equal a fresh fold of their
    stream, and every open pairing's snapshot is current."""
    from domain.pairing import fold
    from projections.pairing import JSON_COLUMNS, PAIRING_COLUMNS

    count = await pool.fetchval("SELECT count(*) FROM pairing_view")
    assert count == pairings, (count, pairings)
    registry = build_registry()
    ids = [r[0] for r in await pool.fetch("SELECT pairing_id FROM pairing_view")]
    columns = ", ".join(f"{c}::text AS {c}" if c in JSON_COLUMNS else c
                        for c in PAIRING_COLUMNS)
    for pid in rng.sample(ids, 20):
        records = await store.read_stream(f"pairing-{pid}")
        state = fold(registry.decode(r) for r in records)  # type: ignore[misc]
        row = await pool.fetchrow(f"SELECT {columns} FROM pairing_view WHERE pairing_id = $1",
                                  pid)
        stored = {c: json.loads(row[c]) if c in JSON_COLUMNS else row[c]
                  for c in PAIRING_COLUMNS}
        expected = pairing_record(state, cross_functional=row["cross_functional"],
                                  last_event_at=records[-1].metadata.occurred_at)
        assert stored == expected, (pid, {c for c in stored if stored[c] != expected[c]})
    stale = await pool.fetchval(
        "SELECT count(*) FROM pairing_view p LEFT JOIN pairing_snapshots s USING (pairing_id) "
        "WHERE s.version IS DISTINCT FROM p.stream_version")
    assert stale == 0, f"{stale} pairings without a current snapshot"
    by_phase = await pool.fetch("SELECT phase, count(*) FROM pairing_view GROUP BY phase")
    print("views check out; pairings by phase:", {r[0]: r[1] for r in by_phase})


async def bench(dsn: str, target_events: int, batch_size: int | None, seed: int) -> None:
    await migrate(dsn)
    pool = await asyncpg.create_pool(dsn, min_size=3, max_size=6)
    assert pool is not None
    try:
        rng = random.Random(seed)
        total, pairings = await build_log(pool, target_events, rng)

        # The global horizon is cluster-wide: wait until no transaction anywhere on the server
        # hides part of the log, or a run would project less than all of it.
        while True:
            hidden = await pool.fetchval(
                "SELECT count(*) FROM events "
                "WHERE tx_id >= (SELECT pg_snapshot_xmin(pg_current_snapshot()))")
            if not hidden:
                break
            await asyncio.sleep(0.1)  # another session's transaction must end

        store = EventStore(pool, build_registry())
        sample = rng.sample(await store.list_streams(), 40)
        report = await store.verify(sample)
        assert report.ok, report.problems[:3]
        print(f"verify() of {len(sample)} sampled streams: ok ({report.events_checked} events)")

        # Each measurement runs in a fresh process, as `sebaya projections rebuild` does: the
        # generator's million objects must not weigh on either side. Alternating runs, best
        # of two each, so a noisy neighbour on a shared machine hits both sides alike.
        measure(dsn, "baseline", batch_size)  # warms the page cache; not counted
        runs: dict[str, list[float]] = {"baseline": [], "ours": []}
        for _ in range(2):
            for side in ("baseline", "ours"):
                count, seconds = measure(dsn, side, batch_size)
                assert count == total, (side, count, total)
                runs[side].append(seconds)
        baseline = total / min(runs["baseline"])
        ours = total / min(runs["ours"])
        shown = {side: ", ".join(f"{t:.1f}s" for t in times) for side, times in runs.items()}
        print(f"baseline (asyncpg cursor + json.loads): {min(runs['baseline']):.1f}s "
              f"({baseline:,.0f} events/s; runs {shown['baseline']})")
        print(f"ours (Projector.rebuild, batch {batch_size or 'default'}): "
              f"{min(runs['ours']):.1f}s ({ours:,.0f} events/s; runs {shown['ours']})")
        await check_views(pool, store, pairings, rng)
        print(json.dumps({"bench": "projection_rebuild", "ours": round(ours, 1),
                          "baseline": round(baseline, 1), "unit": "events/s",
                          "ratio": round(ours / baseline, 3)}))
    finally:
        await pool.close()


def measure(dsn: str, side: str, batch_size: int | None) -> tuple[int, float]:
    """One timed run of ``side`` in a child process: (events, seconds)."""
    command = [sys.executable, __file__, "--measure", side, "--dsn", dsn]
    if batch_size is not None:
        command += ["--batch-size", str(batch_size)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["events"], result["seconds"]


async def measure_here(dsn: str, side: str, batch_size: int | None) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=3, max_size=6)
    assert pool is not None
    try:
        if side == "baseline":
            count, seconds = await baseline_read(pool, batch_size or 10_000)
        else:
            count, seconds = await ours_rebuild(EventStore(pool, build_registry()), batch_size)
    finally:
        await pool.close()
    print(json.dumps({"events": count, "seconds": seconds}))


def with_database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path="/" + database))


async def main(target_events: int, batch_size: int | None, seed: int) -> None:
    server_dsn = os.environ.get("SEBAYA_DATABASE_URL", DEFAULT_DSN)
    scratch = f"sebaya_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{scratch}"')
    finally:
        await admin.close()
    try:
        await bench(with_database(server_dsn, scratch), target_events, batch_size, seed)
    finally:
        admin = await asyncpg.connect(server_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        finally:
            await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="rows per rebuild batch (default: the projector's own)")
    parser.add_argument("--seed", type=int, default=2025)
    # Internal: one measurement in this (fresh) process, against an existing database.
    parser.add_argument("--measure", choices=("baseline", "ours"), help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        asyncio.run(measure_here(args.dsn, args.measure, args.batch_size))
    else:
        asyncio.run(main(args.events, args.batch_size, args.seed))
    sys.stdout.flush()
