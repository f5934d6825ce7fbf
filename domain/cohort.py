"""The cohort state machine: ``decide(state, command, now) -> events`` and
``evolve(state, event) -> state`` for a program's pairs, launched, ended, rematched.

Pure like ``domain.pairing``: the workflow passes ``now``, and facts from outside the stream
(the matcher's scores, the roster) inside the command; ``decide`` refuses a command with a
``domain.errors`` class or says which events it means. The state is compact enough for a
continue-as-new input even for a 10,000-person cohort (ids and counters only).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from domain import cohort_commands as cc
from domain import cohort_events as ce
from domain import errors
from domain.cohort_commands import ApproveProposal as ApproveProposal  # the CLI's import
from domain.cohort_commands import LaunchSpec, PairKey
from domain.events import DomainEvent, ExitInitiator, ExitReason
from domain.ids import pairing_id_for
from domain.people import Role
from domain.program import Approval, ProgramSpec
from domain.roster import profile_json

# Pairings begin at this local time on the program's start date.
PROGRAM_START_TIME = time(9, 0)


class CohortPhase(StrEnum):
    NOT_STARTED = "not_started"
    MATCHING = "matching"
    AWAITING_APPROVAL = "awaiting_approval"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    COMPLETED = "completed"


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
    approval: Approval = Approval.MANUAL

    proposal_run_id: str | None = None
    proposal: tuple[ce.ProposedPair, ...] = ()
    pending_launch: tuple[LaunchSpec, ...] = ()
    active: dict[str, ActivePairing] = {}
    mentor_load: dict[str, int] = {}
    # Pairings planned per mentee so far (approved or rematched): the attempt number in the
    # mentee's next pairing id is one more.
    attempts: dict[str, int] = {}
    launched: int = 0
    completed: int = 0
    exited: int = 0
    rematched: int = 0
    waiting: dict[str, Waiting] = {}
    # Pairs that ended early: never matched again.
    exclusions: tuple[PairKey, ...] = ()
    left: dict[str, date] = {}
    match_runs: int = 0
    # The roster's fingerprint (``domain.roster.people_digest``): the one recorded at the
    # start, then after each roster sync. A sync must be computed against it.
    roster_digest: str = ""
    # People who joined with a roster sync, by role (the start's roster is the workflow input).
    joined: dict[str, Role] = {}
    # A joiners' match run waits for approval (manual programs) while the cohort runs.
    joiner_proposal: bool = False
    # Mentees whose rematch found nobody: a joiners' run (new mentor places) tries them again.
    unplaced: tuple[str, ...] = ()

    @property
    def busy(self) -> set[str]:
        """Everyone in a running pairing (mentors may appear in several)."""
        people = {p.mentee_id for p in self.active.values()}
        people |= {p.mentor_id for p in self.active.values()}
        return people

    def active_pairings_of(self, employee_id: str) -> list[str]:
        return sorted(pid for pid, p in self.active.items()
                      if employee_id in (p.mentor_id, p.mentee_id))

    def next_attempt(self, mentee_id: str) -> int:
        """The attempt number of the mentee's next pairing (1 for the first)."""
        return self.attempts.get(mentee_id, 0) + 1


def program_starts_at(program: ProgramSpec) -> datetime:
    rules = program.ground_rules
    return datetime.combine(program.start_date, PROGRAM_START_TIME, tzinfo=rules.zone)


# --------------------------------------------------------------------------------------------


