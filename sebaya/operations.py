"""What operations teams do, as functions: start a cohort, approve its matches, record a
departure, ask where a cohort stands. The CLI and the demo call these; tests call them with
the real test services.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict
from temporalio.client import Client, WorkflowHandle

from adapters.roster import load_profiles, load_program, register_cohort
from domain.cohort import CohortState
from domain.cohort_commands import ApproveProposal, RecordParticipantLeft
from domain.ids import cohort_workflow_id
from domain.people import Person, Role
from domain.program import ProgramSpec
from domain.roster import RosterDiff
from workflows.cohort import CohortInput, CohortWorkflow

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
    """Record the roster (contacts stay in Postgres) and start the cohort's workflow."""
    cohort_id = cohort_id or new_cohort_id(program)
    if not COHORT_ID.match(cohort_id):
        raise ValueError(
            f"cohort id {cohort_id!r}: use 1-40 letters, digits, '-' or '_' (no dots)"
        )
    digest = await register_cohort(pool, cohort_id, program, people)
    return await client.start_workflow(
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


def cohort_handle(client: Client, cohort_id: str) -> WorkflowHandle[CohortWorkflow, Any]:
    return client.get_workflow_handle_for(CohortWorkflow.run, cohort_workflow_id(cohort_id))


async def approve(client: Client, cohort_id: str, cmd: ApproveProposal) -> int:
    return await cohort_handle(client, cohort_id).execute_update(CohortWorkflow.approve, cmd)


async def participant_left(
    client: Client, cohort_id: str, employee_id: str, left_on: date, recorded_by: str
) -> list[str]:
    return await cohort_handle(client, cohort_id).execute_update(
        CohortWorkflow.participant_left,
        RecordParticipantLeft(employee_id=employee_id, left_on=left_on,
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


class RosterSyncPlan(BaseModel):
    """What ``cohort sync`` would record: the difference and the file it came from."""

    model_config = ConfigDict(frozen=True)

    cohort_id: str
    source: str
    source_digest: str
    diff: RosterDiff


async def plan_roster_sync(pool: asyncpg.Pool, cohort_id: str, people_path: Path) -> RosterSyncPlan:
    """Read a fresh HR export for ``cohort_id`` and compare it with the cohort's roster.

    The file is validated against the cohort's own program (as at the start); any problem
    raises ``IntakeError`` naming file, line and column, and nothing is compared.
    """
    from domain.people import to_profiles
    from domain.roster import diff_roster
    from intake import load_people

    def read_export(program: ProgramSpec) -> tuple[list[Person], str]:
        people = load_people(people_path, program)
        return people, hashlib.sha256(people_path.read_bytes()).hexdigest()

    program = await load_program(pool, cohort_id)
    people, digest = await asyncio.to_thread(read_export, program)
    current = await load_profiles(pool, cohort_id)
    return RosterSyncPlan(cohort_id=cohort_id, source=people_path.name, source_digest=digest,
                          diff=diff_roster(current, to_profiles(people)))
