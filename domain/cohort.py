"""The cohort state machine: a program's pairs, launched, ended, rematched.

Pure like ``domain.pairing``: the workflow passes ``now`` and calls activities for matching;
this module decides which events those results mean and folds them into a compact state
that fits in a continue-as-new input even for a 10,000-person cohort (ids and counters only).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from domain import cohort_events as ce
from domain import errors
from domain.events import DomainEvent
from domain.ids import pairing_id_for
from domain.program import ProgramSpec

Role = Literal["mentor", "mentee"]

# Pairings begin at this local time on the program's start date.
PROGRAM_START_TIME = time(9, 0)


class CohortPhase(StrEnum):
    NOT_STARTED = "not_started"
    MATCHING = "matching"
    AWAITING_APPROVAL = "awaiting_approval"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    COMPLETED = "completed"


class LaunchSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    pairing_id: str
    mentor_id: str
    mentee_id: str
    score: float
    run_id: str
    rematch_of: str | None = None


class ActivePairing(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    mentor_id: str
    mentee_id: str


class Waiting(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    after_pairing: str
    available_at: datetime


class CohortState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    cohort_id: str = ""
    phase: CohortPhase = CohortPhase.NOT_STARTED
    version: int = 0
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    rematch_until: datetime | None = None
    cool_off_days: int = 7
    approval: Literal["auto", "manual"] = "manual"

    proposal_run_id: str | None = None
    proposal: tuple[ce.ProposedPair, ...] = ()
    pending_launch: tuple[LaunchSpec, ...] = ()
    active: dict[str, ActivePairing] = {}
    mentor_load: dict[str, int] = {}
    attempts: dict[str, int] = {}
    launched: int = 0
    completed: int = 0
    exited: int = 0
    rematched: int = 0
    waiting: dict[str, Waiting] = {}
    # (mentor, mentee) pairs that ended early: never matched again.
    exclusions: tuple[tuple[str, str], ...] = ()
    left: dict[str, date] = {}
    match_runs: int = 0

    @property
    def busy(self) -> set[str]:
        """Everyone in a running pairing (mentors may appear in several)."""
        people = {p.mentee_id for p in self.active.values()}
        people |= {p.mentor_id for p in self.active.values()}
        return people

    def active_pairings_of(self, employee_id: str) -> list[str]:
        return sorted(pid for pid, p in self.active.items()
                      if employee_id in (p.mentor_id, p.mentee_id))


class ApproveProposal(BaseModel):
    """Operations accept the proposed pairs, after dropping or swapping some."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    approved_by: str = Field(min_length=1)
    drop: tuple[tuple[str, str], ...] = ()
    # Swap the mentors of two proposed pairs: ((mentor_a, mentee_a), (mentor_b, mentee_b)).
    swap: tuple[tuple[tuple[str, str], tuple[str, str]], ...] = ()


