"""Checking one stream's hash chain, given its rows as stored.

Pure (no database) so the offline bundle verifier can feed it rows read from an export and
get the same findings, worded the same way, as :meth:`EventStore.verify`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventstore.hashing import GENESIS_HASH, CanonicalFormError, event_hash
from eventstore.models import ChainProblem, Position, ProblemKind


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One row exactly as stored: ``payload``/``metadata`` are the parsed JSON, not validated
    models, so a tampered row is still hashable and reportable."""

    stream_id: str
    version: int
    event_id: str
    event_type: str
    schema_version: int
    payload: Any
    metadata: Any
    prev_hash: str
    hash: str
    occurred_at: datetime | None = None
    position: Position | None = None


@dataclass(frozen=True, slots=True)
class StreamHead:
    """A stream's row in the ``streams`` table: what the last append said the chain ends at."""

    version: int
    head_hash: str


def check_stream(
    stream_id: str, rows: Sequence[StoredEvent], head: StreamHead | None
) -> list[ChainProblem]:
    """Every problem in one stream. ``rows`` must be sorted by version; ``head`` is ``None``
    when the streams table has no row for the stream."""
    problems: list[ChainProblem] = []

    def report(version: int | None, kind: ProblemKind, detail: str) -> None:
        problems.append(ChainProblem(stream_id=stream_id, version=version, kind=kind,
                                     detail=detail))

    expected_version = 1
    prev_hash = GENESIS_HASH
    prev_position: Position | None = None
    for row in rows:
        v = row.version
        if v > expected_version:
            missing = (
                f"version {expected_version} is"
                if v == expected_version + 1
                else f"versions {expected_version}..{v - 1} are"
            )
            report(v, "version_gap", f"expected version {expected_version}, found {v}: "
                   f"{missing} missing (deleted or renumbered)")
        elif v < expected_version:
            report(v, "version_gap", f"version {v} appears again after version "
                   f"{expected_version - 1}")

        try:
            recomputed = event_hash(
                event_id=row.event_id,
                stream_id=row.stream_id,
                version=v,
                event_type=row.event_type,
                schema_version=row.schema_version,
                payload=row.payload,
                metadata=row.metadata,
                prev_hash=row.prev_hash,
            )
        except (CanonicalFormError, ValueError, TypeError) as exc:
            report(v, "malformed_row", f"row cannot be hashed: {exc}")
        else:
            if recomputed != row.hash:
                report(v, "hash_mismatch", f"stored hash {row.hash[:16]}… does not match the "
                       f"row's content (recomputed {recomputed[:16]}…): the row was edited")

        if row.prev_hash != prev_hash:
            if v == 1:
                link = "the genesis hash"
            else:
                link = f"the hash of the preceding row (version {expected_version - 1})"
            report(v, "prev_hash_mismatch", f"prev_hash {row.prev_hash[:16]}… does not link "
                   f"to {link}: an earlier row was edited, removed, inserted or moved")

        if prev_position is not None and row.position is not None and (
            row.position <= prev_position
        ):
            report(v, "position_order", f"global position {tuple(row.position)} is not after "
                   f"the preceding version's {tuple(prev_position)}: rows were reordered, "
                   "renumbered or forged")

        problem = _occurred_at_problem(row)
        if problem:
            report(v, "occurred_at_mismatch", problem)

        expected_version = v + 1
        prev_hash = row.hash
        if row.position is not None:
            prev_position = row.position

    last_version = rows[-1].version if rows else 0
    last_hash = rows[-1].hash if rows else GENESIS_HASH
    if head is None:
        if rows:
            report(rows[0].version, "missing_stream_row", f"{len(rows)} event(s) (versions "
                   f"{rows[0].version}..{last_version}) exist but the streams table has no "
                   "row for the stream: forged, or its head was deleted")
    elif head.version > last_version:
        report(last_version + 1, "head_mismatch", f"the streams table records version "
               f"{head.version} but the events end at version {last_version}: events were "
               "removed from the end")
    elif head.version < last_version:
        report(head.version + 1, "head_mismatch", f"events continue past the recorded head "
               f"(version {head.version}) up to version {last_version}: appended outside the "
               "store, i.e. forged")
    elif head.head_hash != last_hash:
        report(last_version, "head_mismatch", f"the streams table's head hash "
               f"{head.head_hash[:16]}… differs from the hash of version {last_version}")
    return problems


def _occurred_at_problem(row: StoredEvent) -> str | None:
    """The indexed ``occurred_at`` column drives as-of reads but is not hashed itself, so it
    must agree with the hashed metadata."""
    if row.occurred_at is None:
        return None
    stated = row.metadata.get("occurred_at") if isinstance(row.metadata, dict) else None
    try:
        parsed = datetime.fromisoformat(stated) if isinstance(stated, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        return f"metadata.occurred_at {stated!r} is not a timezone-aware timestamp"
    if parsed != row.occurred_at:
        return (f"occurred_at column {row.occurred_at.isoformat()} differs from the hashed "
                f"metadata.occurred_at {stated}")
    return None
