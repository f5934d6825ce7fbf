"""Cohort side effects: matching at scale, launching pairing workflows, ending a pairing.

Matching runs here (numpy/scipy never enter the workflow sandbox). Its result is written to
the cohort's stream by this activity, at the version the workflow chose and with ids derived
from it, so a retry after a crash is a no-op; only the compact pair list travels back
through Temporal history. Explanations go to ``match_proposals`` and are read again when a
pairing is launched.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict
from temporalio import activity
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError

from activities.envelope import envelopes
from adapters.roster import load_profiles, load_program
from contracts.pairing import PAIRING_WORKFLOW, PairingInput, PairingUpdate
from domain import cohort_events as ce
from domain import commands as c
from domain.cohort_commands import LaunchSpec, PairKey, RosterConflict
from domain.events import DomainEvent, ExitReason
from domain.ids import cohort_stream, pairing_workflow_id
from domain.matching import CONSTRAINT_LABELS, Constraint, candidates, match, rematch
from domain.people import MatchProfile, Role
from domain.roster import MemberChange, roll_back
from domain.rules import GroundRules
from eventstore import EventStore

# Keep each stored event small: a 5,000-pair match run becomes about 25 events.
CHUNK = 200


class StreamPosition(BaseModel):
    """Where the workflow wants an activity to append to its cohort stream, and as whom."""

    model_config = ConfigDict(frozen=True)

    cohort_id: str
    expected_version: int
    occurred_at: datetime
    workflow_id: str
    run_id: str


class MatchingProposal(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_id: str
    pairs: list[ce.ProposedPair]
    unmatched: int
    last_version: int


class ScorePairsInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    cohort_id: str
    run_id: str
    pairs: list[PairKey]
    exclusions: list[PairKey] = []
    today: datetime


class RematchInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    at: StreamPosition
    employee_id: str
    role: Role
    attempt: int
    exclusions: list[PairKey]
    mentor_load: dict[str, int]
    busy: list[str]
    left: list[str]


class RematchOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_id: str
    partner: str | None
    score: float = 0.0
    reason: str | None = None
    last_version: int


class LaunchInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    cohort_id: str
    cohort_workflow_id: str
    task_queue: str
    start_at: datetime
    ground_rules: GroundRules
    specs: list[LaunchSpec]


class EndPairingInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    pairing_id: str
    leaving_employee_id: str
    recorded_by: str


class ApplyRosterInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    cohort_id: str
    joiners: list[MatchProfile]
    changed: list[MemberChange]


class RunningPair(BaseModel):
    model_config = ConfigDict(frozen=True)

    pairing_id: str
    mentor_id: str
    mentee_id: str


class CheckPairsInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    cohort_id: str
    today: datetime
    pairs: list[RunningPair]
    changed: list[MemberChange]


class JoinersInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    at: StreamPosition
    run_no: int
    mentees: list[str]
    exclusions: list[PairKey]
    mentor_load: dict[str, int]
    left: list[str]
    # Late joiners are matched while rematching is allowed (the program's
    # ``rematch.allowed_until_share``); after it they are recorded unmatched, with the reason.
    intake_until: datetime | None = None


class JoinersOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_id: str | None
    pairs: list[ce.ProposedPair] = []
    unmatched: int = 0
    last_version: int


class OfferExitInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    pairing_id: str
    offered_by: str


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)] or [[]]


class CohortActivities:
    def __init__(self, pool: asyncpg.Pool, store: EventStore, client: Client) -> None:
        self._pool = pool
        self._store = store
        self._client = client

    async def _append(self, at: StreamPosition, events: list[DomainEvent]) -> int:
        stream = cohort_stream(at.cohort_id)
        new = envelopes(stream, at.expected_version, events, ["system:matcher"] * len(events),
                        occurred_at=at.occurred_at, workflow_id=at.workflow_id,
                        run_id=at.run_id, correlation_id=at.cohort_id)
        result = await self._store.append(stream, at.expected_version, new)
        return result.last_version

    async def _save_explanations(self, cohort_id: str, run_id: str,
                                 rows: list[tuple[str, str, float, dict[str, Any]]]) -> None:
        await self._pool.executemany(
            """
            INSERT INTO match_proposals (cohort_id, run_id, mentor_id, mentee_id, score,
                                         explanation)
            VALUES ($1, $2, $3, $4, $5, $6::jsonb)
            ON CONFLICT DO NOTHING
            """,
            [(cohort_id, run_id, m, e, s, json.dumps(x)) for m, e, s, x in rows],
        )

    @activity.defn(name="run_matching")
    async def run_matching(self, at: StreamPosition) -> MatchingProposal:
        program = await load_program(self._pool, at.cohort_id)
        profiles = await load_profiles(self._pool, at.cohort_id)
        today = at.occurred_at.astimezone(program.ground_rules.zone).date()
        result = match(program, profiles, today=today)
        run_id = f"{at.cohort_id}:initial"
        pairs, unmatched, last = await self._append_run(at, program, result, run_id,
                                                        ce.MatchRunKind.INITIAL)
        activity.logger.info("match run %s: %d pairs, %d unmatched", run_id, len(pairs),
                             unmatched)
        return MatchingProposal(run_id=run_id, pairs=pairs, unmatched=unmatched,
                                last_version=last)

    async def _append_run(self, at: StreamPosition, program: Any, result: Any, run_id: str,
                          kind: ce.MatchRunKind) -> tuple[list[ce.ProposedPair], int, int]:
        """Explanations to ``match_proposals``, the run to the stream in chunks."""
        await self._save_explanations(at.cohort_id, run_id, [
            (p.mentor, p.mentee, p.score, p.explanation.model_dump(mode="json"))
            for p in result.pairs
        ])
        pairs = [ce.ProposedPair(mentor=p.mentor, mentee=p.mentee, score=p.score)
                 for p in result.pairs]
        unmatched = [ce.UnmatchedPerson(employee_id=u.employee_id, reason=u.reason)
                     for u in result.unmatched]
        pair_chunks, unmatched_chunks = _chunks(pairs, CHUNK), _chunks(unmatched, CHUNK)
        events: list[DomainEvent] = [ce.MatchRunRecorded(
            run_id=run_id, kind=kind, input_digest=result.input_digest,
            algorithm_version=result.algorithm_version,
            policy=program.matching.model_dump(mode="json"), total_score=result.total_score,
            pair_count=len(pairs), unmatched_count=len(unmatched),
            pairs=tuple(pair_chunks[0]), unmatched=tuple(unmatched_chunks[0]))]
        for k in range(1, max(len(pair_chunks), len(unmatched_chunks))):
            events.append(ce.MatchRunContinued(
                run_id=run_id, chunk=k,
                pairs=tuple(pair_chunks[k]) if k < len(pair_chunks) else (),
                unmatched=tuple(unmatched_chunks[k]) if k < len(unmatched_chunks) else ()))
        last = await self._append(at, events)
        return pairs, len(unmatched), last

    @activity.defn(name="apply_roster")
    async def apply_roster(self, inp: ApplyRosterInput) -> int:
        """Bring ``cohort_members`` to the roster a ``RosterSynced`` event describes: joiners
        added, changed members given their new values. Idempotent (values, not increments)."""
        async with self._pool.acquire() as conn, conn.transaction():
            current = {p.employee_id: p for p in await load_profiles(conn, inp.cohort_id)}
            rows = []
            for member in inp.changed:
                profile = current[member.employee_id]
                values = {c.field: c.after for c in member.changes}
                rows.append(MatchProfile.model_validate(
                    {**profile.model_dump(mode="json"), **values}))
            rows += inp.joiners
            await conn.executemany(
                """
                INSERT INTO cohort_members (cohort_id, employee_id, role, department,
                                            hire_date, profile)
                VALUES ($1, $2, $3, $4, $5, $6::jsonb)
                ON CONFLICT (cohort_id, employee_id) DO UPDATE
                   SET role = EXCLUDED.role, department = EXCLUDED.department,
                       hire_date = EXCLUDED.hire_date, profile = EXCLUDED.profile
                """,
                [(inp.cohort_id, p.employee_id, p.role.value, p.department, p.hire_date,
                  p.model_dump_json()) for p in rows])
        return len(rows)

    @activity.defn(name="check_running_pairs")
    async def check_running_pairs(self, inp: CheckPairsInput) -> list[RosterConflict]:
        """The running pairs a roster change makes break a hard constraint they did not
        break before (the same constraints as matching; capacity and earlier pairings aside,
        since a running pair holds its place)."""
        program = await load_program(self._pool, inp.cohort_id)
        after = {p.employee_id: p for p in await load_profiles(self._pool, inp.cohort_id)}
        before = {p.employee_id: p for p in roll_back(
            list(after.values()), [_diff_of(inp.changed)])}
        changed = {m.employee_id for m in inp.changed}
        today = inp.today.astimezone(program.ground_rules.zone).date()
        found = []
        for pair in inp.pairs:
            now_broken = _broken(program, after, pair, today)
            if not now_broken:
                continue
            new = [c for c in now_broken if c not in _broken(program, before, pair, today)]
            if not new:
                continue
            who = pair.mentee_id if pair.mentee_id in changed else pair.mentor_id
            fields = sorted({c.field for m in inp.changed if m.employee_id == who
                             for c in m.changes})
            found.append(RosterConflict(
                pairing_id=pair.pairing_id, mentor_id=pair.mentor_id,
                mentee_id=pair.mentee_id, changed_employee_id=who, constraint=new[0].value,
                reason=f"{CONSTRAINT_LABELS[new[0]]}: {pair.mentor_id} may no longer mentor "
                       f"{pair.mentee_id} after {who}'s {', '.join(fields)} changed"))
        return found

    @activity.defn(name="match_joiners")
    async def match_joiners(self, inp: JoinersInput) -> JoinersOutcome:
        """Match mentees who joined (or were never placed) against the mentors' remaining
        places, with the initial match's constraints, scoring and explanations; existing
        pairs are never disturbed (their mentors only lend what capacity they have left)."""
        at = inp.at
        program = await load_program(self._pool, at.cohort_id)
        profiles = await load_profiles(self._pool, at.cohort_id)
        gone = set(inp.left)
        wanted = set(inp.mentees)
        remaining = {p.employee_id: p.capacity - inp.mentor_load.get(p.employee_id, 0)
                     for p in profiles if p.role is Role.MENTOR and p.employee_id not in gone}
        mentors = [p for p in profiles if remaining.get(p.employee_id, 0) > 0]
        mentees = [p for p in profiles if p.employee_id in wanted]
        if not mentees:
            return JoinersOutcome(run_id=None, last_version=at.expected_version)
        run_id = f"{at.cohort_id}:joiners:{inp.run_no}"
        today = at.occurred_at.astimezone(program.ground_rules.zone).date()
        if inp.intake_until is not None and at.occurred_at >= inp.intake_until:
            closed = inp.intake_until.astimezone(program.ground_rules.zone).date()
            reason = (f"joined after new pairings closed on {closed.isoformat()} "
                      f"({program.rematch.allowed_until_share:.0%} of the program)")
            late = tuple(ce.UnmatchedPerson(employee_id=p.employee_id, reason=reason)
                         for p in mentees)
            last = await self._append(at, [ce.MatchRunRecorded(
                run_id=run_id, kind=ce.MatchRunKind.JOINERS, input_digest="intake-closed",
                algorithm_version="none", policy=program.matching.model_dump(mode="json"),
                total_score=0.0, pair_count=0, unmatched_count=len(late), unmatched=late)])
            return JoinersOutcome(run_id=run_id, unmatched=len(late), last_version=last)
        result = match(program, [*mentors, *mentees], today=today,
                       exclusions=frozenset(inp.exclusions),
                       capacity_override={k: v for k, v in remaining.items() if v > 0})
        pairs, unmatched, last = await self._append_run(at, program, result, run_id,
                                                        ce.MatchRunKind.JOINERS)
        activity.logger.info("match run %s: %d pairs, %d unmatched", run_id, len(pairs),
                             unmatched)
        return JoinersOutcome(run_id=run_id, pairs=pairs, unmatched=unmatched,
                              last_version=last)

    @activity.defn(name="offer_exit")
    async def offer_exit(self, inp: OfferExitInput) -> str:
        """Offer a running pair a no-fault exit (a roster change broke a hard constraint)."""
        handle = self._client.get_workflow_handle(pairing_workflow_id(inp.pairing_id))
        try:
            await handle.execute_update(PairingUpdate.OFFER_EXIT, c.OfferExit(
                actor=c.Actor.ops(inp.offered_by)))
        except WorkflowUpdateFailedError as exc:
            return f"refused: {exc.cause}"  # the pair closed meanwhile: nothing to offer
        except RPCError as exc:
            if "already completed" in str(exc) or "not found" in str(exc):
                return "already closed"
            raise ApplicationError(f"could not reach pairing {inp.pairing_id}: {exc}") from exc
        return "offered"

    @activity.defn(name="score_swaps")
    async def score_swaps(self, inp: ScorePairsInput) -> list[ce.ProposedPair]:
        """The given pairs that pass every hard constraint, scored (for ops' swaps)."""
        program = await load_program(self._pool, inp.cohort_id)
        wanted = set(inp.pairs)
        people = {e for pair in inp.pairs for e in pair}
        profiles = [p for p in await load_profiles(self._pool, inp.cohort_id)
                    if p.employee_id in people]
        mentors = [p for p in profiles if p.role is Role.MENTOR]
        mentees = [p for p in profiles if p.role is Role.MENTEE]
        today = inp.today.astimezone(program.ground_rules.zone).date()
        found = [cand for cand in candidates(program, mentors, mentees, today=today,
                                             exclusions=frozenset(inp.exclusions))
                 if (cand.mentor, cand.mentee) in wanted]
        await self._save_explanations(inp.cohort_id, inp.run_id, [
            (cand.mentor, cand.mentee, cand.score, cand.explanation.model_dump(mode="json"))
            for cand in found])
        return [ce.ProposedPair(mentor=cand.mentor, mentee=cand.mentee, score=cand.score)
                for cand in found]

    @activity.defn(name="score_pairs")
    async def score_pairs(self, inp: ScorePairsInput) -> dict[str, float]:
        """``score_swaps`` as cohorts started before ``cohort-typed-swap-scores`` ask for it
        (keys ``mentor|mentee``). Remove once no such cohort awaits approval."""
        return {f"{p.mentor}|{p.mentee}": p.score for p in await self.score_swaps(inp)}

    @activity.defn(name="find_rematch")
    async def find_rematch(self, inp: RematchInput) -> RematchOutcome:
        at = inp.at
        program = await load_program(self._pool, at.cohort_id)
        profiles = {p.employee_id: p for p in await load_profiles(self._pool, at.cohort_id)}
        waiting = profiles[inp.employee_id]
        unavailable = set(inp.left)
        if waiting.role is Role.MENTEE:
            pool = [p for p in profiles.values() if p.role is Role.MENTOR
                    and p.employee_id not in unavailable]
            remaining = {p.employee_id: p.capacity - inp.mentor_load.get(p.employee_id, 0)
                         for p in pool}
            pool = [p for p in pool if remaining[p.employee_id] > 0]
        else:
            busy = set(inp.busy)
            pool = [p for p in profiles.values() if p.role is Role.MENTEE
                    and p.employee_id not in unavailable and p.employee_id not in busy]
            remaining = {waiting.employee_id:
                         waiting.capacity - inp.mentor_load.get(waiting.employee_id, 0)}
        today = at.occurred_at.astimezone(program.ground_rules.zone).date()
        # Timing (cool-off, the rematch window) is the cohort workflow's business: it only
        # asks once both allow a rematch, so the matcher is not given an exit date here.
        found = rematch(program, waiting, pool, today=today,
                        exclusions=frozenset(inp.exclusions), remaining_capacity=remaining)
        run_id = f"{at.cohort_id}:rematch:{inp.employee_id}:{inp.attempt}"
        pairs: tuple[ce.ProposedPair, ...] = ()
        unmatched: tuple[ce.UnmatchedPerson, ...] = ()
        if found.partner is not None:
            mentor, mentee = ((found.partner, inp.employee_id) if waiting.role is Role.MENTEE
                              else (inp.employee_id, found.partner))
            score = found.score or 0.0
            pairs = (ce.ProposedPair(mentor=mentor, mentee=mentee, score=score),)
            explanation = found.explanation.model_dump(mode="json") if found.explanation else {}
            await self._save_explanations(at.cohort_id, run_id,
                                          [(mentor, mentee, score, explanation)])
        else:
            unmatched = (ce.UnmatchedPerson(employee_id=inp.employee_id,
                                            reason=found.reason or "no partner"),)
        last = await self._append(at, [ce.MatchRunRecorded(
            run_id=run_id, kind=ce.MatchRunKind.REMATCH, input_digest=f"rematch:{inp.employee_id}",
            algorithm_version="sebaya-rematch/1",
            policy=program.matching.model_dump(mode="json"),
            total_score=(found.score or 0.0) if found.partner else 0.0,
            pair_count=len(pairs), unmatched_count=len(unmatched), pairs=pairs,
            unmatched=unmatched)])
        return RematchOutcome(run_id=run_id, partner=found.partner, score=found.score or 0.0,
                              reason=found.reason, last_version=last)

    @activity.defn(name="launch_pairings")
    async def launch_pairings(self, inp: LaunchInput) -> int:
        """Start one PairingWorkflow per spec. Idempotent: a retry finds them started."""
        started = 0
        for spec in inp.specs:
            row = await self._pool.fetchrow(
                "SELECT explanation FROM match_proposals WHERE cohort_id = $1 AND run_id = $2 "
                "AND mentor_id = $3 AND mentee_id = $4",
                inp.cohort_id, spec.run_id, spec.mentor_id, spec.mentee_id)
            explanation = json.loads(row["explanation"]) if row else {}
            start = c.StartPairing(
                actor=c.Actor.system(), pairing_id=spec.pairing_id, cohort_id=inp.cohort_id,
                mentor_id=spec.mentor_id, mentee_id=spec.mentee_id,
                ground_rules=inp.ground_rules, match_score=spec.score,
                explanation={"match_run": spec.run_id, **explanation},
                rematch_of=spec.rematch_of,
            )
            try:
                await self._client.start_workflow(
                    PAIRING_WORKFLOW,
                    PairingInput(start=start, start_at=inp.start_at,
                                 report_to=inp.cohort_workflow_id),
                    id=pairing_workflow_id(spec.pairing_id),
                    task_queue=inp.task_queue,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                )
                started += 1
            except WorkflowAlreadyStartedError:
                pass  # launched by an earlier attempt of this activity and already finished
            activity.heartbeat(spec.pairing_id)
        return started

    @activity.defn(name="end_pairing")
    async def end_pairing(self, inp: EndPairingInput) -> str:
        """Ask a pairing to end because one of its people left the company."""
        handle = self._client.get_workflow_handle(pairing_workflow_id(inp.pairing_id))
        try:
            await handle.execute_update(PairingUpdate.REQUEST_EXIT, c.RequestExit(
                actor=c.Actor.ops(inp.recorded_by), reason=ExitReason.LEFT_COMPANY,
                leaving_employee_id=inp.leaving_employee_id))
        except WorkflowUpdateFailedError as exc:
            return f"refused: {exc.cause}"  # already closed: nothing left to end
        except RPCError as exc:
            if "already completed" in str(exc) or "not found" in str(exc):
                return "already closed"
            raise ApplicationError(f"could not reach pairing {inp.pairing_id}: {exc}") from exc
        return "ended"


def _diff_of(changed: list[MemberChange]) -> Any:
    from domain.roster import RosterDiff

    return RosterDiff(changed=tuple(changed))


# Constraints a running pair cannot newly break: its mentor's place is taken by this very
# pair, and "earlier pairing" is the pair itself.
_NOT_CHECKED_FOR_RUNNING_PAIRS = frozenset({Constraint.CAPACITY, Constraint.PREVIOUS_PAIRING})


def _broken(program: Any, profiles: dict[str, MatchProfile], pair: RunningPair,
            today: Any) -> list[Constraint]:
    """The hard constraints the pair breaks with these profiles, in the matcher's order."""
    mentor, mentee = profiles[pair.mentor_id], profiles[pair.mentee_id]
    result = match(program, [mentor, mentee], today=today,
                   capacity_override={mentor.employee_id: 1})
    if result.pairs:
        return []
    for unmatched in result.unmatched:
        if unmatched.employee_id == mentee.employee_id:
            return [Constraint(k) for k in unmatched.excluded_by
                    if Constraint(k) not in _NOT_CHECKED_FOR_RUNNING_PAIRS]
    return []

