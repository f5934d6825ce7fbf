"""Anchors: the chain heads of every stream, written outside the database.

A hash chain only proves that nobody edited the record *without recomputing the hashes*. A
database superuser can switch the append-only triggers off, rewrite a stream and recompute
every hash with ``eventstore.hashing``: ``verify`` then finds a consistent chain. What the
superuser cannot rewrite is a copy of the heads kept where the database's administrators
cannot write. An anchor is that copy:

* every stream's ``(stream_id, version, head_hash)``, sorted by stream id;
* one Merkle root over them (RFC 6962 tree hash: leaves ``sha256(0x00 || leaf)``, nodes
  ``sha256(0x01 || left || right)``), so a single 64-character value vouches for all heads and
  can be published or countersigned on its own;
* the name and SHA-256 digest of the previous anchor, so anchors form their own chain and a
  removed or edited anchor is noticed by the one after it.

Anchors are written by an :class:`AnchorSink` (a directory here; an object-store sink with
a WORM bucket implements the same four methods), atomically and never over an existing one.
``docs/audit.md`` says how often to anchor and where to keep anchors.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

import asyncpg
from pydantic import BaseModel, ConfigDict, ValidationError

from audit.verify import Finding
from eventstore import EventStore
from eventstore.hashing import canonical_json

__all__ = [
    "ANCHOR_FORMAT",
    "AnchorChainReport",
    "AnchorCheck",
    "AnchorDocument",
    "AnchorError",
    "AnchorSink",
    "AnchorWritten",
    "AnchoredHead",
    "DirectorySink",
    "check_against_anchor",
    "load_anchor",
    "merkle_root",
    "sink_for",
    "verify_anchor_chain",
    "write_anchor",
]

ANCHOR_FORMAT = "sebaya-anchor/1"
_NAME = re.compile(r"^anchor-(\d{8})-\d{8}T\d{6}Z\.json$")


class AnchorError(Exception):
    """An anchor cannot be read, parsed or written (the message says which and why)."""


# --- the document --------------------------------------------------------------------------


class AnchoredHead(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    stream_id: str
    version: int
    head_hash: str


class PreviousAnchor(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    sha256: str


class AnchorDocument(BaseModel):
    """One anchor file, as written (canonical JSON, so its digest is reproducible)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["sebaya-anchor/1"]
    sequence: int
    created_at: datetime
    previous: PreviousAnchor | None
    stream_count: int
    merkle_root: str
    streams: list[AnchoredHead]

    def to_bytes(self) -> bytes:
        data = self.model_dump(mode="json")
        data["created_at"] = self.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return canonical_json(data).encode("utf-8") + b"\n"

    def root_problem(self) -> str | None:
        """Why the document's own Merkle root or count does not hold, or ``None``."""
        if self.stream_count != len(self.streams):
            return (f"stream_count says {self.stream_count} but {len(self.streams)} head(s) "
                    "are listed")
        ids = [h.stream_id for h in self.streams]
        if ids != sorted(set(ids)):
            return "the heads are not sorted by stream id, or a stream is listed twice"
        recomputed = merkle_root(self.streams)
        if recomputed != self.merkle_root:
            return (f"the Merkle root {self.merkle_root[:16]}… does not match the listed heads "
                    f"(recomputed {recomputed[:16]}…): the anchor was edited")
        return None


def _leaf(head: AnchoredHead) -> bytes:
    return hashlib.sha256(
        b"\x00" + canonical_json([head.stream_id, head.version, head.head_hash]).encode()
    ).digest()


