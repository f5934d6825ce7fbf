"""A real CohortWorkflow (manual approval with a swap, two pairings, both exited) and what the
audit trail and read models make of the streams it leaves."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from adapters.roster import register_cohort
from audit.bundle import export_bundle, verify_bundle
from audit.determinism import check_determinism
from audit.history import pairing_history
from audit.replay import replay_pairing
from audit.verify import verify
from domain import commands as c
from domain import events as e
from domain.cohort import ApproveProposal, CohortPhase, CohortState
from domain.ids import cohort_workflow_id, pairing_workflow_id
from domain.people import Person, Role
from domain.program import Approval
from eventstore import EventStore
from intake import load_program
from projections import Projector
from projections.queries import cohort_status
from tests.projections.views import past_horizon
from tests.workflows.altered import DelayedMatchingCohortWorkflow
from tests.workflows.harness import advance_to, running_worker, started_state, store_for
from workflows.cohort import CohortInput, CohortWorkflow
from workflows.pairing import PairingWorkflow

pytestmark = pytest.mark.temporal
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def person(eid: str, role: Role, dept: str, hired: date) -> Person:
    return Person(employee_id=eid, name=f"Orang {eid}", email=f"{eid.lower()}@example.co.id",
                  role=role, level=4 if role is Role.MENTOR else 3, department=dept,
                  hire_date=hired, timezone="Asia/Jakarta",
                  capacity=1 if role is Role.MENTOR else 0)


async def wait_for(handle: Any, check: Any) -> CohortState:
    for _ in range(400):
        state: CohortState = await handle.query(CohortWorkflow.state)
        if check(state):
            return state
        await asyncio.sleep(0.05)  # real-time poll for the worker's progress
    raise AssertionError(f"cohort stuck in {state.phase}")


async def test_audit_trail_of_a_real_cohort(
    temporal_env: Any, db_pool: asyncpg.Pool, task_queue: str, tmp_path: Path
) -> None:
    program = load_program(EXAMPLES / "program.yaml").model_copy(
        update={"approval": Approval.MANUAL})
    people = [person("M1", Role.MENTOR, "Engineering", date(2018, 1, 1)),
              person("M2", Role.MENTOR, "Finance", date(2019, 1, 1)),
              person("E1", Role.MENTEE, "Sales", date(2026, 10, 1)),
              person("E2", Role.MENTEE, "HR", date(2026, 9, 1))]
    store: EventStore = store_for(db_pool)
    cohort_id = f"C{uuid.uuid4().hex[:6]}"
    env = temporal_env
    async with running_worker(env.client, db_pool, task_queue):
        digest = await register_cohort(db_pool, cohort_id, program, people)
        handle = await env.client.start_workflow(
            CohortWorkflow.run,
            CohortInput(cohort_id=cohort_id, program=program, people_digest=digest, mentors=2,
                        mentees=2, task_queue=task_queue,
                        members={p.employee_id: p.role.value for p in people}),
            id=cohort_workflow_id(cohort_id), task_queue=task_queue)
        state = await wait_for(handle, lambda s: s.phase is CohortPhase.AWAITING_APPROVAL)
        pairs = sorted((p.mentor, p.mentee) for p in state.proposal)
        await handle.execute_update(CohortWorkflow.approve, ApproveProposal(
            approved_by="ops-ani", swap=((pairs[0], pairs[1]),)))
        state = await handle.query(CohortWorkflow.state)
        await advance_to(env, handle, state.starts_at + timedelta(minutes=1))
        state = await wait_for(handle, lambda s: s.launched == 2)
        pairing_ids = sorted(state.active)
        for pairing_id in pairing_ids:
            h = env.client.get_workflow_handle_for(PairingWorkflow.run,
                                                   pairing_workflow_id(pairing_id))
            await advance_to(env, h, state.starts_at + timedelta(days=1))
            await started_state(h)
            await h.execute_update(PairingWorkflow.request_exit, c.RequestExit(
                actor=c.Actor.ops("ops-ani"), reason=e.ExitReason.INACTIVITY))
        await handle.result()

    # Would a deploy break this cohort? By default the check replays the cohort's own
    # workflow and its pairings (visibility is eventually consistent: wait for all three).
    for _ in range(100):
        replayed = await check_determinism(env.client, cohort_id=cohort_id)
        if replayed.checked == 3:
            break
        await asyncio.sleep(0.1)  # real-time poll of the visibility store
    assert replayed.ok and replayed.checked == 3, replayed.failures
    assert {v.workflow_id for v in replayed.verdicts} == {
        cohort_workflow_id(cohort_id), *(pairing_workflow_id(p) for p in pairing_ids)}
    changed = await check_determinism(
        env.client, cohort_id=cohort_id, types=("CohortWorkflow",),
        workflows=[DelayedMatchingCohortWorkflow])
    assert changed.checked == 1 and changed.verdicts[0].nondeterministic

    # Has anyone altered the record? The cohort's stream and both pairings verify.
    checked = await verify(store, cohort=cohort_id)
    assert checked.ok and checked.streams_checked == 3

    # Why was the pair matched: the run that proposed it (digest, algorithm version) and
    # the operator's swap that made this very pair.
    history = await pairing_history(store, pairing_ids[0])
    match = history.match
    assert match is not None and match.run_id is not None
    assert match.input_digest and match.algorithm_version
    assert match.approved_by is not None and "ops-ani" in match.approved_by
    swapped = [h for h in [history, await pairing_history(store, pairing_ids[1])]
               if h.match is not None and h.match.adjustments]
    assert swapped and all(h.match is not None and h.match.proposed_score is None
                           and "added by ops-ani (swap" in h.match.adjustments[0]
                           for h in swapped)
    assert history.timeline[-1].type == "PairingExited"

    await past_horizon(db_pool)
    await Projector(store).catch_up()
    for pairing_id in pairing_ids:
        replayed = await replay_pairing(store, pairing_id)
        assert replayed.consistent, replayed.comparisons
    status = await cohort_status(db_pool, cohort_id)
    assert status is not None
    assert status.phase == "completed" and status.by_phase == {"exited": 2}
    assert status.launched == 2 and status.program_name == program.name
    row = await db_pool.fetchrow("SELECT match_runs::text AS runs FROM cohort_view "
                                 "WHERE cohort_id = $1", cohort_id)
    (run,) = json.loads(row["runs"])
    assert run["adjustments"] == 1 and "ops-ani" in (run["approved_by"] or "")

    await export_bundle(store, cohort_id, tmp_path)
    assert verify_bundle(tmp_path).ok