def evolve(state: CohortState, event: DomainEvent) -> CohortState:
    s = state
    u: dict[str, object] = {"version": s.version + 1}
    match event:
        case ce.CohortStarted():
            u.update(cohort_id=event.cohort_id, phase=CohortPhase.MATCHING,
                     starts_at=event.starts_at, ends_at=event.ends_at,
                     rematch_until=event.rematch_until, cool_off_days=event.cool_off_days,
                     approval=event.approval, roster_digest=event.people_digest)
        case ce.MatchRunRecorded():
            u["match_runs"] = s.match_runs + 1
            if event.kind is ce.MatchRunKind.INITIAL:
                u.update(proposal_run_id=event.run_id, proposal=event.pairs,
                         phase=CohortPhase.AWAITING_APPROVAL)
            elif event.kind is ce.MatchRunKind.JOINERS:
                # Replaces a joiners' proposal still waiting: the new run saw everyone in it.
                u.update(proposal_run_id=event.run_id, proposal=event.pairs,
                         joiner_proposal=bool(event.pair_count))
        case ce.MatchRunContinued():
            if event.run_id == s.proposal_run_id and (
                    s.phase is CohortPhase.AWAITING_APPROVAL or s.joiner_proposal):
                u["proposal"] = (*s.proposal, *event.pairs)
        case ce.ProposalAdjusted():
            before = {_key(p) for p in event.pairs_before}
            kept = tuple(p for p in s.proposal if _key(p) not in before)
            u["proposal"] = (*kept, *event.pairs_after)
        case ce.ProposalApproved():
            attempts = dict(s.attempts)
            specs = []
            for pair in sorted(s.proposal, key=lambda p: (p.mentee, p.mentor)):
                attempts[pair.mentee] = attempt = attempts.get(pair.mentee, 0) + 1
                specs.append(LaunchSpec(
                    pairing_id=pairing_id_for(s.cohort_id, pair.mentor, pair.mentee, attempt),
                    mentor_id=pair.mentor, mentee_id=pair.mentee, score=pair.score,
                    run_id=event.run_id))
            # A joiners' approval comes while the cohort runs (and may come before the
            # program's start, with the first launch still pending): add to what waits.
            u.update(phase=s.phase if s.phase is CohortPhase.RUNNING else CohortPhase.SCHEDULED,
                     pending_launch=(*s.pending_launch, *specs), attempts=attempts,
                     proposal=(), joiner_proposal=False)
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
                unplaced=tuple(k for k in s.unplaced if k != event.mentee_id),
            )
            if event.rematch_of is not None:
                waiting = {k: v for k, v in s.waiting.items()
                           if k not in (event.mentor_id, event.mentee_id)}
                # The rematch's id was built from ``next_attempt`` on this very state.
                attempts = {**s.attempts, event.mentee_id: s.next_attempt(event.mentee_id)}
                u.update(waiting=waiting, rematched=s.rematched + 1, attempts=attempts)
        case ce.PairingEnded():
            pairing = s.active.get(event.pairing_id)
            active = {k: v for k, v in s.active.items() if k != event.pairing_id}
            load = dict(s.mentor_load)
            exclusions = s.exclusions
            if pairing is not None:
                load[pairing.mentor_id] = max(0, load.get(pairing.mentor_id, 0) - 1)
                if event.outcome is ce.PairingEndOutcome.EXITED:
                    exclusions = (*exclusions, PairKey(pairing.mentor_id, pairing.mentee_id))
            u.update(active=active, mentor_load=load, exclusions=exclusions,
                     completed=s.completed + (event.outcome is ce.PairingEndOutcome.COMPLETED),
                     exited=s.exited + (event.outcome is ce.PairingEndOutcome.EXITED))
        case ce.ParticipantWaiting():
            u["waiting"] = {**s.waiting, event.employee_id: Waiting(
                role=event.role, after_pairing=event.after_pairing,
                available_at=event.available_at)}
        case ce.RematchNotPossible():
            u["waiting"] = {k: v for k, v in s.waiting.items() if k != event.employee_id}
            was = s.waiting.get(event.employee_id)
            if was is not None and was.role is Role.MENTEE:
                u["unplaced"] = (*s.unplaced, event.employee_id)
        case ce.ParticipantLeft():
            u.update(left={**s.left, event.employee_id: event.left_on},
                     waiting={k: v for k, v in s.waiting.items() if k != event.employee_id})
        case ce.RosterSynced():
            joined = dict(s.joined)
            for profile in event.joiners:
                joined[profile["employee_id"]] = Role(profile["role"])
            u.update(roster_digest=event.roster_digest_after, joined=joined)
        case ce.RosterConflictFlagged():
            pass  # a fact for coordinators and auditors; the pair runs on until it exits
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
        "active": active, "mentor_load": load, "launched": s.launched + len(events),
        "unplaced": tuple(k for k in s.unplaced if k not in {e.mentee_id for e in events})})


# --- decisions -------------------------------------------------------------------------------