def _tree(leaves: Sequence[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    split = 1 << ((len(leaves) - 1).bit_length() - 1)  # largest power of two below n
    return hashlib.sha256(b"\x01" + _tree(leaves[:split]) + _tree(leaves[split:])).digest()


def merkle_root(heads: Sequence[AnchoredHead]) -> str:
    """The RFC 6962 Merkle tree hash over ``heads`` in the given order (hex)."""
    if not heads:
        return hashlib.sha256(b"").hexdigest()
    return _tree([_leaf(h) for h in heads]).hex()


def parse_anchor(data: bytes, where: str) -> AnchorDocument:
    try:
        return AnchorDocument.model_validate_json(data)
    except ValidationError as exc:
        raise AnchorError(f"{where} is not a Sebaya anchor ({ANCHOR_FORMAT}): "
                          f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None


def load_anchor(path: Path) -> tuple[AnchorDocument, str]:
    """An anchor file and the SHA-256 of its bytes."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AnchorError(f"cannot read anchor {path}: {exc.strerror or exc}") from None
    return parse_anchor(data, str(path)), hashlib.sha256(data).hexdigest()


# --- where anchors go ----------------------------------------------------------------------


class AnchorSink(Protocol):
    """Append-only storage for anchors. ``create`` must fail, not overwrite, when ``name``
    exists: that is what makes the store append-only for the writer."""

    def describe(self) -> str: ...

    def names(self) -> list[str]: ...

    def read(self, name: str) -> bytes: ...

    def create(self, name: str, data: bytes) -> str:
        """Store ``data`` under ``name`` atomically; return where it went."""
        ...


class DirectorySink:
    """Anchors as read-only files in a directory (a mounted WORM volume, or one synced to
    another host). Writes go to an exclusive temp file that is fsynced and then *linked* to its
    final name: ``link(2)`` is atomic like ``rename(2)`` but refuses an existing target, where
    rename would silently replace it. The directory is fsynced so the entry survives a crash."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def describe(self) -> str:
        return str(self.directory)

    def names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.name for p in self.directory.iterdir() if _NAME.match(p.name))

    def read(self, name: str) -> bytes:
        try:
            return (self.directory / name).read_bytes()
        except OSError as exc:
            raise AnchorError(f"cannot read anchor {self.directory / name}: "
                              f"{exc.strerror or exc}") from None

    def create(self, name: str, data: bytes) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / name
        temp = self.directory / f".{name}.{secrets.token_hex(6)}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        try:
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(temp, final)
            except FileExistsError:
                raise AnchorError(f"{final} already exists: another anchor was written at the "
                                  "same time; run the command again") from None
        finally:
            temp.unlink(missing_ok=True)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return str(final)


# --- comparing the store with an anchor ----------------------------------------------------


class AnchorCheck(BaseModel):
    """The store compared with one anchor."""

    model_config = ConfigDict(frozen=True)

    anchor: str
    anchor_sha256: str
    sequence: int
    created_at: datetime
    streams_compared: int
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        return not self.findings


async def _current_heads(conn: asyncpg.Connection) -> list[AnchoredHead]:
    rows = await conn.fetch("SELECT stream_id, version, head_hash FROM streams "
                            "ORDER BY stream_id")
    return [AnchoredHead(stream_id=r["stream_id"], version=r["version"],
                         head_hash=r["head_hash"]) for r in rows]


async def _divergences(conn: asyncpg.Connection, heads: Sequence[AnchoredHead]) -> list[Finding]:
    """Every anchored stream whose history no longer passes through its anchored head."""
    rows = await conn.fetch(
        """
        SELECT a.stream_id, a.version, a.head_hash, e.hash AS stored_hash,
               (SELECT max(x.version) FROM events x WHERE x.stream_id = a.stream_id)
                   AS last_version
        FROM unnest($1::text[], $2::bigint[], $3::text[]) AS a(stream_id, version, head_hash)
        LEFT JOIN events e ON e.stream_id = a.stream_id AND e.version = a.version
        ORDER BY a.stream_id
        """,
        [h.stream_id for h in heads], [h.version for h in heads], [h.head_hash for h in heads])
    findings: list[Finding] = []
    for row in rows:
        stream_id, version, anchored = row["stream_id"], row["version"], row["head_hash"]
        last = row["last_version"]
        if last is None:
            findings.append(Finding(
                stream_id=stream_id, version=None, kind="anchor_stream_missing",
                detail=f"anchored at version {version} (head {anchored[:16]}…) but the store "
                       "has no event of this stream: it was deleted"))
        elif row["stored_hash"] is None:
            findings.append(Finding(
                stream_id=stream_id, version=version, kind="anchor_stream_shorter",
                detail=f"anchored at version {version} but the stream ends at version {last}: "
                       "events were removed"))
        elif row["stored_hash"] != anchored:
            findings.append(Finding(
                stream_id=stream_id, version=version, kind="anchor_mismatch",
                detail=f"the hash of version {version} is {row['stored_hash'][:16]}… but the "
                       f"anchor recorded {anchored[:16]}…: the history up to version {version} "
                       "was rewritten (hashes recomputed) after it was anchored"))
    return findings


async def check_against_anchor(
    store: EventStore,
    anchor: AnchorDocument,
    anchor_name: str,
    anchor_sha256: str,
    *,
    streams: Sequence[str] | None = None,
) -> AnchorCheck:
    """Compare the store with ``anchor`` (only ``streams`` when given): the anchor's own root,
    and every anchored stream still extending its anchored head. Chain consistency itself is
    :func:`audit.verify.verify`'s job; run both (``sebaya audit verify --against`` does)."""
    findings: list[Finding] = []
    problem = anchor.root_problem()
    if problem:
        findings.append(Finding(stream_id=None, version=None, kind="anchor_damaged",
                                detail=f"{anchor_name}: {problem}"))
    heads = anchor.streams
    if streams is not None:
        wanted = set(streams)
        heads = [h for h in heads if h.stream_id in wanted]
    async with store.pool.acquire() as conn:
        findings += await _divergences(conn, heads)
    return AnchorCheck(anchor=anchor_name, anchor_sha256=anchor_sha256,
                       sequence=anchor.sequence, created_at=anchor.created_at,
                       streams_compared=len(heads), findings=findings)


# --- writing -------------------------------------------------------------------------------


class AnchorWritten(BaseModel):
    """``sebaya audit anchor``: what was written, or why nothing was."""

    model_config = ConfigDict(frozen=True)

    written: bool
    location: str | None
    name: str | None
    sha256: str | None
    sequence: int
    merkle_root: str | None
    stream_count: int
    previous: PreviousAnchor | None
    streams_verified: int
    findings: list[Finding]


def _latest(sink: AnchorSink) -> tuple[str, AnchorDocument, str] | None:
    names = sink.names()
    if not names:
        return None
    name = names[-1]
    data = sink.read(name)
    return name, parse_anchor(data, f"{sink.describe()}/{name}"), hashlib.sha256(data).hexdigest()


async def write_anchor(
    store: EventStore, sink: AnchorSink, *, now: datetime | None = None
) -> AnchorWritten:
    """Anchor every stream's head, chained to the latest anchor in ``sink``.

    Refuses (``written=False``, with findings) when the latest anchor is damaged, when the
    store no longer extends it, or when a stream that changed since it fails chain
    verification: anchoring a rewritten record would launder the rewrite.
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    latest = _latest(sink)
    findings: list[Finding] = []
    previous: PreviousAnchor | None = None
    sequence = 1
    async with store.pool.acquire() as conn:
        # One snapshot: heads listed, compared and anchored as of the same instant.
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            heads = await _current_heads(conn)
            if latest is not None:
                name, doc, digest = latest
                previous = PreviousAnchor(name=name, sha256=digest)
                sequence = doc.sequence + 1
                problem = doc.root_problem()
                if problem:
                    findings.append(Finding(stream_id=None, version=None, kind="anchor_damaged",
                                            detail=f"{name}: {problem}"))
                findings += await _divergences(conn, doc.streams)
                before = {h.stream_id: h for h in doc.streams}
                changed = [h.stream_id for h in heads if before.get(h.stream_id) != h]
            else:
                changed = [h.stream_id for h in heads]
    # Streams unchanged since the last anchor and still ending at the anchored head carry the
    # anchored (already verified) history; only the others need their chains recomputed.
    if changed:
        report = await store.verify(changed if latest is not None else None)
        findings += [Finding(stream_id=p.stream_id, version=p.version, kind=p.kind,
                             detail=p.detail) for p in report.problems]
    streams_verified = len(changed)
    if findings:
        return AnchorWritten(written=False, location=None, name=None, sha256=None,
                             sequence=sequence, merkle_root=None, stream_count=len(heads),
                             previous=previous, streams_verified=streams_verified,
                             findings=findings)
    doc = AnchorDocument(format=ANCHOR_FORMAT, sequence=sequence, created_at=moment,
                         previous=previous, stream_count=len(heads),
                         merkle_root=merkle_root(heads), streams=heads)
    data = doc.to_bytes()
    name = f"anchor-{sequence:08d}-{moment.strftime('%Y%m%dT%H%M%SZ')}.json"
    location = sink.create(name, data)
    return AnchorWritten(written=True, location=location, name=name,
                         sha256=hashlib.sha256(data).hexdigest(), sequence=sequence,
                         merkle_root=doc.merkle_root, stream_count=len(heads),
                         previous=previous, streams_verified=streams_verified, findings=[])


# --- the chain of anchors ------------------------------------------------------------------


class AnchorChainReport(BaseModel):
    """``sebaya audit anchors verify``."""

    model_config = ConfigDict(frozen=True)

    location: str
    anchors_checked: int
    latest: str | None
    latest_sha256: str | None
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        return not self.findings


def _anchor_finding(name: str, kind: str, detail: str) -> Finding:
    return Finding(stream_id=None, version=None, kind=kind, detail=f"{name}: {detail}")


def verify_anchor_chain(sink: AnchorSink) -> AnchorChainReport:
    """Every anchor's own root, the chain of previous-anchor digests, gap-free sequence
    numbers, and that no stream goes backwards from one anchor to the next (a stream that
    disappears, gets shorter, or has another head at the same version)."""
    findings: list[Finding] = []
    names = sink.names()
    prev: tuple[str, AnchorDocument, str] | None = None
    for name in names:
        data = sink.read(name)
        digest = hashlib.sha256(data).hexdigest()
        try:
            doc = parse_anchor(data, name)
        except AnchorError as exc:
            findings.append(_anchor_finding(name, "anchor_unreadable", str(exc)))
            prev = None
            continue
        problem = doc.root_problem()
        if problem:
            findings.append(_anchor_finding(name, "anchor_damaged", problem))
        number = _NAME.match(name)
        if number and int(number.group(1)) != doc.sequence:
            findings.append(_anchor_finding(name, "anchor_renamed", f"the file name says "
                                            f"sequence {int(number.group(1))}, the content "
                                            f"{doc.sequence}"))
        if prev is None:
            if doc.previous is not None and name == names[0]:
                findings.append(_anchor_finding(
                    name, "anchor_chain_broken", f"names {doc.previous.name} as its previous "
                    "anchor, which is not in this location: earlier anchors were removed "
                    "(or kept elsewhere)"))
        else:
            prev_name, prev_doc, prev_digest = prev
            if doc.sequence != prev_doc.sequence + 1:
                findings.append(_anchor_finding(
                    name, "anchor_chain_broken", f"sequence {doc.sequence} follows "
                    f"{prev_doc.sequence}: an anchor is missing"))
            if doc.previous is None or doc.previous.sha256 != prev_digest:
                stated = doc.previous.sha256[:16] + "…" if doc.previous else "none"
                findings.append(_anchor_finding(
                    name, "anchor_chain_broken", f"names previous digest {stated} but "
                    f"{prev_name} has digest {prev_digest[:16]}…: the previous anchor was "
                    "edited, replaced or removed"))
            findings += _regressions(name, prev_doc, doc)
        prev = (name, doc, digest)
    latest = prev[0] if prev else None
    return AnchorChainReport(location=sink.describe(), anchors_checked=len(names),
                             latest=latest, latest_sha256=prev[2] if prev else None,
                             findings=findings)


def _regressions(name: str, before: AnchorDocument, after: AnchorDocument) -> list[Finding]:
    now = {h.stream_id: h for h in after.streams}
    out: list[Finding] = []
    for old in before.streams:
        new = now.get(old.stream_id)
        if new is None:
            detail = "is no longer anchored: it disappeared from the store"
        elif new.version < old.version:
            detail = f"went back from version {old.version} to {new.version}"
        elif new.version == old.version and new.head_hash != old.head_hash:
            detail = f"has another head hash at the same version {old.version}"
        else:
            continue
        out.append(Finding(stream_id=old.stream_id, version=old.version,
                           kind="anchor_regression", detail=f"{name}: the stream {detail}"))
    return out


def sink_for(location: Path | str) -> AnchorSink:
    """The sink for a configured location (a directory today)."""
    return DirectorySink(Path(location))
