"""Would the current workflow code replay the recorded histories of our pairings and cohorts?

Temporal's history is the log of the *process* (timers, updates, activity results); a worker
that picks up a running pairing or cohort replays it against the code it runs. Code that
decides differently from what the history recorded (a new timer, a reordered command) breaks
every running workflow of that type with a nondeterminism error. This module fetches the
histories from the server and replays them with :class:`temporalio.worker.Replayer`, before a
deploy does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from pydantic import BaseModel, ConfigDict
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from domain.ids import cohort_workflow_id, pairing_workflow_id

# Every workflow type the worker runs (``workflows.ALL_WORKFLOWS``).
DEFAULT_TYPES = ("PairingWorkflow", "CohortWorkflow")


class ReplayVerdict(BaseModel):
    """One workflow run replayed against the current code."""

    model_config = ConfigDict(frozen=True)

    workflow_id: str
    run_id: str | None
    events: int
    ok: bool
    nondeterministic: bool
    error: str | None = None


class DeterminismReport(BaseModel):
    """``sebaya audit determinism``."""

    model_config = ConfigDict(frozen=True)

    query: str | None
    checked: int
    verdicts: list[ReplayVerdict]

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts)

    @property
    def failures(self) -> list[ReplayVerdict]:
        return [v for v in self.verdicts if not v.ok]


def visibility_query(cohort_id: str | None, types: Sequence[str] = DEFAULT_TYPES,
                     running_only: bool = False) -> str:
    """The list filter: workflows of ``types``, optionally of one cohort (its own workflow
    ``cohort-<cohort>`` and its pairings ``pairing-<cohort>.<mentee>.<mentor>.<attempt>``) and
    only running ones."""
    names = ", ".join(f"'{t}'" for t in types)
    clauses = [f"WorkflowType IN ({names})"]
    if cohort_id is not None:
        ids = []
        if "PairingWorkflow" in types:
            ids.append(f"WorkflowId STARTS_WITH '{pairing_workflow_id(cohort_id + '.')}'")
        if "CohortWorkflow" in types:
            ids.append(f"WorkflowId = '{cohort_workflow_id(cohort_id)}'")
        if not ids:
            raise ValueError(f"a cohort filter needs PairingWorkflow or CohortWorkflow in "
                             f"types, got {list(types)}")
        clauses.append("(" + " OR ".join(ids) + ")")
    if running_only:
        clauses.append("ExecutionStatus = 'Running'")
    return " AND ".join(clauses)


async def fetch_histories(
    client: Client,
    *,
    cohort_id: str | None = None,
    workflow_id: str | None = None,
    types: Sequence[str] = DEFAULT_TYPES,
    running_only: bool = False,
) -> tuple[str | None, list[WorkflowHistory]]:
    """The histories to replay: one workflow's latest run, or every run the visibility query
    lists. Returns the query used (``None`` for a single workflow) and the histories."""
    if workflow_id is not None:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        return None, [history]
    query = visibility_query(cohort_id, types, running_only)
    histories = [history async for history in client.list_workflows(query).map_histories()]
    return query, histories


async def replay_histories(
    histories: Sequence[WorkflowHistory],
    *,
    workflows: Sequence[type] | None = None,
    data_converter: DataConverter = pydantic_data_converter,
    query: str | None = None,
) -> DeterminismReport:
    """Replay ``histories`` against ``workflows`` (default: the worker's
    ``workflows.ALL_WORKFLOWS``) and report each run."""
    if workflows is None:
        from workflows import ALL_WORKFLOWS

        workflows = ALL_WORKFLOWS
    replayer = Replayer(workflows=list(workflows), data_converter=data_converter)

    async def each() -> AsyncIterator[WorkflowHistory]:
        for history in histories:
            yield history

    verdicts = []
    if histories:
        async with replayer.workflow_replay_iterator(each()) as results:
            async for result in results:
                history, failure = result.history, result.replay_failure
                verdicts.append(ReplayVerdict(
                    workflow_id=history.workflow_id, run_id=history.run_id or None,
                    events=len(history.events), ok=failure is None,
                    nondeterministic=isinstance(failure, NondeterminismError),
                    error=None if failure is None else f"{type(failure).__name__}: {failure}",
                ))
    return DeterminismReport(query=query, checked=len(verdicts), verdicts=verdicts)


async def check_determinism(
    client: Client,
    *,
    cohort_id: str | None = None,
    workflow_id: str | None = None,
    workflows: Sequence[type] | None = None,
    types: Sequence[str] = DEFAULT_TYPES,
    running_only: bool = False,
) -> DeterminismReport:
    """Fetch the workflows' histories from Temporal and replay them against ``workflows``."""
    query, histories = await fetch_histories(client, cohort_id=cohort_id,
                                             workflow_id=workflow_id, types=types,
                                             running_only=running_only)
    return await replay_histories(histories, workflows=workflows,
                                  data_converter=client.data_converter, query=query)
