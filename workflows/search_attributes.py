"""Search attributes on the pairing and cohort workflows, so operations can find them in the
Temporal Web UI (or ``temporal workflow list --query``): "pairings of cohort X at risk".

Ids and states only, never names: search attributes are stored in Temporal's visibility
store, which is not where personal data lives. The server must know each attribute before a
workflow sets it (``SEARCH_ATTRIBUTES`` is what the dev server, the tests' dev server and the
compose setup register); a workflow setting an unknown one fails its task until it is added.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow
from temporalio.common import (
    SearchAttributeIndexedValueType,
    SearchAttributeKey,
    SearchAttributeUpdate,
)

from domain import cohort as co
from domain.pairing import PairingState, next_due, next_milestone

COHORT_ID = SearchAttributeKey.for_keyword("SebayaCohortId")
# A pairing's phase (goal_setting, active, ...) or a cohort's (matching, running, ...); the
# workflow type tells which.
PHASE = SearchAttributeKey.for_keyword("SebayaPhase")
AT_RISK = SearchAttributeKey.for_bool("SebayaAtRisk")
NEXT_DUE = SearchAttributeKey.for_datetime("SebayaNextDue")

SEARCH_ATTRIBUTES: tuple[SearchAttributeKey[str] | SearchAttributeKey[bool]
                         | SearchAttributeKey[datetime], ...] = (
    COHORT_ID, PHASE, AT_RISK, NEXT_DUE)

# Added after the first release: workflows already running keep deciding as they did.
PATCH_ID = "search-attributes"
# A pairing's SebayaNextDue is the end of the stage it is in (``next_milestone``), not its next
# reminder: published a few times per pairing instead of once a week, each an upsert event in
# its history (ADR 0006). Pairings recorded before keep publishing ``next_due``.
MILESTONE_PATCH = "pairing-next-due-is-the-stage-end"


def server_args() -> list[str]:
    """``temporal server start-dev`` arguments that register every attribute."""
    args: list[str] = []
    for name, kind in server_types().items():
        args += ["--search-attribute", f"{name}={kind}"]
    return args


def server_types() -> dict[str, str]:
    """Attribute name -> type as the server and ``temporal operator`` spell it."""
    kinds = {
        SearchAttributeIndexedValueType.KEYWORD: "Keyword",
        SearchAttributeIndexedValueType.BOOL: "Bool",
        SearchAttributeIndexedValueType.DATETIME: "Datetime",
    }
    return {key.name: kinds[key.indexed_value_type] for key in SEARCH_ATTRIBUTES}


def at_risk(state: PairingState) -> bool:
    """An open pairing whose last scheduled meeting(s) were missed, not yet made up by a held
    meeting (the escalation ladder's nudge and escalation follow from such a streak). The same
    rule as the missed-meeting reason of ``sebaya cohort status``."""
    return not state.is_closed and (state.consecutive_missed > 0 or state.escalated)


def upsert_for_pairing(state: PairingState) -> None:
    """Call after each change of a pairing's state, inside the workflow."""
    if not state.cohort_id:
        return  # not started yet: nothing to find it by
    if workflow.patched(MILESTONE_PATCH):
        due = next_milestone(state)
    else:
        due = next_due(state) if not state.is_closed else None
    _upsert([
        COHORT_ID.value_set(state.cohort_id),
        PHASE.value_set(state.phase.value),
        AT_RISK.value_set(at_risk(state)),
        _due(due),
    ])


def upsert_for_cohort(state: co.CohortState) -> None:
    """Call after each change of a cohort's state, inside the workflow."""
    if not state.cohort_id:
        return
    done = state.phase is co.CohortPhase.COMPLETED
    _upsert([
        COHORT_ID.value_set(state.cohort_id),
        PHASE.value_set(state.phase.value),
        _due(co.next_due(state) if not done else None),
    ])


def _due(at: datetime | None) -> SearchAttributeUpdate[datetime]:
    return NEXT_DUE.value_unset() if at is None else NEXT_DUE.value_set(at)


def _upsert(updates: list[SearchAttributeUpdate]) -> None:
    # Only what changed: each upsert is an event in the workflow's history.
    current = workflow.info().typed_search_attributes
    changed = [u for u in updates if current.get(u.key) != u.value]
    if changed and workflow.patched(PATCH_ID):
        workflow.upsert_search_attributes(changed)