def decide(state: CohortState, command: cc.CohortCommand, now: datetime) -> list[DomainEvent]:
    """The events ``command`` means on ``state`` at ``now``; raises a ``DomainError`` when the
    cohort refuses it (nothing is recorded then)."""
    match command:
        case cc.StartCohort():
            return _start(state, command, now)
        case cc.ApproveProposal():
            return _approve(state, command)
        case cc.RecordPairingsLaunched():
            return _launched_events(state, command)
        case cc.RecordPairingEnded():
            return _pairing_ended(state, command, now)
        case cc.RecordRematchNotPossible():
            return [ce.RematchNotPossible(employee_id=command.employee_id,
                                          reason=command.reason)]
        case cc.RecordParticipantLeft():
            return _participant_left(state, command)
        case cc.SyncRoster():
            return _sync_roster(state, command)
        case cc.RecordRosterConflicts():
            return [ce.RosterConflictFlagged(**c.model_dump()) for c in command.conflicts
                    if c.pairing_id in state.active]
        case cc.CloseRematchWindow():
            return _close_rematch_window(state, now)
        case cc.CompleteCohort():
            return _complete(state, now)
    raise TypeError(f"cohort decide does not know {type(command).__name__}")


def _key(pair: ce.ProposedPair) -> PairKey:
    return PairKey(pair.mentor, pair.mentee)


def _start(state: CohortState, cmd: cc.StartCohort, now: datetime) -> list[DomainEvent]:
    if state.phase is not CohortPhase.NOT_STARTED:
        raise errors.CohortAlreadyStarted(f"cohort {state.cohort_id} has already started")
    program = cmd.program
    starts_at = max(program_starts_at(program), now)
    length = program.ground_rules.program_length_days
    ends_at = None if length is None else starts_at + timedelta(days=length)
    rematch_until = (
        None if length is None
        else starts_at + timedelta(days=length * program.rematch.allowed_until_share)
    )
    return [ce.CohortStarted(
        cohort_id=cmd.cohort_id,
        program_name=program.name,
        objective=program.objective.model_dump(mode="json"),
        baseline=program.baseline.model_dump(mode="json"),
        starts_at=starts_at,
        ends_at=ends_at,
        rematch_until=rematch_until,
        cool_off_days=program.rematch.cool_off_days,
        approval=program.approval,
        people_digest=cmd.people_digest,
        mentors=cmd.mentors,
        mentees=cmd.mentees,
    )]


def pairs_to_score(state: CohortState, cmd: cc.ApproveProposal) -> list[PairKey]:
    """The pairs ``cmd``'s swaps would create, for the matcher to check and score."""
    proposed = {_key(p) for p in state.proposal}
    out: list[PairKey] = []
    for a, b in cmd.swap:
        if a in proposed and b in proposed:
            out += [PairKey(b.mentor, a.mentee), PairKey(a.mentor, b.mentee)]
    return out


def assuming_swaps_allowed(state: CohortState, cmd: cc.ApproveProposal) -> cc.ApproveProposal:
    """``cmd`` as if the matcher accepted every pair its swaps create: what an update
    validator can decide before the matcher is asked (every check but the hard constraints,
    which the handler's ``decide`` makes with the real scores)."""
    return cmd.model_copy(update={"swap_scores": tuple(
        ce.ProposedPair(mentor=k.mentor, mentee=k.mentee, score=0.0)
        for k in pairs_to_score(state, cmd))})


