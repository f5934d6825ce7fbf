"""Deliberately non-deterministic changes to the workflows, for the replay tests.

Kept in its own module: workflow modules must be free of import-time side effects because the
sandbox re-imports them for every run.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.cohort import CohortInput, CohortResult, CohortWorkflow
    from workflows.pairing import PairingInput, PairingOutcome, PairingWorkflow


@workflow.defn(name="PairingWorkflow")
class ReorderedPairingWorkflow(PairingWorkflow):
    """A careless change: a new timer before the first decision ("wait an hour before telling
    the pair"). Pairings already running did not do this, so their histories must refuse to
    replay."""

    @workflow.run
    async def run(self, inp: PairingInput) -> PairingOutcome:
        await workflow.sleep(timedelta(hours=1))
        return await super().run(inp)


@workflow.defn(name="CohortWorkflow")
class DelayedMatchingCohortWorkflow(CohortWorkflow):
    """A careless change to the cohort: "give HR an hour to fix the roster" before anything is
    recorded. Cohorts already running did not wait, so their histories must refuse to
    replay."""

    @workflow.run
    async def run(self, inp: CohortInput) -> CohortResult:
        await workflow.sleep(timedelta(hours=1))
        return await super().run(inp)
