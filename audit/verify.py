"""Has anyone altered the record? Hash chains, gap-free versions, stream heads and global
order checked by :meth:`eventstore.EventStore.verify`, for one stream, a whole cohort or the
entire store, plus the one thing a chain cannot show about itself: a stream that should exist
and does not."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from domain.ids import cohort_stream, pairing_stream
from eventstore import EventStore


class Finding(BaseModel):
    """One problem, named by stream and version (``kind`` as in
    :class:`eventstore.ChainProblem`, plus ``stream_missing`` and the bundle checks)."""

    model_config = ConfigDict(frozen=True)

    stream_id: str | None
    version: int | None
    kind: str
    detail: str

    def __str__(self) -> str:
        where = self.stream_id or "bundle"
        if self.version is not None:
            where += f" v{self.version}"
        return f"{where}: {self.kind}: {self.detail}"


class VerifyResult(BaseModel):
    """``sebaya audit verify``."""

    model_config = ConfigDict(frozen=True)

    scope: Literal["stream", "cohort", "all"]
    subject: str | None
    streams: list[str]
    streams_checked: int
    events_checked: int
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        return not self.findings

    def broken_streams(self) -> list[str]:
        return sorted({f.stream_id for f in self.findings if f.stream_id})


async def cohort_streams(store: EventStore, cohort_id: str) -> tuple[list[str], list[str]]:
    """The cohort's own stream and its pairings' streams: (streams that exist, streams the
    cohort launched that do not exist).

    Pairings are found two ways, so that deleting one trace is not enough to hide a stream:
    the ``PairingLaunched`` events of the cohort's stream, and the stream ids starting with
    ``pairing-<cohort>.`` (pairing ids are ``<cohort>.<mentee>.<mentor>.<attempt>``).
    """
    existing = set(await store.list_streams(pairing_stream(f"{cohort_id}.")))
    own = cohort_stream(cohort_id)
    # Read raw: the cohort stream is itself under audit, so a tampered row must not stop us
    # from learning which pairings it names.
    async with store.pool.acquire() as conn:
        launched = [
            row[0] for row in await conn.fetch(
                "SELECT payload->>'pairing_id' FROM events WHERE stream_id = $1 "
                "AND type = 'PairingLaunched' ORDER BY version", own)
            if row[0]
        ]
        own_exists = await conn.fetchval(
            "SELECT EXISTS (SELECT FROM streams WHERE stream_id = $1) "
            "OR EXISTS (SELECT FROM events WHERE stream_id = $1)", own)
        named = [pairing_stream(p) for p in launched]
        present = {row[0] for row in await conn.fetch(
            "SELECT stream_id FROM streams WHERE stream_id = ANY($1::text[]) UNION "
            "SELECT DISTINCT stream_id FROM events WHERE stream_id = ANY($1::text[])", named)}
    streams = ([own] if own_exists else []) + sorted(existing | present)
    missing = [s for s in dict.fromkeys(named) if s not in present]
    if not own_exists:
        missing.insert(0, own)
    return streams, missing


async def verify(
    store: EventStore,
    *,
    stream: str | None = None,
    cohort: str | None = None,
) -> VerifyResult:
    """Verify one stream (``stream``), a cohort (``cohort``), or everything (neither)."""
    if stream is not None and cohort is not None:
        raise ValueError("give a stream or a cohort, not both")
    missing: list[str] = []
    if stream is not None:
        scope: Literal["stream", "cohort", "all"] = "stream"
        streams = [stream]
        report = await store.verify(streams)
        if report.events_checked == 0 and report.streams_checked == 0:
            missing = [stream]
    elif cohort is not None:
        scope = "cohort"
        streams, missing = await cohort_streams(store, cohort)
        report = await store.verify(streams)
    else:
        scope = "all"
        report = await store.verify()
        streams = []
    findings = [Finding(stream_id=p.stream_id, version=p.version, kind=p.kind, detail=p.detail)
                for p in report.problems]
    findings += [Finding(stream_id=s, version=None, kind="stream_missing",
                         detail="no event and no head for this stream: it never existed, or "
                                "it was deleted together with its head")
                 for s in missing]
    return VerifyResult(scope=scope, subject=stream or cohort, streams=streams,
                        streams_checked=report.streams_checked,
                        events_checked=report.events_checked, findings=findings)
