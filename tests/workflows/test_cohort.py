"""CohortWorkflow on the real dev server and real Postgres: match, approve, launch, exit and
rematch with a new partner, a departure, completion."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from adapters.roster import register_cohort
from domain import commands as c
from domain import events as e
from domain.cohort import CohortPhase, CohortState
from domain.cohort_commands import ApproveProposal, RecordParticipantLeft
from domain.ids import cohort_stream, cohort_workflow_id, pairing_workflow_id
from domain.people import Person, Role
from domain.program import Approval, ProgramSpec
from intake import load_people, load_program
from sebaya.settings import get_settings
from tests.audit.cli import output_json, sebaya
from tests.workflows.harness import advance_to, running_worker, started_state, store_for
from workflows.cohort import CohortInput, CohortWorkflow
from workflows.pairing import PairingWorkflow

pytestmark = pytest.mark.temporal
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def start_cohort(client: Any, pool: asyncpg.Pool, task_queue: str, program: ProgramSpec,
                       people: list[Person]) -> WorkflowHandle[CohortWorkflow, Any]:
    cohort_id = f"C{uuid.uuid4().hex[:6]}"
    digest = await register_cohort(pool, cohort_id, program, people)
    return await client.start_workflow(
        CohortWorkflow.run,
        CohortInput(cohort_id=cohort_id, program=program, people_digest=digest,
                    mentors=sum(p.role is Role.MENTOR for p in people),
                    mentees=sum(p.role is Role.MENTEE for p in people),
                    task_queue=task_queue,
                    members={p.employee_id: p.role.value for p in people}),
        id=cohort_workflow_id(cohort_id), task_queue=task_queue)


async def wait_for(handle: WorkflowHandle[CohortWorkflow, Any], check: Any,
                   what: str) -> CohortState:
    for _ in range(400):
        state: CohortState = await handle.query(CohortWorkflow.state)
        if check(state):
            return state
        await asyncio.sleep(0.05)  # real-time poll for worker progress, not a workflow timer
    raise AssertionError(f"cohort never reached: {what}; last {state.phase} {state}")


def refusal_code(exc: WorkflowUpdateFailedError) -> str:
    """The domain error's stable code, which the workflow sends as the failure's type."""
    assert isinstance(exc.cause, ApplicationError), exc.cause
    return exc.cause.type or ""


def person(eid: str, role: Role, level: int, dept: str, hired: date) -> Person:
    return Person(employee_id=eid, name=f"Orang {eid}", email=f"{eid.lower()}@example.co.id",
                  role=role, level=level, department=dept, hire_date=hired,
                  timezone="Asia/Jakarta", capacity=1 if role is Role.MENTOR else 0)


def tiny_cohort() -> list[Person]:
    return [
        person("M1", Role.MENTOR, 4, "Engineering", date(2018, 1, 1)),
        person("M2", Role.MENTOR, 4, "Finance", date(2019, 1, 1)),
        person("E1", Role.MENTEE, 3, "Sales", date(2026, 10, 1)),
        person("E2", Role.MENTEE, 3, "HR", date(2026, 9, 1)),
    ]


async def test_cohort_matches_launches_rematches_and_records_a_departure(
    temporal_env, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    program = load_program(EXAMPLES / "program.yaml")
    people = load_people(EXAMPLES / "people.csv", program)
    store = store_for(db_pool)
    env = temporal_env
    async with running_worker(env.client, db_pool, task_queue):
        handle = await start_cohort(env.client, db_pool, task_queue, program, people)
        state = await wait_for(handle, lambda s: s.phase is CohortPhase.SCHEDULED, "matched")
        proposed = len(state.pending_launch)
        assert proposed == 34
        await advance_to(env, handle, state.starts_at + timedelta(minutes=1))
        state = await wait_for(handle, lambda s: s.launched == proposed, "launched")
        pairings = sorted(state.active)

        # A mentor asks out: no fault, the mentee waits a week and gets someone new.
        first = env.client.get_workflow_handle_for(PairingWorkflow.run,
                                                   pairing_workflow_id(pairings[0]))
        await advance_to(env, first, state.starts_at + timedelta(days=3))
        matched = await started_state(first)
        # Pairings begin on the program's start date (timers fire within a few seconds).
        assert abs(matched.started_at - state.starts_at) < timedelta(minutes=1)
        await first.execute_update(PairingWorkflow.request_exit, c.RequestExit(
            actor=c.Actor.employee(matched.mentor_id), reason=e.ExitReason.NOT_A_FIT))
        state = await wait_for(handle, lambda s: matched.mentee_id in s.waiting, "waiting")
        assert (matched.mentor_id, matched.mentee_id) in state.exclusions
        await advance_to(env, handle, state.starts_at + timedelta(days=8))
        state = await wait_for(handle, lambda s: s.rematched == 1, "rematched")
        rematch_id = next(p for p, a in state.active.items()
                          if a.mentee_id == matched.mentee_id)
        assert rematch_id.endswith(".2")
        assert state.active[rematch_id].mentor_id != matched.mentor_id
        again = env.client.get_workflow_handle_for(PairingWorkflow.run,
                                                   pairing_workflow_id(rematch_id))
        await advance_to(env, again, state.starts_at + timedelta(days=9))
        assert (await started_state(again)).rematch_of == pairings[0]

        # HR: a mentee left the company; their pairing ends and counts in retention.
        second = env.client.get_workflow_handle_for(PairingWorkflow.run,
                                                    pairing_workflow_id(pairings[1]))
        await advance_to(env, second, state.starts_at + timedelta(days=8))
        leaver = (await started_state(second)).mentee_id
        ended = await handle.execute_update(CohortWorkflow.participant_left,
                                            RecordParticipantLeft(
                                                employee_id=leaver, left_on=date(2027, 1, 19),
                                                recorded_by="hr-import"))
        assert ended == [pairings[1]]
        outcome = await second.result()
        assert outcome.exit is not None and outcome.exit.reason is e.ExitReason.LEFT_COMPANY
        state = await wait_for(handle, lambda s: pairings[1] not in s.active, "departure")
        assert leaver in state.left
        with pytest.raises(WorkflowUpdateFailedError) as again_left:
            await handle.execute_update(CohortWorkflow.participant_left, RecordParticipantLeft(
                employee_id=leaver, left_on=date(2027, 1, 20), recorded_by="hr-import"))
        assert refusal_code(again_left.value) == "already_left"
        with pytest.raises(WorkflowUpdateFailedError) as stranger:
            await handle.execute_update(CohortWorkflow.participant_left, RecordParticipantLeft(
                employee_id="X999", left_on=date(2027, 1, 20), recorded_by="hr-import"))
        assert refusal_code(stranger.value) == "not_a_cohort_member"

    types = [r.type for r in await store.read_stream(cohort_stream(state.cohort_id))]
    assert types[:3] == ["CohortStarted", "MatchRunRecorded", "ProposalApproved"]
    assert types.count("PairingLaunched") == proposed + 1
    assert "ParticipantWaiting" in types and "ParticipantLeft" in types
    assert types.count("MatchRunRecorded") == 2  # the initial run and the rematch
    rematched = await store.read_stream(f"pairing-{rematch_id}")
    assert rematched[0].payload["rematch_of"] == pairings[0]


async def test_manual_approval_drop_and_swap_then_completion(
    temporal_env, db_pool: asyncpg.Pool, db_dsn: str, task_queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    program = load_program(EXAMPLES / "program.yaml").model_copy(
        update={"approval": Approval.MANUAL})
    env = temporal_env
    async with running_worker(env.client, db_pool, task_queue):
        handle = await start_cohort(env.client, db_pool, task_queue, program, tiny_cohort())
        state = await wait_for(handle, lambda s: s.phase is CohortPhase.AWAITING_APPROVAL,
                               "proposal")
        pairs = sorted((p.mentor, p.mentee) for p in state.proposal)
        assert len(pairs) == 2
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(CohortWorkflow.approve, ApproveProposal(
                approved_by="ops-ani", drop=(("M9", "E9"),)))
        assert "not a proposed pair" in str(refused.value.cause)
        assert refusal_code(refused.value) == "not_a_proposed_pair"
        await handle.execute_update(CohortWorkflow.approve, ApproveProposal(
            approved_by="ops-ani", swap=((pairs[0], pairs[1]),)))
        state = await handle.query(CohortWorkflow.state)
        swapped = sorted((s.mentor_id, s.mentee_id) for s in state.pending_launch)
        assert swapped == sorted([(pairs[1][0], pairs[0][1]), (pairs[0][0], pairs[1][1])])
        await advance_to(env, handle, state.starts_at + timedelta(minutes=1))
        state = await wait_for(handle, lambda s: s.launched == 2, "launched")
        for pairing_id in list(state.active):
            h = env.client.get_workflow_handle_for(PairingWorkflow.run,
                                                   pairing_workflow_id(pairing_id))
            await advance_to(env, h, state.starts_at + timedelta(days=1))
            await started_state(h)
            await h.execute_update(PairingWorkflow.request_exit, c.RequestExit(
                actor=c.Actor.ops("ops-ani"), reason=e.ExitReason.INACTIVITY))
        result = await handle.result()
    assert result.launched == 2 and result.exited == 2
    store = store_for(db_pool)
    types = [r.type for r in await store.read_stream(cohort_stream(state.cohort_id))]
    assert types.count("ProposalAdjusted") == 1 and types[-1] == "CohortCompleted"

    # What operations read afterwards: status and report, from the read models.
    monkeypatch.setenv("SEBAYA_DATABASE_URL", db_dsn)
    monkeypatch.setenv("TEMPORAL_ADDRESS", env.client.service_client.config.target_host)
    get_settings.cache_clear()
    try:
        status = await sebaya("cohort", "status", state.cohort_id, "--json")
        assert status.exit_code == 0, status.output
        assert output_json(status)["by_phase"] == {"exited": 2}
        report = await sebaya("cohort", "report", state.cohort_id, "--json")
        assert report.exit_code == 0, report.output
        assert output_json(report)["exits"]["by_reason"]["inactivity"] == 2
        csv_out = await sebaya("cohort", "report", state.cohort_id, "--csv")
        assert csv_out.stdout.splitlines()[0].startswith("section,metric")
        html = await sebaya("cohort", "report", state.cohort_id, "--html")
        assert "<svg" in html.stdout and "</html>" in html.stdout
        missing = await sebaya("cohort", "status", "no-such-cohort")
        assert missing.exit_code == 1 and "no cohort" in missing.output
    finally:
        get_settings.cache_clear()


async def test_a_swap_the_matcher_refuses_is_refused_and_nothing_is_recorded(
    temporal_env, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    program = load_program(EXAMPLES / "program.yaml").model_copy(
        update={"approval": Approval.MANUAL})
    # Levels allow only M2-E1 and M1-E2 (mentor at most 2 levels above, never below).
    people = [person("M1", Role.MENTOR, 4, "Engineering", date(2018, 1, 1)),
              person("M2", Role.MENTOR, 2, "Finance", date(2019, 1, 1)),
              person("E1", Role.MENTEE, 1, "Sales", date(2026, 10, 1)),
              person("E2", Role.MENTEE, 3, "HR", date(2026, 9, 1))]
    env = temporal_env
    async with running_worker(env.client, db_pool, task_queue):
        handle = await start_cohort(env.client, db_pool, task_queue, program, people)
        state = await wait_for(handle, lambda s: s.phase is CohortPhase.AWAITING_APPROVAL,
                               "proposal")
        assert sorted((p.mentor, p.mentee) for p in state.proposal) == [("M1", "E2"),
                                                                         ("M2", "E1")]
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(CohortWorkflow.approve, ApproveProposal(
                approved_by="ops-ani", swap=((("M1", "E2"), ("M2", "E1")),)))
        assert refusal_code(refused.value) == "pair_breaks_hard_constraint"
        assert "cannot mentor" in str(refused.value.cause)
        after = await handle.query(CohortWorkflow.state)
        assert after.phase is CohortPhase.AWAITING_APPROVAL and after.version == state.version
        assert await handle.execute_update(CohortWorkflow.approve, ApproveProposal(
            approved_by="ops-ani")) == 2
        await handle.terminate("test over")
    types = [r.type for r in await store_for(db_pool).read_stream(cohort_stream(state.cohort_id))]
    assert "ProposalAdjusted" not in types and types[-1] == "ProposalApproved"