def _approve(state: CohortState, cmd: cc.ApproveProposal) -> list[DomainEvent]:
    """Drops and swaps, then the approval."""
    awaits = state.phase is CohortPhase.AWAITING_APPROVAL or state.joiner_proposal
    if not awaits or state.proposal_run_id is None:
        raise errors.NothingAwaitsApproval(
            f"nothing awaits approval (cohort is {state.phase.value})")
    by_key = {_key(p): p for p in state.proposal}
    events: list[DomainEvent] = []
    for key in cmd.drop:
        pair = by_key.pop(key, None)
        if pair is None:
            raise errors.NotAProposedPair(f"{key.mentor}-{key.mentee} is not a proposed pair",
                                          field="drop")
        events.append(ce.ProposalAdjusted(action=ce.AdjustmentAction.DROP, pairs_before=(pair,),
                                          pairs_after=(), adjusted_by=cmd.approved_by))
    if cmd.swap and cmd.swap_scores is None:
        raise ValueError("a swap needs the matcher's scores of the pairs it creates")
    scores = {_key(p): p.score for p in cmd.swap_scores or ()}
    for a, b in cmd.swap:
        pa, pb = by_key.pop(a, None), by_key.pop(b, None)
        if pa is None or pb is None:
            missing = a if pa is None else b
            raise errors.NotAProposedPair(
                f"{missing.mentor}-{missing.mentee} is not a proposed pair",
                                          field="swap")
        created = [PairKey(pb.mentor, pa.mentee), PairKey(pa.mentor, pb.mentee)]
        for key in created:
            if key not in scores:
                raise errors.PairBreaksHardConstraint(
                    f"{key.mentor} cannot mentor {key.mentee}: the pair breaks a hard "
                    "constraint", field="swap")
        after = tuple(ce.ProposedPair(mentor=k.mentor, mentee=k.mentee, score=scores[k])
                      for k in created)
        for pair in after:
            by_key[_key(pair)] = pair
        events.append(ce.ProposalAdjusted(action=ce.AdjustmentAction.SWAP, pairs_before=(pa, pb),
                                          pairs_after=after, adjusted_by=cmd.approved_by))
    events.append(ce.ProposalApproved(run_id=state.proposal_run_id, approved_by=cmd.approved_by,
                                      pairs=len(by_key)))
    return events


def _launched_events(state: CohortState, cmd: cc.RecordPairingsLaunched) -> list[DomainEvent]:
    if state.phase not in (CohortPhase.SCHEDULED, CohortPhase.RUNNING):
        raise errors.CohortNotRunning(
            f"pairings cannot be launched (cohort is {state.phase.value})")
    return [ce.PairingLaunched(pairing_id=s.pairing_id, mentor_id=s.mentor_id,
                               mentee_id=s.mentee_id, score=s.score, starts_at=cmd.starts_at,
                               rematch_of=s.rematch_of)
            for s in cmd.specs]


def rematch_spec(state: CohortState, waiting_id: str, partner: str, score: float,
                 run_id: str) -> LaunchSpec:
    """The pairing that rematches ``waiting_id`` (who waits) with ``partner``."""
    waiting = state.waiting[waiting_id]
    mentor, mentee = ((partner, waiting_id) if waiting.role is Role.MENTEE
                      else (waiting_id, partner))
    return LaunchSpec(
        pairing_id=pairing_id_for(state.cohort_id, mentor, mentee, state.next_attempt(mentee)),
        mentor_id=mentor, mentee_id=mentee, score=score, run_id=run_id,
        rematch_of=waiting.after_pairing)


def _pairing_ended(state: CohortState, cmd: cc.RecordPairingEnded,
                   now: datetime) -> list[DomainEvent]:
    """The pairing's end, and who joins the waiting pool for a rematch (no fault, no blame:
    the person left behind by an exit gets a new partner after the cool-off)."""
    pairing = state.active.get(cmd.pairing_id)
    if pairing is None:
        return []  # a repeated report: the first one was already recorded
    ended = ce.PairingEnded(**cmd.model_dump())
    events: list[DomainEvent] = [ended]
    if cmd.outcome is not ce.PairingEndOutcome.EXITED:
        return events
    if state.rematch_until is None or now >= state.rematch_until:
        return events
    if cmd.reason is ExitReason.INACTIVITY:
        return events  # both stopped showing up: nobody is left waiting for the other
    waiting: list[tuple[str, Role]] = []
    if cmd.leaving_employee_id is not None:
        if cmd.leaving_employee_id == pairing.mentee_id:
            waiting.append((pairing.mentor_id, Role.MENTOR))
        else:
            waiting.append((pairing.mentee_id, Role.MENTEE))
    elif cmd.initiated_by is ExitInitiator.MENTOR:
        waiting.append((pairing.mentee_id, Role.MENTEE))
    elif cmd.initiated_by is ExitInitiator.MENTEE:
        waiting.append((pairing.mentor_id, Role.MENTOR))
    else:
        waiting += [(pairing.mentee_id, Role.MENTEE), (pairing.mentor_id, Role.MENTOR)]
    available_at = now + timedelta(days=state.cool_off_days)
    for employee_id, role in waiting:
        if employee_id in state.left or employee_id in state.waiting:
            continue
        events.append(ce.ParticipantWaiting(employee_id=employee_id, role=role,
                                            after_pairing=cmd.pairing_id,
                                            available_at=available_at))
    return events


