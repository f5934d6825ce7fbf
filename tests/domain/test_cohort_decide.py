"""Given/when/then tests of the pure cohort core: no Temporal, no database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from domain import cohort_commands as cc
from domain import cohort_events as ce
from domain import errors
from domain.cohort import (
    CohortPhase,
    CohortState,
    assuming_swaps_allowed,
    decide,
    fold,
    next_due,
    pairs_to_score,
    rematch_spec,
    unpaired_mentees,
)
from domain.cohort_commands import PairKey
from domain.events import DomainEvent, ExitInitiator, ExitReason
from domain.people import MatchProfile, Role
from domain.program import Approval, ProgramSpec
from domain.roster import apply_diff, diff_roster, people_digest
from intake import load_program

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# 2027-01-11 09:00 in Asia/Jakarta: the example program's start.
STARTS = datetime(2027, 1, 11, 2, 0, tzinfo=UTC)
BEFORE = STARTS - timedelta(days=5)
ROSTER = frozenset({"M1", "M2", "M3", "E1", "E2", "E3"})


def program(approval: Approval = Approval.MANUAL) -> ProgramSpec:
    return load_program(EXAMPLES / "program.yaml").model_copy(update={"approval": approval})


def given(events: list[DomainEvent], state: CohortState | None = None) -> CohortState:
    return fold(events, state)


def when(state: CohortState, command: cc.CohortCommand,
         now: datetime = BEFORE) -> list[DomainEvent]:
    return decide(state, command, now)


def started(approval: Approval = Approval.MANUAL) -> CohortState:
    return given(when(CohortState(), cc.StartCohort(
        cohort_id="C1", program=program(approval), people_digest="sha256:x", mentors=3,
        mentees=3)))


def pair(mentor: str, mentee: str, score: float = 0.5) -> ce.ProposedPair:
    return ce.ProposedPair(mentor=mentor, mentee=mentee, score=score)


def proposed(state: CohortState | None = None) -> CohortState:
    return given([ce.MatchRunRecorded(
        run_id="C1:initial", kind=ce.MatchRunKind.INITIAL, input_digest="d",
        algorithm_version="v", policy={}, total_score=1.5, pair_count=3, unmatched_count=0,
        pairs=(pair("M1", "E1"), pair("M2", "E2"), pair("M3", "E3")))], state or started())


def running() -> CohortState:
    """Approved as proposed and all three pairings launched at the program's start."""
    s = proposed()
    s = given(when(s, cc.ApproveProposal(approved_by="ops-ani")), s)
    return given(when(s, cc.RecordPairingsLaunched(specs=s.pending_launch, starts_at=STARTS),
                      STARTS), s)


def ended(pairing_id: str, *, by: ExitInitiator | None = ExitInitiator.MENTOR,
          reason: ExitReason | None = ExitReason.NOT_A_FIT,
          leaving: str | None = None) -> cc.RecordPairingEnded:
    return cc.RecordPairingEnded(
        pairing_id=pairing_id,
        outcome=ce.PairingEndOutcome.EXITED if reason else ce.PairingEndOutcome.COMPLETED,
        initiated_by=by if reason else None, reason=reason,
        phase_at_exit="active" if reason else None, leaving_employee_id=leaving,
        ended_at=STARTS + timedelta(days=3), meetings_held=1, meetings_missed=0)


DAY3 = STARTS + timedelta(days=3)


# --- starting ----------------------------------------------------------------------------------


def test_start_records_the_program_calendar() -> None:
    (event,) = when(CohortState(), cc.StartCohort(
        cohort_id="C1", program=program(), people_digest="sha256:x", mentors=3, mentees=3))
    assert isinstance(event, ce.CohortStarted)
    assert event.starts_at == STARTS and event.approval is Approval.MANUAL
    assert event.ends_at == STARTS + timedelta(days=182)
    s = given([event])
    assert s.phase is CohortPhase.MATCHING and s.approval is Approval.MANUAL


