"""Committed histories must replay on the current workflow code.

``tests/histories/*.json`` were recorded from real runs (SEBAYA_RECORD_HISTORIES=1 pytest
tests/workflows): pairings, and cohorts (``cohort_*``, from tests/workflows/
test_cohort_histories.py; ``cohort_v1_*`` predate the cohort's decide/validator pattern). A
change to PairingWorkflow or CohortWorkflow that would alter the commands of a running
workflow makes this test fail; such a change belongs behind ``workflow.patched()``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from tests.workflows.altered import DelayedMatchingCohortWorkflow, ReorderedPairingWorkflow
from workflows import ALL_WORKFLOWS

HISTORIES = sorted((Path(__file__).resolve().parents[1] / "histories").glob("*.json"))
COHORT_HISTORIES = [p for p in HISTORIES if p.stem.startswith("cohort_")]
PAIRING_HISTORIES = [p for p in HISTORIES if not p.stem.startswith("cohort_")]


def _load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def test_histories_are_committed() -> None:
    names = {p.stem for p in PAIRING_HISTORIES}
    assert "six_month_weekly_completed" in names
    # Each generation of the pairing workflow keeps its six-month history next to the others.
    for generation in ("", "_one_timer", "_milestone"):
        assert f"six_month_weekly_completed{generation}" in names, names
    assert len(names) >= 5, names
    scenarios = ("auto_approve_completed", "manual_drop_swap", "exit_rematch",
                 "participant_left")
    cohorts = {p.stem for p in COHORT_HISTORIES}
    for generation in ("v1", "v2"):
        assert {f"cohort_{generation}_{s}" for s in scenarios} <= cohorts, cohorts


def test_a_pairing_publishes_its_search_attributes_per_stage_not_per_week() -> None:
    """ADR 0006: six months of weekly meetings, at most one upsert per stage of the program
    (started, goals set, mid-point opened and closed, final evaluation, closed) plus one per
    patch marker (the SDK's TemporalChangeVersion), where the weekly SebayaNextDue took ~58."""
    history = _load(next(p for p in PAIRING_HISTORIES
                         if p.stem == "six_month_weekly_completed_milestone"))
    upserts = [ev for ev in history.events
               if ev.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES]
    meetings = [ev for ev in history.events
                if ev.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED]
    assert len(meetings) > 25
    assert len(upserts) <= 10, len(upserts)


@pytest.mark.parametrize("path", PAIRING_HISTORIES, ids=[p.stem for p in PAIRING_HISTORIES])
async def test_committed_history_replays(path: Path) -> None:
    replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(_load(path), raise_on_replay_failure=True)
    assert result.replay_failure is None


@pytest.mark.parametrize("path", COHORT_HISTORIES, ids=[p.stem for p in COHORT_HISTORIES])
async def test_committed_cohort_history_replays(path: Path) -> None:
    replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(_load(path), raise_on_replay_failure=True)
    assert result.replay_failure is None


async def test_an_altered_workflow_fails_with_nondeterminism() -> None:
    replayer = Replayer(workflows=[ReorderedPairingWorkflow],
                        data_converter=pydantic_data_converter)
    history = _load(next(p for p in HISTORIES if p.stem == "six_month_weekly_completed"))
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(history)


@pytest.mark.parametrize("path", COHORT_HISTORIES, ids=[p.stem for p in COHORT_HISTORIES])
async def test_an_altered_cohort_workflow_fails_with_nondeterminism(path: Path) -> None:
    replayer = Replayer(workflows=[DelayedMatchingCohortWorkflow],
                        data_converter=pydantic_data_converter)
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(_load(path))
