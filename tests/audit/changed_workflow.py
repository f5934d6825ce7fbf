"""A careless change to PairingWorkflow, for the determinism check: the same workflow type
name, but the new code waits a minute before its first decision ("give ops time to look").
Pairings already running did not, so their histories must refuse to replay.

Its own module, free of import-time side effects: the sandbox re-imports workflow modules.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.pairing import PairingInput, PairingOutcome, PairingWorkflow


@workflow.defn(name="PairingWorkflow")
class SlowStartPairingWorkflow(PairingWorkflow):
    @workflow.run
    async def run(self, inp: PairingInput) -> PairingOutcome:
        await workflow.sleep(timedelta(minutes=1))
        return await super().run(inp)
