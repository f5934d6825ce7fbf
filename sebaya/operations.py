"""What operations teams do, as functions: start a cohort, approve its matches, record a
departure, ask where a cohort stands. The CLI and the demo call these; tests call them with
the real test services.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import Collection, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from adapters.roster import load_profiles, load_program, register_cohort, save_contacts
from domain import cohort_events as ce
from domain.cohort import CohortState
from domain.cohort_commands import ApproveProposal, RecordParticipantLeft, SyncRoster
from domain.ids import cohort_stream, cohort_workflow_id
from domain.people import MatchProfile, Person, Role, to_profiles
from domain.program import ProgramSpec
from domain.roster import RosterDiff, apply_diff, diff_roster, people_digest, roll_back
from eventstore import EventStore
from workflows.cohort import CohortInput, CohortWorkflow, RosterSyncResult
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
    # The roster's digest the diff was computed against, and after applying it.
    base_digest: str
    digest_after: str


async def plan_roster_sync(pool: asyncpg.Pool, cohort_id: str, people_path: Path, *,
                           departed: Collection[str] = ()) -> RosterSyncPlan:
    """Read a fresh HR export for ``cohort_id`` and compare it with the cohort's roster.

    The file is validated against the cohort's own program (as at the start); any problem
    raises ``IntakeError`` naming file, line and column, and nothing is compared.
    ``departed``: members already recorded as having left (the cohort's ``state.left``).
    """
    plan, _ = await _read_and_compare(pool, cohort_id, people_path, departed)
    return plan


async def _read_and_compare(pool: asyncpg.Pool, cohort_id: str, people_path: Path,
                            departed: Collection[str]) -> tuple[RosterSyncPlan, list[Person]]:
    from intake import load_people

    def read_export(program: ProgramSpec) -> tuple[list[Person], str]:
        people = load_people(people_path, program)
        return people, hashlib.sha256(people_path.read_bytes()).hexdigest()

    program = await load_program(pool, cohort_id)
    people, digest = await asyncio.to_thread(read_export, program)
    current = await load_profiles(pool, cohort_id)
    diff = diff_roster(current, to_profiles(people), departed)
    plan = RosterSyncPlan(cohort_id=cohort_id, source=people_path.name, source_digest=digest,
                          diff=diff, base_digest=people_digest(current),
                          digest_after=people_digest(apply_diff(current, diff)))
    return plan, people


async def sync_roster(pool: asyncpg.Pool, client: Client, cohort_id: str, people_path: Path, *,
                      synced_by: str, apply: bool, today: date | None = None,
                      source: str | None = None,
                      ) -> tuple[RosterSyncPlan, RosterSyncResult | None]:
    """Compare an HR export with the running cohort and, with ``apply``, record it.

    Joiners' contacts go to ``participants`` first (names and e-mails never travel through
    the workflow); the cohort then records the change and acts on it (see
    ``CohortWorkflow.sync_roster``). An export that changes nothing records nothing."""
    state = await cohort_state(client, cohort_id)
    plan, people = await _read_and_compare(pool, cohort_id, people_path, state.left)
    if source is not None:  # where the file came from (a URL), not the download's name
        plan = plan.model_copy(update={"source": source})
    if not apply or plan.diff.is_empty or plan.diff.problems:
        return plan, None
    await save_contacts(pool, [p for p in people if p.employee_id not in state.left])
    result = await cohort_handle(client, cohort_id).execute_update(
        CohortWorkflow.sync_roster,
        SyncRoster(source=plan.source, source_digest=plan.source_digest, synced_by=synced_by,
                   synced_on=today, base_digest=plan.base_digest,
                   digest_after=plan.digest_after, diff=plan.diff),
        id=f"sync-{cohort_id}-{plan.base_digest[:16]}-{plan.source_digest[:16]}",
    )
    return plan, result


class RosterAsOf(BaseModel):
    """The roster of a cohort as it was at a moment, rebuilt from the cohort's stream."""

    model_config = ConfigDict(frozen=True)

    cohort_id: str
    as_of: datetime
    digest: str
    members: list[MatchProfile]
    left: list[str]
    syncs_after: int


async def roster_as_of(pool: asyncpg.Pool, store: EventStore, cohort_id: str,
                       as_of: datetime | None = None) -> RosterAsOf:
    """The roster at ``as_of`` (default: as it stands): today's roster with every later
    ``RosterSynced`` rolled back. Times are the cohort's domain times (``occurred_at``).

    Rolling all of them back must give the digest recorded in ``CohortStarted``; a roster
    that does not is reported as an error rather than shown (the table was changed outside
    the cohort's stream)."""
    records = await store.read_stream(cohort_stream(cohort_id))
    if not records:
        raise LookupError(f"no cohort {cohort_id!r}")
    current = await load_profiles(pool, cohort_id)
    synced = [(r.metadata.occurred_at, ce.RosterSynced.model_validate(r.payload))
              for r in records if r.type == ce.RosterSynced.event_type]
    started = ce.CohortStarted.model_validate(records[0].payload)
    at_start = roll_back(current, [_diff_of(e) for _, e in synced])
    if people_digest(at_start) != started.people_digest:
        raise ValueError(f"cohort {cohort_id}: the roster rolled back to the start does not "
                         "match the digest recorded when it started")
    moment = as_of or records[-1].metadata.occurred_at
    later = [e for at, e in synced if at > moment]
    members = roll_back(current, [_diff_of(e) for e in later])
    left = sorted(r.payload["employee_id"] for r in records
                  if r.type == ce.ParticipantLeft.event_type
                  and r.metadata.occurred_at <= moment)
    return RosterAsOf(cohort_id=cohort_id, as_of=moment, digest=people_digest(members),
                      members=members, left=left, syncs_after=len(later))


def _diff_of(event: ce.RosterSynced) -> RosterDiff:
    return RosterDiff(joiners=tuple(MatchProfile.model_validate(j) for j in event.joiners),
                      leavers=event.leavers, changed=event.changed)