def test_a_cohort_set_up_after_its_start_date_starts_now() -> None:
    later = STARTS + timedelta(days=2)
    (event,) = when(CohortState(), cc.StartCohort(
        cohort_id="C1", program=program(), people_digest="d", mentors=1, mentees=1), later)
    assert isinstance(event, ce.CohortStarted) and event.starts_at == later


def test_starting_twice_is_refused() -> None:
    with pytest.raises(errors.CohortAlreadyStarted) as refused:
        when(started(), cc.StartCohort(cohort_id="C1", program=program(), people_digest="d",
                                       mentors=1, mentees=1))
    assert isinstance(refused.value, errors.NotAllowedNow)


# --- approval ----------------------------------------------------------------------------------


def test_approval_before_a_proposal_is_not_allowed_now() -> None:
    with pytest.raises(errors.NothingAwaitsApproval, match="cohort is matching") as refused:
        when(started(), cc.ApproveProposal(approved_by="ops-ani"))
    assert refused.value.code == "nothing_awaits_approval"
    assert isinstance(refused.value, errors.NotAllowedNow)


def test_approval_as_proposed_schedules_every_pair_as_a_first_attempt() -> None:
    s = proposed()
    events = when(s, cc.ApproveProposal(approved_by="ops-ani"))
    assert events == [ce.ProposalApproved(run_id="C1:initial", approved_by="ops-ani", pairs=3)]
    s = given(events, s)
    assert s.phase is CohortPhase.SCHEDULED and next_due(s) == STARTS
    assert [p.pairing_id for p in s.pending_launch] == ["C1.E1.M1.1", "C1.E2.M2.1",
                                                        "C1.E3.M3.1"]
    assert s.attempts == {"E1": 1, "E2": 1, "E3": 1}


def test_a_drop_and_a_swap_then_the_approval() -> None:
    s = proposed()
    created = [PairKey("M2", "E1"), PairKey("M1", "E2")]
    cmd = cc.ApproveProposal(approved_by="ops-ani", drop=(PairKey("M3", "E3"),),
                             swap=((PairKey("M1", "E1"), PairKey("M2", "E2")),))
    assert pairs_to_score(s, cmd) == created
    scored = cmd.model_copy(update={"swap_scores": (pair("M2", "E1", 0.7),
                                                    pair("M1", "E2", 0.4))})
    drop, swap, approved = when(s, scored)
    assert isinstance(drop, ce.ProposalAdjusted) and drop.action is ce.AdjustmentAction.DROP
    assert drop.pairs_before == (pair("M3", "E3"),) and drop.pairs_after == ()
    assert isinstance(swap, ce.ProposalAdjusted) and swap.action is ce.AdjustmentAction.SWAP
    assert swap.pairs_after == (pair("M2", "E1", 0.7), pair("M1", "E2", 0.4))
    assert approved == ce.ProposalApproved(run_id="C1:initial", approved_by="ops-ani", pairs=2)
    s = given([drop, swap, approved], s)
    assert {(p.mentor_id, p.mentee_id, p.score) for p in s.pending_launch} == {
        ("M2", "E1", 0.7), ("M1", "E2", 0.4)}


def test_dropping_a_pair_that_was_not_proposed_is_invalid() -> None:
    with pytest.raises(errors.NotAProposedPair, match="M9-E9 is not a proposed pair") as bad:
        when(proposed(), cc.ApproveProposal(approved_by="ops-ani", drop=(PairKey("M9", "E9"),)))
    assert bad.value.field == "drop" and bad.value.code == "not_a_proposed_pair"
    assert isinstance(bad.value, errors.InvalidCommand)


def test_a_pair_named_twice_is_refused() -> None:
    twice = cc.ApproveProposal(approved_by="ops-ani", drop=(PairKey("M1", "E1"),),
                               swap=((PairKey("M1", "E1"), PairKey("M2", "E2")),),
                               swap_scores=())
    with pytest.raises(errors.NotAProposedPair) as bad:
        when(proposed(), twice)
    assert bad.value.field == "swap"


