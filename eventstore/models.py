"""The store's value types. Pure pydantic: safe to import inside Temporal workflows, and
serialisable by the pydantic data converter (events travel from workflows to the append
activity as :class:`NewEvent`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, computed_field, field_validator

from eventstore.hashing import canonical_json, canonical_timestamp, encode_json_string

MAX_STREAM_ID_LENGTH = 200
MAX_TYPE_LENGTH = 200


class Position(NamedTuple):
    """A place in the global order. Compared as the tuple ``(tx_id, global_position)``:
    transaction id first, because that is what makes the order safe for readers (see
    ``docs/adr/0001-global-order.md``)."""

    tx_id: int
    global_position: int

    @classmethod
    def start(cls) -> Position:
        """Before every event."""
        return cls(0, 0)


class EventMetadata(BaseModel):
    """Who caused an event, when it happened in domain time, and which workflow wrote it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    actor: str = Field(min_length=1, max_length=200)
    occurred_at: AwareDatetime
    workflow_id: str | None = None
    run_id: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None

    @field_validator("occurred_at")
    @classmethod
    def _in_utc(cls, moment: datetime) -> datetime:
        # One representation in memory, in storage and in the hash: an event read back
        # compares equal, field by field, to the one appended.
        return moment.astimezone(UTC)

    def to_document(self) -> dict[str, str]:
        """The JSON object stored in ``events.metadata`` and hashed.

        Unset (``None``) fields are left out so that adding an optional field later does not
        change the hash of events written before it existed.
        """
        document = {"actor": self.actor, "occurred_at": canonical_timestamp(self.occurred_at)}
        for name in ("workflow_id", "run_id", "correlation_id", "causation_id"):
            value = getattr(self, name)
            if value is not None:
                document[name] = value
        return document

    def canonical_json(self) -> str:
        """``canonical_json(self.to_document())``, spelled out because it runs for every
        appended event (tests hold the two equal)."""
        # Keys in code point order; actor and occurred_at are always set.
        text = '{"actor":' + encode_json_string(self.actor)
        if self.causation_id is not None:
            text += ',"causation_id":' + encode_json_string(self.causation_id)
        if self.correlation_id is not None:
            text += ',"correlation_id":' + encode_json_string(self.correlation_id)
        text += ',"occurred_at":"' + canonical_timestamp(self.occurred_at) + '"'
        if self.run_id is not None:
            text += ',"run_id":' + encode_json_string(self.run_id)
        if self.workflow_id is not None:
            text += ',"workflow_id":' + encode_json_string(self.workflow_id)
        text += "}"
        if "\\u0000" in text or not text.isascii():
            # Rare: let the general encoder refuse U+0000 (escaped as \u0000 by now) and lone
            # surrogates; an innocent literal "\u0000" also lands here and encodes the same.
            return canonical_json(self.to_document())
        return text


class NewEvent(BaseModel):
    """An event to append. ``event_id`` is chosen by the caller (deterministically inside
    workflows) and is what makes a retried append recognisable."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: UUID
    type: str = Field(min_length=1, max_length=MAX_TYPE_LENGTH)
    schema_version: int = Field(default=1, ge=1)
    payload: dict[str, Any]
    metadata: EventMetadata


class RecordedEvent(BaseModel):
    """An event as stored: its place in its stream and in the global order, and its link in
    the stream's hash chain."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    global_position: int
    tx_id: int
    stream_id: str
    version: int
    event_id: UUID
    type: str
    schema_version: int
    payload: dict[str, Any]
    metadata: EventMetadata
    recorded_at: datetime
    prev_hash: str
    hash: str

    @property
    def position(self) -> Position:
        """Where this event sits in the global order."""
        return Position(self.tx_id, self.global_position)


class AppendResult(BaseModel):
    """What an append wrote, or, for a recognised retry, what the original append wrote."""

    model_config = ConfigDict(frozen=True)

    stream_id: str
    first_version: int
    last_version: int
    positions: list[Position]
    idempotent_replay: bool = False


ProblemKind = Literal[
    "hash_mismatch",  # the row's content no longer produces its stored hash: edited
    "prev_hash_mismatch",  # the row does not link to the previous version's hash
    "version_gap",  # versions are not 1..n without holes: deleted or renumbered rows
    "position_order",  # global order disagrees with version order: rows swapped or forged
    "head_mismatch",  # the streams table disagrees with the last event: truncated or forged
    "missing_stream_row",  # events exist for a stream the streams table does not know
    "occurred_at_mismatch",  # the indexed occurred_at column disagrees with the metadata
    "malformed_row",  # stored JSON that cannot even be hashed (not canonicalisable)
]


class ChainProblem(BaseModel):
    """One finding of :meth:`EventStore.verify`."""

    model_config = ConfigDict(frozen=True)

    stream_id: str
    version: int | None
    kind: ProblemKind
    detail: str


class VerifyReport(BaseModel):
    """Outcome of a hash-chain verification."""

    model_config = ConfigDict(frozen=True)

    problems: list[ChainProblem]
    streams_checked: int
    events_checked: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems
