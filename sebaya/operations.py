"""What operations teams do, as functions: start a cohort, approve its matches, record a
departure, ask where a cohort stands. The CLI and the demo call these; tests call them with
the real test services.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

import asyncpg
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from activities.roster import register_cohort
from domain.cohort import ApproveProposal, CohortState, ParticipantLeftCommand
from domain.ids import cohort_workflow_id
from domain.people import Person, Role
from domain.program import ProgramSpec
from workflows.cohort import CohortInput, CohortWorkflow
from workflows.digest import CoordinatorDigestWorkflow, DigestInput, digest_workflow_id

COHORT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")


def new_cohort_id(program: ProgramSpec) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", program.name.lower()).strip("-")[:24] or "cohort"
    return f"{slug}-{uuid.uuid4().hex[:6]}"


async def start_cohort(
    pool: asyncpg.Pool,
    client: Client,
    *,
    program: ProgramSpec,
    people: Sequence[Person],
    task_queue: str,
    cohort_id: str | None = None,
    started_by: str = "ops",
    max_history_events: int | None = None,
) -> WorkflowHandle[CohortWorkflow, Any]:
    """Record the roster (contacts stay in Postgres), start the cohort's workflow and its
    coordinator's weekly digest."""
    cohort_id = cohort_id or new_cohort_id(program)
    if not COHORT_ID.match(cohort_id):
        raise ValueError(
            f"cohort id {cohort_id!r}: use 1-40 letters, digits, '-' or '_' (no dots)"
        )
    digest = await register_cohort(pool, cohort_id, program, people)
    handle = await client.start_workflow(
        CohortWorkflow.run,
        CohortInput(
            cohort_id=cohort_id,
            program=program,
            people_digest=digest,
            mentors=sum(p.role is Role.MENTOR for p in people),
            mentees=sum(p.role is Role.MENTEE for p in people),
            task_queue=task_queue,
            members={p.employee_id: p.role.value for p in people},
            started_by=started_by,
            **({} if max_history_events is None
               else {"max_history_events": max_history_events}),
        ),
        id=cohort_workflow_id(cohort_id),
        task_queue=task_queue,
    )
    await client.start_workflow(
        CoordinatorDigestWorkflow.run,
        DigestInput(cohort_id=cohort_id, timezone=program.ground_rules.timezone),
        id=digest_workflow_id(cohort_id), task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    return handle


def cohort_handle(client: Client, cohort_id: str) -> WorkflowHandle[CohortWorkflow, Any]:
    return client.get_workflow_handle_for(CohortWorkflow.run, cohort_workflow_id(cohort_id))


async def approve(client: Client, cohort_id: str, cmd: ApproveProposal) -> int:
    return await cohort_handle(client, cohort_id).execute_update(CohortWorkflow.approve, cmd)


async def participant_left(
    client: Client, cohort_id: str, employee_id: str, left_on: date, recorded_by: str
) -> list[str]:
    return await cohort_handle(client, cohort_id).execute_update(
        CohortWorkflow.participant_left,
        ParticipantLeftCommand(employee_id=employee_id, left_on=left_on,
                               recorded_by=recorded_by),
    )


async def cohort_state(client: Client, cohort_id: str) -> CohortState:
    return await cohort_handle(client, cohort_id).query(CohortWorkflow.state)


def parse_pair(text: str) -> tuple[str, str]:
    """``MENTOR:MENTEE`` as typed on the command line."""
    mentor, sep, mentee = text.partition(":")
    if not sep or not mentor or not mentee:
        raise ValueError(f"expected MENTOR:MENTEE, got {text!r}")
    return mentor.strip(), mentee.strip()