def test_a_swap_the_matcher_did_not_score_breaks_a_hard_constraint() -> None:
    cmd = cc.ApproveProposal(approved_by="ops-ani",
                             swap=((PairKey("M1", "E1"), PairKey("M2", "E2")),),
                             swap_scores=(pair("M2", "E1", 0.7),))
    with pytest.raises(errors.PairBreaksHardConstraint, match="M1 cannot mentor E2") as bad:
        when(proposed(), cmd)
    assert bad.value.code == "pair_breaks_hard_constraint" and bad.value.field == "swap"


def test_the_validators_view_assumes_the_matcher_allows_the_swap() -> None:
    cmd = cc.ApproveProposal(approved_by="ops-ani",
                             swap=((PairKey("M1", "E1"), PairKey("M2", "E2")),))
    with pytest.raises(ValueError, match="matcher's scores"):
        when(proposed(), cmd)  # the handler must ask the matcher first
    events = when(proposed(), assuming_swaps_allowed(proposed(), cmd))
    assert [type(ev).__name__ for ev in events] == ["ProposalAdjusted", "ProposalApproved"]


def test_matcher_facts_never_travel_with_the_command() -> None:
    cmd = cc.ApproveProposal(approved_by="ops-ani", swap_scores=(pair("M1", "E1"),))
    assert cmd.model_dump(mode="json") == {"approved_by": "ops-ani", "drop": [], "swap": []}
    assert cc.ApproveProposal.model_validate(
        {"approved_by": "a", "drop": [["M1", "E1"]], "swap": []}).drop == (PairKey("M1", "E1"),)


def test_approving_twice_is_not_allowed_now() -> None:
    s = proposed()
    s = given(when(s, cc.ApproveProposal(approved_by="ops-ani")), s)
    with pytest.raises(errors.NothingAwaitsApproval, match="cohort is scheduled"):
        when(s, cc.ApproveProposal(approved_by="ops-ani"))


# --- launching, ending, rematching -----------------------------------------------------------


def test_launching_before_approval_is_not_allowed_now() -> None:
    spec = cc.LaunchSpec(pairing_id="C1.E1.M1.1", mentor_id="M1", mentee_id="E1", score=0.5,
                         run_id="C1:initial")
    with pytest.raises(errors.CohortNotRunning):
        when(proposed(), cc.RecordPairingsLaunched(specs=(spec,), starts_at=STARTS))


def test_launches_start_the_cohort_running() -> None:
    s = running()
    assert s.phase is CohortPhase.RUNNING and s.launched == 3 and not s.pending_launch
    assert s.mentor_load == {"M1": 1, "M2": 1, "M3": 1}


def test_a_mentor_exit_leaves_the_mentee_waiting_a_cool_off() -> None:
    s = running()
    events = when(s, ended("C1.E1.M1.1"), DAY3)
    assert [type(ev).__name__ for ev in events] == ["PairingEnded", "ParticipantWaiting"]
    waiting = events[1]
    assert isinstance(waiting, ce.ParticipantWaiting)
    assert waiting.employee_id == "E1" and waiting.role is Role.MENTEE
    assert waiting.available_at == DAY3 + timedelta(days=s.cool_off_days)
    s = given(events, s)
    assert s.exclusions == (PairKey("M1", "E1"),) and s.exited == 1
    assert next_due(s) == waiting.available_at
    # The same report again (a re-sent signal) records nothing.
    assert when(s, ended("C1.E1.M1.1"), DAY3) == []