def _participant_left(state: CohortState, cmd: cc.RecordParticipantLeft) -> list[DomainEvent]:
    if cmd.employee_id in state.left:
        raise errors.AlreadyLeft(f"{cmd.employee_id} is already recorded as having left")
    if cmd.roster is None:
        raise ValueError("recording a departure needs the cohort's roster")
    if cmd.employee_id not in cmd.roster:
        raise errors.NotACohortMember(f"{cmd.employee_id} is not in cohort {state.cohort_id}",
                                      field="employee_id")
    return [ce.ParticipantLeft(employee_id=cmd.employee_id, left_on=cmd.left_on,
                               recorded_by=cmd.recorded_by)]


def _sync_roster(state: CohortState, cmd: cc.SyncRoster) -> list[DomainEvent]:
    """The roster change and, for each leaver, their departure (counted in retention). An
    empty difference records nothing, so syncing the same export twice is a no-op."""
    if state.phase not in (CohortPhase.SCHEDULED, CohortPhase.RUNNING):
        raise errors.CohortNotRunning(
            f"a roster sync needs an approved, running cohort (cohort is {state.phase.value})")
    diff = cmd.diff
    if diff.problems:
        raise errors.RosterChangeRefused("; ".join(diff.problems), field="people")
    if diff.is_empty:
        return []
    if cmd.base_digest != state.roster_digest:
        raise errors.RosterChangedSinceRead(
            f"the roster of cohort {state.cohort_id} changed since the export was compared "
            "with it; run the sync again")
    if cmd.roster is None or cmd.synced_on is None:
        raise ValueError("a roster sync needs the cohort's roster and its date")
    for joiner in diff.joiners:
        if joiner.employee_id in cmd.roster:
            raise errors.RosterChangeRefused(
                f"{joiner.employee_id} joins but is already on the roster", field="people")
    for employee_id in (*diff.leavers, *(m.employee_id for m in diff.changed)):
        if employee_id not in cmd.roster:
            raise errors.NotACohortMember(
                f"{employee_id} is not in cohort {state.cohort_id}", field="people")
        if employee_id in state.left:
            raise errors.AlreadyLeft(f"{employee_id} is already recorded as having left")
    events: list[DomainEvent] = [ce.RosterSynced(
        source=cmd.source, source_digest=cmd.source_digest, synced_by=cmd.synced_by,
        synced_on=cmd.synced_on, joiners=tuple(profile_json(p) for p in diff.joiners),
        leavers=diff.leavers, changed=diff.changed, roster_digest_before=cmd.base_digest,
        roster_digest_after=cmd.digest_after)]
    events += [ce.ParticipantLeft(employee_id=e, left_on=cmd.synced_on,
                                  recorded_by=cmd.synced_by) for e in diff.leavers]
    return events


def unpaired_mentees(state: CohortState, members: Mapping[str, str]) -> list[str]:
    """Mentees on the roster (``members``: employee id -> role) without a partner, still here
    and not waiting for a rematch: joiners, those the first match could not place, and those
    whose rematch found nobody. A joiners' match run offers them the mentors' remaining
    places (``exclusions`` keep them from a partner they exited)."""
    roles = {**members, **{k: r.value for k, r in state.joined.items()}}
    busy = state.busy
    unplaced = set(state.unplaced)
    return sorted(k for k, role in roles.items()
                  if role == Role.MENTEE.value
                  and (state.attempts.get(k, 0) == 0 or k in unplaced)
                  and k not in state.left and k not in busy and k not in state.waiting)


def _close_rematch_window(state: CohortState, now: datetime) -> list[DomainEvent]:
    if state.rematch_until is None or now < state.rematch_until:
        return []
    return [ce.RematchNotPossible(employee_id=k,
                                  reason="the rematch window closed before a partner was found")
            for k in sorted(state.waiting)]


def _complete(state: CohortState, now: datetime) -> list[DomainEvent]:
    if not is_finished(state):
        return []
    return [ce.CohortCompleted(completed_at=now, pairings=state.launched,
                               completed=state.completed, exited=state.exited)]


# --- the agenda ------------------------------------------------------------------------------


def due_for_rematch(state: CohortState, now: datetime) -> list[str]:
    return sorted(k for k, w in state.waiting.items() if w.available_at <= now)


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