class ParticipantLeftCommand(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    employee_id: str = Field(min_length=1)
    left_on: date
    recorded_by: str = Field(min_length=1)


def program_starts_at(program: ProgramSpec) -> datetime:
    rules = program.ground_rules
    return datetime.combine(program.start_date, PROGRAM_START_TIME, tzinfo=rules.zone)


def cohort_started(
    cohort_id: str, program: ProgramSpec, people_digest: str, mentors: int, mentees: int,
    now: datetime,
) -> ce.CohortStarted:
    starts_at = max(program_starts_at(program), now)
    length = program.ground_rules.program_length_days
    ends_at = None if length is None else starts_at + timedelta(days=length)
    rematch_until = (
        None if length is None
        else starts_at + timedelta(days=length * program.rematch.allowed_until_share)
    )
    return ce.CohortStarted(
        cohort_id=cohort_id,
        program_name=program.name,
        objective=program.objective.model_dump(mode="json"),
        baseline=program.baseline.model_dump(mode="json"),
        starts_at=starts_at,
        ends_at=ends_at,
        rematch_until=rematch_until,
        cool_off_days=program.rematch.cool_off_days,
        approval=program.approval.value,
        people_digest=people_digest,
        mentors=mentors,
        mentees=mentees,
    )


# --------------------------------------------------------------------------------------------


def evolve(state: CohortState, event: DomainEvent) -> CohortState:
    s = state
    u: dict[str, object] = {"version": s.version + 1}
    match event:
        case ce.CohortStarted():
            u.update(cohort_id=event.cohort_id, phase=CohortPhase.MATCHING,
                     starts_at=event.starts_at, ends_at=event.ends_at,
                     rematch_until=event.rematch_until, cool_off_days=event.cool_off_days,
                     approval=event.approval)
        case ce.MatchRunRecorded():
            u["match_runs"] = s.match_runs + 1
            if event.kind == "initial":
                u.update(proposal_run_id=event.run_id, proposal=event.pairs,
                         phase=CohortPhase.AWAITING_APPROVAL)
        case ce.MatchRunContinued():
            if event.run_id == s.proposal_run_id and s.phase is CohortPhase.AWAITING_APPROVAL:
                u["proposal"] = (*s.proposal, *event.pairs)
        case ce.ProposalAdjusted():
            before = {(p.mentor, p.mentee) for p in event.pairs_before}
            kept = tuple(p for p in s.proposal if (p.mentor, p.mentee) not in before)
            u["proposal"] = (*kept, *event.pairs_after)
        case ce.ProposalApproved():
            attempts = dict(s.attempts)
            specs = []
            for pair in sorted(s.proposal, key=lambda p: (p.mentee, p.mentor)):
                attempt = attempts.get(pair.mentee, 0) + 1
                attempts[pair.mentee] = attempt
                specs.append(LaunchSpec(
                    pairing_id=pairing_id_for(s.cohort_id, pair.mentor, pair.mentee, attempt),
                    mentor_id=pair.mentor, mentee_id=pair.mentee, score=pair.score,
                    run_id=event.run_id))
            u.update(phase=CohortPhase.SCHEDULED, pending_launch=tuple(specs),
                     attempts=attempts, proposal=())
        case ce.PairingLaunched():
            u.update(
                phase=CohortPhase.RUNNING,
                pending_launch=tuple(p for p in s.pending_launch
                                     if p.pairing_id != event.pairing_id),
                active={**s.active, event.pairing_id: ActivePairing(
                    mentor_id=event.mentor_id, mentee_id=event.mentee_id)},
                mentor_load={**s.mentor_load,
                             event.mentor_id: s.mentor_load.get(event.mentor_id, 0) + 1},
                launched=s.launched + 1,
            )
            if event.rematch_of is not None:
                waiting = {k: v for k, v in s.waiting.items()
                           if k not in (event.mentor_id, event.mentee_id)}
                attempts = dict(s.attempts)
                attempts[event.mentee_id] = max(attempts.get(event.mentee_id, 0),
                                                int(event.pairing_id.rsplit(".", 1)[-1]))
                u.update(waiting=waiting, rematched=s.rematched + 1, attempts=attempts)
        case ce.PairingEnded():
            pairing = s.active.get(event.pairing_id)
            active = {k: v for k, v in s.active.items() if k != event.pairing_id}
            load = dict(s.mentor_load)
            exclusions = s.exclusions
            if pairing is not None:
                load[pairing.mentor_id] = max(0, load.get(pairing.mentor_id, 0) - 1)
                if event.outcome == "exited":
                    exclusions = (*exclusions, (pairing.mentor_id, pairing.mentee_id))
            u.update(active=active, mentor_load=load, exclusions=exclusions,
                     completed=s.completed + (event.outcome == "completed"),
                     exited=s.exited + (event.outcome == "exited"))
        case ce.ParticipantWaiting():
            u["waiting"] = {**s.waiting, event.employee_id: Waiting(
                role=event.role, after_pairing=event.after_pairing,
                available_at=event.available_at)}
        case ce.RematchNotPossible():
            u["waiting"] = {k: v for k, v in s.waiting.items() if k != event.employee_id}
        case ce.ParticipantLeft():
            u.update(left={**s.left, event.employee_id: event.left_on},
                     waiting={k: v for k, v in s.waiting.items() if k != event.employee_id})
        case ce.CohortCompleted():
            u["phase"] = CohortPhase.COMPLETED
        case _:
            raise TypeError(f"cohort evolve does not know {type(event).__name__}")
    return s.model_copy(update=u)


def fold(events: Iterable[DomainEvent], state: CohortState | None = None) -> CohortState:
    current = state or CohortState()
    launches: list[ce.PairingLaunched] = []
    for event in events:
        if isinstance(event, ce.PairingLaunched) and event.rematch_of is None:
            launches.append(event)
            continue
        if launches:
            current, launches = _launched(current, launches), []
        current = evolve(current, event)
    return _launched(current, launches) if launches else current


def _launched(state: CohortState, events: Sequence[ce.PairingLaunched]) -> CohortState:
    """``evolve`` for a run of first launches in one pass (O(state + batch), not O(state) per
    launch): a 10,000-person cohort records about 6,000 of them."""
    s = state
    done = {e.pairing_id for e in events}
    active = dict(s.active)
    load = dict(s.mentor_load)
    for e in events:
        active[e.pairing_id] = ActivePairing(mentor_id=e.mentor_id, mentee_id=e.mentee_id)
        load[e.mentor_id] = load.get(e.mentor_id, 0) + 1
    return s.model_copy(update={
        "version": s.version + len(events), "phase": CohortPhase.RUNNING,
        "pending_launch": tuple(p for p in s.pending_launch if p.pairing_id not in done),
        "active": active, "mentor_load": load, "launched": s.launched + len(events)})


# --- decisions -------------------------------------------------------------------------------


def approve(state: CohortState, cmd: ApproveProposal,
            rescored: dict[tuple[str, str], float] | None = None) -> list[DomainEvent]:
    """Drops and swaps, then the approval. ``rescored`` gives the score of each new pair a
    swap creates (checked against the hard constraints by the caller's activity)."""
    if state.phase is not CohortPhase.AWAITING_APPROVAL or state.proposal_run_id is None:
        raise errors.NotAllowedNow(f"nothing awaits approval (cohort is {state.phase.value})")
    by_key = {(p.mentor, p.mentee): p for p in state.proposal}
    events: list[DomainEvent] = []
    for mentor, mentee in cmd.drop:
        pair = by_key.pop((mentor, mentee), None)
        if pair is None:
            raise errors.InvalidCommand(f"{mentor}-{mentee} is not a proposed pair", field="drop")
        events.append(ce.ProposalAdjusted(action="drop", pairs_before=(pair,), pairs_after=(),
                                          adjusted_by=cmd.approved_by))
    for a, b in cmd.swap:
        pa, pb = by_key.pop(a, None), by_key.pop(b, None)
        if pa is None or pb is None:
            missing = a if pa is None else b
            raise errors.InvalidCommand(f"{missing[0]}-{missing[1]} is not a proposed pair",
                                        field="swap")
        new = [(pb.mentor, pa.mentee), (pa.mentor, pb.mentee)]
        scores = rescored or {}
        for key in new:
            if key not in scores:
                raise errors.InvalidCommand(
                    f"{key[0]} cannot mentor {key[1]}: the pair breaks a hard constraint",
                    field="swap")
        after = tuple(ce.ProposedPair(mentor=m, mentee=e, score=scores[(m, e)]) for m, e in new)
        for pair in after:
            by_key[(pair.mentor, pair.mentee)] = pair
        events.append(ce.ProposalAdjusted(action="swap", pairs_before=(pa, pb), pairs_after=after,
                                          adjusted_by=cmd.approved_by))
    events.append(ce.ProposalApproved(run_id=state.proposal_run_id, approved_by=cmd.approved_by,
                                      pairs=len(by_key)))
    return events


def swap_pairs(state: CohortState, cmd: ApproveProposal) -> list[tuple[str, str]]:
    """The (mentor, mentee) pairs a swap would create, for the caller to check and score."""
    by_key = {(p.mentor, p.mentee): p for p in state.proposal}
    out: list[tuple[str, str]] = []
    for a, b in cmd.swap:
        if a in by_key and b in by_key:
            out += [(b[0], a[1]), (a[0], b[1])]
    return out


def pairing_ended(state: CohortState, outcome: ce.PairingEnded,
                  now: datetime) -> list[DomainEvent]:
    """The pairing's end, and who joins the waiting pool for a rematch (no fault, no blame:
    the person left behind by an exit gets a new partner after the cool-off)."""
    pairing = state.active.get(outcome.pairing_id)
    if pairing is None:
        return []  # a repeated report: the first one was already recorded
    events: list[DomainEvent] = [outcome]
    if outcome.outcome != "exited":
        return events
    if state.rematch_until is None or now >= state.rematch_until:
        return events
    waiting: list[tuple[str, Role]] = []
    initiator = outcome.initiated_by
    if outcome.reason == "inactivity":
        return events  # both stopped showing up: nobody is left waiting for the other
    if outcome.leaving_employee_id is not None:
        other = (pairing.mentor_id if outcome.leaving_employee_id == pairing.mentee_id
                 else pairing.mentee_id)
        waiting.append((other, "mentor" if other == pairing.mentor_id else "mentee"))
    elif initiator == "mentor":
        waiting.append((pairing.mentee_id, "mentee"))
    elif initiator == "mentee":
        waiting.append((pairing.mentor_id, "mentor"))
    else:
        waiting += [(pairing.mentee_id, "mentee"), (pairing.mentor_id, "mentor")]
    available_at = now + timedelta(days=state.cool_off_days)
    for employee_id, role in waiting:
        if employee_id in state.left or employee_id in state.waiting:
            continue
        events.append(ce.ParticipantWaiting(employee_id=employee_id, role=role,
                                            after_pairing=outcome.pairing_id,
                                            available_at=available_at))
    return events


def due_for_rematch(state: CohortState, now: datetime) -> list[str]:
    return sorted(k for k, w in state.waiting.items() if w.available_at <= now)


def expired_waiting(state: CohortState, now: datetime) -> list[DomainEvent]:
    if state.rematch_until is None or now < state.rematch_until:
        return []
    return [ce.RematchNotPossible(employee_id=k,
                                  reason="the rematch window closed before a partner was found")
            for k in sorted(state.waiting)]


def participant_left(state: CohortState, cmd: ParticipantLeftCommand,
                     members: Sequence[str] | None = None) -> list[DomainEvent]:
    if cmd.employee_id in state.left:
        raise errors.AlreadySubmitted(f"{cmd.employee_id} is already recorded as having left")
    if members is not None and cmd.employee_id not in members:
        raise errors.NotAParticipant(f"{cmd.employee_id} is not in cohort {state.cohort_id}",
                                     field="employee_id")
    return [ce.ParticipantLeft(employee_id=cmd.employee_id, left_on=cmd.left_on,
                               recorded_by=cmd.recorded_by)]


def is_finished(state: CohortState) -> bool:
    return (state.phase is CohortPhase.RUNNING and not state.active
            and not state.pending_launch and not state.waiting)


def next_due(state: CohortState) -> datetime | None:
    times: list[datetime] = []
    if state.phase is CohortPhase.SCHEDULED and state.starts_at is not None:
        times.append(state.starts_at)
    times += [w.available_at for w in state.waiting.values()]
    if state.waiting and state.rematch_until is not None:
        times.append(state.rematch_until)
    return min(times) if times else None


def completed(state: CohortState, now: datetime) -> ce.CohortCompleted:
    return ce.CohortCompleted(completed_at=now, pairings=state.launched,
                              completed=state.completed, exited=state.exited)
