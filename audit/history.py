"""What happened to a pairing, in what order, who did it, and why the pair was matched:
answered from the event store alone (the pairing's stream and its cohort's stream)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from audit.summaries import summarize
from domain import cohort_events as ce
from domain import events as e
from domain.ids import cohort_stream, pairing_stream
from eventstore import EventRegistry, EventStore, RecordedEvent


class PairingNotFound(LookupError):
    """The store holds no event for this pairing."""

    def __init__(self, pairing_id: str) -> None:
        super().__init__(f"no events for pairing {pairing_id!r} (stream "
                         f"{pairing_stream(pairing_id)!r} is empty or does not exist)")
        self.pairing_id = pairing_id


class TimelineEntry(BaseModel):
    """One event of the pairing's stream: when (domain time, and when it was recorded),
    which version, what, who, and which workflow run and update wrote it."""

    model_config = ConfigDict(frozen=True)

    version: int
    occurred_at: datetime
    recorded_at: datetime
    type: str
    actor: str
    summary: str
    event_id: UUID
    workflow_id: str | None = None
    run_id: str | None = None
    causation_id: str | None = None


class MatchProvenance(BaseModel):
    """Why this mentor and this mentee: the score and explanation the pairing started with,
    and the recorded match run (and approval) that proposed the pair, if the cohort's stream
    has one."""

    model_config = ConfigDict(frozen=True)

    score: float
    explanation: dict[str, Any]
    rematch_of: str | None
    matched_by: str
    matched_at: datetime
    run_id: str | None = None
    run_kind: str | None = None
    run_recorded_at: datetime | None = None
    input_digest: str | None = None
    algorithm_version: str | None = None
    policy: dict[str, Any] | None = None
    proposed_score: float | None = None
    """The run's score for this pair; ``None`` when an adjustment, not the run, made it."""
    approved_by: str | None = None
    approved_at: datetime | None = None
    adjustments: list[str] = []
    launched_at: datetime | None = None


class PairingHistory(BaseModel):
    """``sebaya audit history``."""

    model_config = ConfigDict(frozen=True)

    pairing_id: str
    stream_id: str
    cohort_id: str | None
    mentor_id: str | None
    mentee_id: str | None
    timeline: list[TimelineEntry]
    match: MatchProvenance | None
    last_version: int


def _entry(record: RecordedEvent, event: Any) -> TimelineEntry:
    meta = record.metadata
    return TimelineEntry(
        version=record.version, occurred_at=meta.occurred_at, recorded_at=record.recorded_at,
        type=record.type, actor=meta.actor, summary=summarize(event) if event else record.type,
        event_id=record.event_id, workflow_id=meta.workflow_id, run_id=meta.run_id,
        causation_id=meta.causation_id,
    )


def require_registry(store: EventStore) -> EventRegistry:
    """The registry the store was opened with: auditors read events as the domain defines
    them, older schema versions upcast, so a store without one is a wiring mistake."""
    if store.registry is None:
        raise ValueError("audit tools need an EventStore opened with the event registry "
                         "(sebaya.bootstrap.build_registry)")
    return store.registry


async def pairing_history(store: EventStore, pairing_id: str) -> PairingHistory:
    """The pairing's timeline and match provenance. Raises :class:`PairingNotFound`."""
    registry = require_registry(store)
    records = await store.read_stream(pairing_stream(pairing_id))
    if not records:
        raise PairingNotFound(pairing_id)
    timeline = []
    matched: tuple[RecordedEvent, e.PairingMatched] | None = None
    for record in records:
        event = registry.decode(record)
        timeline.append(_entry(record, event))
        if isinstance(event, e.PairingMatched) and matched is None:
            matched = (record, event)
    match = None
    if matched is not None:
        match = await _provenance(store, registry, pairing_id, *matched)
    first = matched[1] if matched else None
    return PairingHistory(
        pairing_id=pairing_id,
        stream_id=pairing_stream(pairing_id),
        cohort_id=first.cohort_id if first else None,
        mentor_id=first.mentor_id if first else None,
        mentee_id=first.mentee_id if first else None,
        timeline=timeline,
        match=match,
        last_version=records[-1].version,
    )


async def _provenance(store: EventStore, registry: Any, pairing_id: str,
                      record: RecordedEvent, matched: e.PairingMatched) -> MatchProvenance:
    pair = (matched.mentor_id, matched.mentee_id)
    runs: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    approvals: dict[str, tuple[str, datetime]] = {}
    adjustments: list[str] = []
    adjusted_into: str | None = None  # the run whose proposal an operator changed into this pair
    launched: tuple[int, datetime] | None = None
    for cohort_record in await store.read_stream(cohort_stream(matched.cohort_id)):
        event = registry.decode(cohort_record)
        at = cohort_record.metadata.occurred_at
        if isinstance(event, ce.MatchRunRecorded):
            runs[event.run_id] = {"event": event, "at": at, "version": cohort_record.version,
                                  "pairs": {(p.mentor, p.mentee): p.score for p in event.pairs}}
            order.append(event.run_id)
        elif isinstance(event, ce.MatchRunContinued) and event.run_id in runs:
            runs[event.run_id]["pairs"].update({(p.mentor, p.mentee): p.score
                                                for p in event.pairs})
        elif isinstance(event, ce.ProposalApproved):
            approvals[event.run_id] = (event.approved_by, at)
        elif isinstance(event, ce.ProposalAdjusted):
            before = {(p.mentor, p.mentee) for p in event.pairs_before}
            after = {(p.mentor, p.mentee) for p in event.pairs_after}
            if pair in after - before:
                adjustments.append(f"added by {event.adjusted_by} ({event.action}, "
                                   f"cohort version {cohort_record.version})")
                # An adjustment changes the proposal on the table: the latest run's.
                adjusted_into = order[-1] if order else None
            elif pair in before - after:
                adjustments.append(f"removed by {event.adjusted_by} ({event.action}, "
                                   f"cohort version {cohort_record.version})")
        elif isinstance(event, ce.PairingLaunched) and event.pairing_id == pairing_id:
            launched = (cohort_record.version, at)
    # The run that proposed this pair: the latest one recorded before the launch; failing
    # that, the run whose proposal an operator adjusted into this pair.
    chosen = None
    for run_id in reversed(order):
        run = runs[run_id]
        if pair in run["pairs"] and (launched is None or run["version"] < launched[0]):
            chosen = run
            break
    if chosen is None and adjusted_into is not None:
        chosen = runs[adjusted_into]
    provenance: dict[str, Any] = {
        "score": matched.match_score, "explanation": dict(matched.explanation),
        "rematch_of": matched.rematch_of, "matched_by": record.metadata.actor,
        "matched_at": record.metadata.occurred_at, "adjustments": adjustments,
        "launched_at": launched[1] if launched else None,
    }
    if chosen is not None:
        run_event: ce.MatchRunRecorded = chosen["event"]
        approval = approvals.get(run_event.run_id)
        provenance.update(
            run_id=run_event.run_id, run_kind=run_event.kind, run_recorded_at=chosen["at"],
            input_digest=run_event.input_digest, algorithm_version=run_event.algorithm_version,
            policy=dict(run_event.policy), proposed_score=chosen["pairs"].get(pair),
            approved_by=approval[0] if approval else None,
            approved_at=approval[1] if approval else None,
        )
    return MatchProvenance(**provenance)
