"""The ``pairing_view`` row of a pairing, computed from its folded :class:`PairingState`.

Pure: the projector writes these values, and ``audit replay`` recomputes them from a fresh
fold of the stream and compares them with what the projector wrote, so both sides use this one
function and a drift between them can only mean the stored row is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from domain.events import Side
from domain.pairing import PairingState
from projections.pairing_fold import PairingFold

#: Fixed by the match (version 1): written when the row is created, never updated.
CONSTANT_COLUMNS: tuple[str, ...] = (
    "pairing_id", "cohort_id", "mentor_id", "mentee_id", "started_at", "goal_deadline_at",
    "midpoint_opens_at", "program_ends_at", "rematch_of", "match_score", "cross_functional",
)
#: Everything else a later event may change.
MUTABLE_COLUMNS: tuple[str, ...] = (
    "phase", "ended_at", "goals_set_mentor", "goals_set_mentee", "goals", "goal_progress",
    "meetings_held", "meetings_missed", "consecutive_missed", "minutes_met",
    "last_meeting_at", "next_meeting_no", "next_meeting_at",
    "nudged", "escalated", "escalations", "goals_overdue",
    "midpoint", "midpoint_closed", "final",
    "exit_reason", "exit_initiated_by", "exit_phase", "leaving_employee_id",
    "topics_covered", "stream_version", "last_event_at",
)
#: Column order of :func:`pairing_values` (constants first, then the rest).
PAIRING_COLUMNS: tuple[str, ...] = CONSTANT_COLUMNS + MUTABLE_COLUMNS
#: Columns of type jsonb (values are JSON texts in :func:`pairing_values`).
JSON_COLUMNS: frozenset[str] = frozenset({
    "goals", "goal_progress", "midpoint", "final", "topics_covered",
})

_SIDES = (Side.MENTEE, Side.MENTOR)

#: A folded pairing: the domain's model (``audit replay``), or the projector's own fold.
Folded = PairingState | PairingFold


class RowMemo:
    """What :func:`pairing_values` can reuse between calls for one pairing: the constant
    columns, and the JSON text of each jsonb column with the object it was rendered from."""

    __slots__ = ("constants", "json")

    def __init__(self) -> None:
        self.constants: tuple[Any, ...] | None = None
        self.json: dict[str, tuple[object, str]] = {}


def cross_functional_of(explanation: Mapping[str, Any]) -> bool | None:
    """Whether the matcher counted the pair as cross-functional (different departments), from
    ``PairingMatched.explanation``; ``None`` when the explanation does not say."""
    component = explanation.get("cross_functional")
    if isinstance(component, Mapping):
        value = component.get("value")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value > 0
    elif isinstance(component, bool):
        return component
    return None


# One encoder for every call (json.dumps() with options builds a new one each time). Keys are
# not sorted: jsonb keeps its own order, so the stored value is the same either way.
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _goals(goals: Mapping[Side, Any]) -> dict[str, Any]:
    return {side.value: [goal.model_dump(mode="json") for goal in goals[side]]
            for side in _SIDES if side in goals}


def _midpoint(reviews: Mapping[Side, Any]) -> dict[str, Any]:
    return {
        side.value: {
            "satisfaction": r.satisfaction,
            "wants_to_continue": r.wants_to_continue,
            "goal_progress": dict(r.goal_progress),
        }
        for side in _SIDES if (r := reviews.get(side)) is not None
    }


def _final(evaluations: Mapping[Side, Any]) -> dict[str, Any]:
    return {
        side.value: {
            "goal_attainment": dict(f.goal_attainment),
            "relationship_rating": f.relationship_rating,
            "program_rating": f.program_rating,
            "learned": f.learned,
            "would_recommend": f.would_recommend,
        }
        for side in _SIDES if (f := evaluations.get(side)) is not None
    }


def _json(memo: dict[str, tuple[object, str]] | None, key: str, source: Any,
          render: Callable[[Any], Any]) -> str:
    # evolve() copies the state but keeps every untouched field's object, so an identical
    # object means an identical JSON text: most batches re-render nothing.
    if memo is not None:
        cached = memo.get(key)
        if cached is not None and cached[0] is source:
            return cached[1]
    text = _dumps(render(source))
    if memo is not None:
        memo[key] = (source, text)
    return text


def pairing_constants(state: Folded, *, cross_functional: bool | None
                      ) -> tuple[Any, ...]:
    """The :data:`CONSTANT_COLUMNS` values of a started pairing."""
    rules = state.rules
    started = state.started_at
    if rules is None or started is None:
        raise ValueError(f"pairing {state.pairing_id or '?'} has not started: no row yet")
    return (state.pairing_id, state.cohort_id, state.mentor_id, state.mentee_id, started,
            rules.goal_deadline(started), rules.midpoint_opens(started),
            rules.program_end(started), state.rematch_of, state.match_score, cross_functional)


def mutable_values(state: Folded, *, last_event_at: datetime,
                   memo: RowMemo | None = None) -> tuple[Any, ...]:
    """The :data:`MUTABLE_COLUMNS` values; jsonb columns as JSON text. ``memo`` (one per
    pairing, kept by the caller) skips re-rendering unchanged jsonb columns."""
    jmemo = memo.json if memo is not None else None
    pending = state.next_meeting
    exit_ = state.exit
    goals = state.goals
    return (
        state.phase.value,
        state.completed_at or (exit_.exited_at if exit_ is not None else None),
        Side.MENTOR in goals,
        Side.MENTEE in goals,
        _json(jmemo, "goals", goals, _goals),
        _json(jmemo, "goal_progress", state.goal_progress, dict),
        state.meetings_held,
        state.meetings_missed,
        state.consecutive_missed,
        state.minutes_met,
        # last_activity_at is max(held_at) once a meeting was held (else the start).
        state.last_activity_at if state.meetings_held else None,
        pending.meeting_no if pending is not None else None,
        pending.scheduled_at if pending is not None else None,
        state.nudged,
        state.escalated,
        state.escalations,
        state.goals_overdue,
        _json(jmemo, "midpoint", state.midpoint_reviews, _midpoint),
        state.midpoint_closed,
        _json(jmemo, "final", state.final_evaluations, _final),
        exit_.reason.value if exit_ is not None else None,
        exit_.initiated_by.value if exit_ is not None else None,
        exit_.phase_at_exit if exit_ is not None else None,
        exit_.leaving_employee_id if exit_ is not None else None,
        _json(jmemo, "topics_covered", state.topics_covered, dict),
        state.version,
        last_event_at,
    )


def pairing_values(
    state: PairingState,
    *,
    cross_functional: bool | None,
    last_event_at: datetime,
    memo: RowMemo | None = None,
) -> tuple[Any, ...]:
    """The whole row in :data:`PAIRING_COLUMNS` order; jsonb columns as JSON text."""
    constants = memo.constants if memo is not None else None
    if constants is None:
        constants = pairing_constants(state, cross_functional=cross_functional)
        if memo is not None:
            memo.constants = constants
    return constants + mutable_values(state, last_event_at=last_event_at, memo=memo)


def pairing_record(
    state: PairingState, *, cross_functional: bool | None, last_event_at: datetime
) -> dict[str, Any]:
    """:func:`pairing_values` as ``{column: value}`` with jsonb columns parsed (for
    comparing with a row read back from ``pairing_view``)."""
    values = pairing_values(state, cross_functional=cross_functional,
                            last_event_at=last_event_at)
    return {
        column: json.loads(value) if column in JSON_COLUMNS else value
        for column, value in zip(PAIRING_COLUMNS, values, strict=True)
    }