@pytest.mark.parametrize(("by", "reason", "leaving", "waits"), [
    (ExitInitiator.MENTEE, ExitReason.NOT_A_FIT, None, [("M1", Role.MENTOR)]),
    (ExitInitiator.OPS, ExitReason.OTHER, None, [("E1", Role.MENTEE), ("M1", Role.MENTOR)]),
    (ExitInitiator.OPS, ExitReason.LEFT_COMPANY, "E1", [("M1", Role.MENTOR)]),
    (ExitInitiator.OPS, ExitReason.LEFT_COMPANY, "M1", [("E1", Role.MENTEE)]),
    (ExitInitiator.SYSTEM, ExitReason.INACTIVITY, None, []),
    (None, None, None, []),
])
def test_who_waits_after_an_ending(by: ExitInitiator | None, reason: ExitReason | None,
                                   leaving: str | None, waits: list[tuple[str, Role]]) -> None:
    events = when(running(), ended("C1.E1.M1.1", by=by, reason=reason, leaving=leaving), DAY3)
    assert [(ev.employee_id, ev.role) for ev in events
            if isinstance(ev, ce.ParticipantWaiting)] == waits


def test_nobody_waits_once_the_rematch_window_has_closed() -> None:
    s = running()
    assert s.rematch_until is not None
    assert len(when(s, ended("C1.E1.M1.1"), s.rematch_until)) == 1


def test_a_rematch_is_the_next_attempt_and_clears_the_wait() -> None:
    s = given(when(running(), ended("C1.E1.M1.1"), DAY3), running())
    spec = rematch_spec(s, "E1", "M3", 0.6, "C1:rematch:E1:2")
    assert spec.pairing_id == "C1.E1.M3.2" and spec.rematch_of == "C1.E1.M1.1"
    later = DAY3 + timedelta(days=8)
    s = given(when(s, cc.RecordPairingsLaunched(specs=(spec,), starts_at=later), later), s)
    assert s.attempts["E1"] == 2 and s.rematched == 1 and "E1" not in s.waiting
    assert s.mentor_load["M3"] == 2
    assert rematch_spec(given(when(s, ended("C1.E1.M3.2"), later), s), "E1", "M2", 0.5,
                        "r").pairing_id == "C1.E1.M2.3"


def test_a_waiting_mentor_is_rematched_under_the_mentees_next_attempt() -> None:
    s = given(when(running(), ended("C1.E1.M1.1", by=ExitInitiator.MENTEE), DAY3), running())
    assert rematch_spec(s, "M1", "E7", 0.4, "r").pairing_id == "C1.E7.M1.1"


def test_the_rematch_window_closing_ends_every_wait() -> None:
    s = running()
    s = given(when(s, ended("C1.E1.M1.1", by=ExitInitiator.OPS, reason=ExitReason.OTHER),
                   DAY3), s)
    assert s.rematch_until is not None
    assert when(s, cc.CloseRematchWindow(), s.rematch_until - timedelta(seconds=1)) == []
    events = when(s, cc.CloseRematchWindow(), s.rematch_until)
    assert [(ev.employee_id, type(ev).__name__) for ev in events  # type: ignore[attr-defined]
            ] == [("E1", "RematchNotPossible"), ("M1", "RematchNotPossible")]
    assert given(events, s).waiting == {}


def test_no_rematch_possible_ends_one_wait() -> None:
    s = given(when(running(), ended("C1.E1.M1.1"), DAY3), running())
    events = when(s, cc.RecordRematchNotPossible(employee_id="E1", reason="no mentor free"))
    assert given(events, s).waiting == {}


# --- departures and completion -------------------------------------------------------------


def test_a_departure_needs_a_member_who_has_not_left_yet() -> None:
    s = running()
    left = cc.RecordParticipantLeft(employee_id="E2", left_on=date(2027, 1, 13),
                                    recorded_by="hr-import", roster=ROSTER)
    events = when(s, left, DAY3)
    assert events == [ce.ParticipantLeft(employee_id="E2", left_on=date(2027, 1, 13),
                                         recorded_by="hr-import")]
    s = given(events, s)
    with pytest.raises(errors.AlreadyLeft) as again:
        when(s, left, DAY3)
    assert again.value.code == "already_left" and isinstance(again.value, errors.NotAllowedNow)
    with pytest.raises(errors.NotACohortMember) as stranger:
        when(s, left.model_copy(update={"employee_id": "X9"}), DAY3)
    assert stranger.value.field == "employee_id"
    assert isinstance(stranger.value, errors.InvalidCommand)
    with pytest.raises(ValueError, match="roster"):
        when(s, left.model_copy(update={"employee_id": "E3", "roster": None}), DAY3)
    # Whoever has left is not put back in the waiting pool when their partner exits.
    events = when(s, ended("C1.E2.M2.1", by=ExitInitiator.MENTOR), DAY3)
    assert [type(ev).__name__ for ev in events] == ["PairingEnded"]


def test_completion_waits_for_every_pairing() -> None:
    s = running()
    assert when(s, cc.CompleteCohort(), DAY3) == []
    for pairing_id in sorted(s.active):
        s = given(when(s, ended(pairing_id, reason=None), DAY3), s)
    (done,) = when(s, cc.CompleteCohort(), DAY3)
    assert done == ce.CohortCompleted(completed_at=DAY3, pairings=3, completed=3, exited=0)
    assert given([done], s).phase is CohortPhase.COMPLETED


def test_every_cohort_refusal_has_its_own_stable_code() -> None:
    cohort_errors = [errors.NotACohortMember, errors.NotAProposedPair,
                     errors.PairBreaksHardConstraint, errors.CohortAlreadyStarted,
                     errors.NothingAwaitsApproval, errors.CohortNotRunning, errors.AlreadyLeft,
                     errors.RosterChangeRefused, errors.RosterChangedSinceRead]
    codes = [cls.code for cls in cohort_errors]
    assert len(set(codes)) == len(codes)
    assert all(issubclass(cls, errors.InvalidCommand | errors.NotAllowedNow)
               for cls in cohort_errors)


# --- roster sync -------------------------------------------------------------------------------

WEEK3 = STARTS + timedelta(days=21)


def _profile(employee_id: str, role: Role = Role.MENTEE, **overrides: object) -> MatchProfile:
    fields: dict[str, object] = dict(
        employee_id=employee_id, role=role, level=3, department="IT",
        hire_date=date(2026, 9, 1), timezone="Asia/Jakarta",
        capacity=1 if role is Role.MENTOR else 0)
    fields.update(overrides)
    return MatchProfile.model_validate(fields)


CURRENT = [_profile("M1", Role.MENTOR, level=4), _profile("M2", Role.MENTOR, level=4),
           _profile("M3", Role.MENTOR, level=4), _profile("E1"), _profile("E2"),
           _profile("E3")]


def sync(incoming: list[MatchProfile], *, base: str = "sha256:x",
         departed: tuple[str, ...] = ()) -> cc.SyncRoster:
    diff = diff_roster(CURRENT, incoming, departed)
    return cc.SyncRoster(source="people-week3.csv", source_digest="f" * 64, synced_by="hr",
                         synced_on=date(2027, 2, 1), base_digest=base,
                         digest_after=people_digest(apply_diff(CURRENT, diff)), diff=diff,
                         roster=ROSTER)


def test_a_sync_records_the_change_then_each_leaver_and_moves_the_digest() -> None:
    s = running()
    incoming = [p for p in CURRENT if p.employee_id != "E2"] + [_profile("E4")]
    events = when(s, sync(incoming), WEEK3)
    assert [type(x) for x in events] == [ce.RosterSynced, ce.ParticipantLeft]
    synced, left = events
    assert isinstance(synced, ce.RosterSynced) and isinstance(left, ce.ParticipantLeft)
    assert [j["employee_id"] for j in synced.joiners] == ["E4"] and synced.leavers == ("E2",)
    assert left == ce.ParticipantLeft(employee_id="E2", left_on=date(2027, 2, 1),
                                      recorded_by="hr")
    after = given(events, s)
    assert after.roster_digest == synced.roster_digest_after != s.roster_digest
    assert after.joined == {"E4": Role.MENTEE} and "E2" in after.left
    # Computed against the roster before this sync: refused now, nothing applied twice.
    with pytest.raises(errors.RosterChangedSinceRead):
        when(after, sync(incoming), WEEK3)


def test_the_same_export_again_records_nothing() -> None:
    assert when(running(), sync(CURRENT), WEEK3) == []


def test_a_role_change_refuses_the_whole_sync() -> None:
    incoming = [p if p.employee_id != "E1" else _profile("E1", Role.MENTOR, level=4)
                for p in CURRENT] + [_profile("E4")]
    with pytest.raises(errors.RosterChangeRefused) as refused:
        when(running(), sync(incoming), WEEK3)
    assert "E1" in str(refused.value)


def test_a_departed_member_is_neither_left_again_nor_followed() -> None:
    without = [p for p in CURRENT if p.employee_id != "E2"]
    assert diff_roster(CURRENT, without, departed=("E2",)).is_empty
    # The export lags the departure recorded by hand (and changes them): ignored, shown.
    lagging = [p if p.employee_id != "E2" else _profile("E2", level=2) for p in CURRENT]
    still = diff_roster(CURRENT, lagging, departed=("E2",))
    assert still.is_empty and not still.problems and still.departed_but_listed == ("E2",)


def test_a_sync_waits_for_the_approval() -> None:
    with pytest.raises(errors.CohortNotRunning):
        when(proposed(), sync([*CURRENT, _profile("E4")]))


def test_joiners_proposal_in_a_running_cohort_awaits_approval_then_adds_launches() -> None:
    s = running()
    s = given(when(s, sync([*CURRENT, _profile("E4")]), WEEK3), s)
    assert unpaired_mentees(s, {k: "mentee" if k.startswith("E") else "mentor"
                                for k in ROSTER}) == ["E4"]
    s = given([ce.MatchRunRecorded(
        run_id="C1:joiners:2", kind=ce.MatchRunKind.JOINERS, input_digest="d",
        algorithm_version="v", policy={}, total_score=0.5, pair_count=1, unmatched_count=0,
        pairs=(pair("M1", "E4"),))], s)
    assert s.joiner_proposal and s.phase is CohortPhase.RUNNING
    approved = when(s, cc.ApproveProposal(approved_by="ops-ani"), WEEK3)
    s = given(approved, s)
    assert s.phase is CohortPhase.RUNNING and not s.joiner_proposal
    assert [p.pairing_id for p in s.pending_launch] == ["C1.E4.M1.1"]
    assert len(s.active) == 3  # the running pairs are untouched


def test_a_conflict_is_flagged_only_for_a_running_pairing() -> None:
    s = running()
    pid = sorted(s.active)[0]
    conflict = cc.RosterConflict(pairing_id=pid, mentor_id=s.active[pid].mentor_id,
                                 mentee_id=s.active[pid].mentee_id, changed_employee_id="E1",
                                 constraint="reporting_chain", reason="reporting chain")
    gone = conflict.model_copy(update={"pairing_id": "C1.E9.M9.1"})
    events = when(s, cc.RecordRosterConflicts(conflicts=(conflict, gone)), WEEK3)
    assert events == [ce.RosterConflictFlagged(**conflict.model_dump())]
    assert given(events, s).active == s.active  # flagged, never ended silently


def test_a_mentee_whose_rematch_found_nobody_is_offered_new_places_later() -> None:
    s = given(when(running(), ended("C1.E1.M1.1"), DAY3), running())
    s = given(when(s, cc.RecordRematchNotPossible(employee_id="E1", reason="no mentor free")), s)
    members = {k: "mentee" if k.startswith("E") else "mentor" for k in ROSTER}
    assert unpaired_mentees(s, members) == ["E1"]
    s = given([ce.PairingLaunched(pairing_id="C1.E1.M4.2", mentor_id="M4", mentee_id="E1",
                                  score=0.4, starts_at=WEEK3)], s)
    assert unpaired_mentees(s, members) == [] and s.unplaced == ()
