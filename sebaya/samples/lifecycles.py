"""Realistic pairing and cohort streams without Temporal: the domain's own ``decide``/``fold``
driven through time the way ``PairingWorkflow`` drives it, then appended to the store.

Clock events are decided at the instant they fall due (as the workflow's durable timer does)
and participants act at chosen instants, so the streams have the same shapes, actors and
domain times as a workflow would leave. Match runs record the algorithm version the matching
activity records. Used by the audit and projection tests and by ``bench/replay.py`` (which
clones these streams in bulk); it lives here, not under ``tests/``, so the bench does not
import from the test suite.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from domain import commands as c
from domain import events as e
from domain.cohort_events import (
    CohortCompleted,
    CohortStarted,
    MatchRunRecorded,
    PairingEnded,
    PairingLaunched,
    ParticipantLeft,
    ParticipantWaiting,
    ProposalApproved,
    ProposedPair,
)
from domain.events import DomainEvent
from domain.ids import (
    cohort_stream,
    cohort_workflow_id,
    event_id_for,
    pairing_id_for,
    pairing_stream,
    pairing_workflow_id,
)
from domain.matching import ALGORITHM_VERSION, REMATCH_ALGORITHM_VERSION
from domain.pairing import PairingState, Phase, decide, fold, next_due
from domain.rules import GroundRules
from eventstore import EventMetadata, EventStore, NewEvent

T0 = datetime(2025, 3, 3, 2, 0, tzinfo=UTC)  # a Monday, 09:00 in Jakarta
TOPICS = ("adaptasi budaya kerja", "keterampilan IT", "kepemimpinan", "karier")
SYSTEM = c.Actor.system()
OPS = c.Actor.ops("ops-test")


def rules(**overrides: Any) -> GroundRules:
    return GroundRules(topics=TOPICS, **overrides)


def goals(prefix: str, n: int = 2) -> tuple[e.Goal, ...]:
    return tuple(
        e.Goal(goal_id=f"{prefix}-{i}", title=f"Tujuan {prefix} {i}",
               success_measure="dinilai bersama di evaluasi akhir")
        for i in range(1, n + 1)
    )


@dataclass(frozen=True)
class Decision:
    """Events one decision produced: what the workflow hands to one append."""

    stream_id: str
    events: tuple[DomainEvent, ...]
    actor: str
    occurred_at: datetime
    workflow_id: str
    correlation_id: str


@dataclass
class PairingSim:
    """One pairing, decided step by step. ``decisions`` is its stream, grouped by append."""

    pairing_id: str
    cohort_id: str
    mentor: str
    mentee: str
    state: PairingState = field(default_factory=PairingState)
    decisions: list[Decision] = field(default_factory=list)

    @classmethod
    def start(
        cls, *, cohort_id: str = "C-test", mentor: str = "M001", mentee: str = "E001",
        at: datetime = T0, ground_rules: GroundRules | None = None, score: float = 0.82,
        explanation: dict[str, Any] | None = None, rematch_of: str | None = None,
        attempt: int = 1, actor: c.Actor = OPS,
    ) -> PairingSim:
        pairing_id = pairing_id_for(cohort_id, mentor, mentee, attempt)
        sim = cls(pairing_id, cohort_id, mentor, mentee)
        sim._decide(c.StartPairing(
            actor=actor, pairing_id=pairing_id, cohort_id=cohort_id, mentor_id=mentor,
            mentee_id=mentee, ground_rules=ground_rules or rules(), match_score=score,
            explanation=explanation if explanation is not None else {
                "questionnaire": {"value": 0.7, "weight": 0.5, "points": 0.35},
                "cross_functional": {"value": 1.0, "weight": 0.1, "points": 0.1},
            },
            rematch_of=rematch_of,
        ), at)
        return sim

    @property
    def stream_id(self) -> str:
        return pairing_stream(self.pairing_id)

    @property
    def started_at(self) -> datetime:
        assert self.state.started_at is not None
        return self.state.started_at

    def _decide(self, command: c.PairingCommand, at: datetime) -> list[DomainEvent]:
        events = decide(self.state, command, at)
        if events:
            self.state = fold(events, self.state)
            self.decisions.append(Decision(
                self.stream_id, tuple(events), str(command.actor), at,
                pairing_workflow_id(self.pairing_id), self.cohort_id,
            ))
        return events

    def clock_to(self, at: datetime) -> None:
        """Let every timer due by ``at`` fire, each at its own instant."""
        while not self.state.is_closed:
            due = next_due(self.state)
            if due is None or due > at:
                return
            self._decide(c.AdvanceClock(actor=SYSTEM), due)

    def act(self, command: c.PairingCommand, at: datetime) -> list[DomainEvent]:
        self.clock_to(at)
        return self._decide(command, at)

    # --- participants ------------------------------------------------------------------

    @property
    def mentor_actor(self) -> c.Actor:
        return c.Actor.employee(self.mentor)

    @property
    def mentee_actor(self) -> c.Actor:
        return c.Actor.employee(self.mentee)

    def set_goals(self, at: datetime) -> None:
        self.act(c.SetGoals(actor=self.mentee_actor, goals=goals("it")), at)
        self.act(c.SetGoals(actor=self.mentor_actor, goals=goals("lead")), at)

    def next_meeting_at(self) -> datetime | None:
        pending = self.state.next_meeting
        return None if pending is None else pending.scheduled_at

    def hold_next_meeting(self, *, late: timedelta = timedelta(hours=1), minutes: int = 60,
                          progress: int = 10) -> None:
        pending = self.state.next_meeting
        assert pending is not None
        self.act(c.LogMeeting(
            actor=self.mentee_actor if pending.meeting_no % 2 else self.mentor_actor,
            meeting_no=pending.meeting_no, held=True, minutes=minutes,
            topics=("keterampilan IT", "karier") if pending.meeting_no % 3 else ("kepemimpinan",),
            goal_progress={"it-1": min(100, progress)} if len(self.state.goals) == 2 else {},
        ), pending.scheduled_at + late)

    def midpoint(self, *, mentee_sat: int = 4, mentor_sat: int = 5,
                 mentee_continue: bool = True) -> None:
        opens = self.state.rules.midpoint_opens(self.started_at) if self.state.rules else None
        assert opens is not None
        at = opens + timedelta(hours=1)
        self.act(c.SubmitMidpointReview(actor=self.mentee_actor, satisfaction=mentee_sat,
                                        wants_to_continue=mentee_continue), at)
        if not self.state.is_closed:
            self.act(c.SubmitMidpointReview(actor=self.mentor_actor, satisfaction=mentor_sat,
                                            wants_to_continue=True), at)

    def final(self, *, mentee_learned: str = "Percaya diri memimpin rapat",
              mentor_learned: str = "Cara generasi baru bekerja dengan AI") -> None:
        end = self.state.rules.program_end(self.started_at) if self.state.rules else None
        assert end is not None
        at = end + timedelta(hours=1)
        for actor, learned, attain in ((self.mentee_actor, mentee_learned, {"it-1": 90}),
                                       (self.mentor_actor, mentor_learned, {"lead-1": 70})):
            self.act(c.SubmitFinalEvaluation(
                actor=actor, relationship_rating=5, program_rating=4, learned=learned,
                would_recommend=True, goal_attainment=attain), at)

    def exit(self, at: datetime, *, actor: c.Actor | None = None,
             reason: e.ExitReason = e.ExitReason.NOT_A_FIT,
             leaving: str | None = None) -> None:
        self.act(c.RequestExit(actor=actor or self.mentee_actor, reason=reason,
                               leaving_employee_id=leaving), at)


# --- whole lifecycles ------------------------------------------------------------------------


def completed_pairing(sim: PairingSim, *, skip: Sequence[int] = (), rng: random.Random | None
                      = None) -> PairingSim:
    """Goals on day 1, weekly meetings (those numbered in ``skip`` are missed and found by the
    clock), both reviews at the mid-point, both evaluations at the end: completed."""
    sim.set_goals(sim.started_at + timedelta(hours=1))
    mid = sim.state.rules.midpoint_opens(sim.started_at) if sim.state.rules else None
    assert mid is not None
    reviewed = False
    while not sim.state.is_closed:
        pending = sim.state.next_meeting
        if not reviewed and (pending is None or pending.scheduled_at > mid):
            sim.midpoint()
            reviewed = True
            continue
        if pending is None:
            break
        if pending.meeting_no in skip:
            # Nobody logs it: the clock records it missed after the grace period.
            sim.clock_to(pending.scheduled_at + timedelta(days=3))
            continue
        minutes = rng.choice((45, 60, 75)) if rng else 60
        sim.hold_next_meeting(minutes=minutes, progress=4 * pending.meeting_no)
    sim.final()
    return sim


def exited_pairing(sim: PairingSim, *, after: timedelta, actor: c.Actor | None = None,
                   reason: e.ExitReason = e.ExitReason.NOT_A_FIT,
                   leaving: str | None = None) -> PairingSim:
    """Goals on day 1, every meeting held, then an exit ``after`` the start."""
    sim.set_goals(sim.started_at + timedelta(hours=1))
    end = sim.started_at + after
    while (at := sim.next_meeting_at()) is not None and at + timedelta(hours=1) < end:
        sim.hold_next_meeting()
    sim.exit(end, actor=actor, reason=reason, leaving=leaving)
    return sim


def silent_pairing(sim: PairingSim, *, until: timedelta) -> PairingSim:
    """Nobody sets goals or logs anything: overdue goals, missed meetings, an escalation."""
    sim.clock_to(sim.started_at + until)
    return sim


# --- a cohort ----------------------------------------------------------------------------------


@dataclass
class CohortSim:
    """A cohort's own stream plus its pairings: launched, ended, waiting, rematched, left."""

    cohort_id: str
    starts_at: datetime = T0
    decisions: list[Decision] = field(default_factory=list)
    pairings: dict[str, PairingSim] = field(default_factory=dict)
    _version: int = 0

    def record(self, at: datetime, *events: DomainEvent, actor: c.Actor = SYSTEM) -> None:
        self.decisions.append(Decision(
            cohort_stream(self.cohort_id), tuple(events), str(actor), at,
            cohort_workflow_id(self.cohort_id), self.cohort_id,
        ))

    def begin(self, pairs: Sequence[tuple[str, str, float]], *, run_id: str = "run-1",
              program_name: str = "Program Mentoring 2025") -> None:
        at = self.starts_at - timedelta(days=3)
        self.record(at, CohortStarted(
            cohort_id=self.cohort_id, program_name=program_name,
            objective={"kind": "new_hire_retention", "metric": "retention_45d"},
            baseline={"retention_45d": 0.78, "retention_1y": 0.6},
            starts_at=self.starts_at, ends_at=self.starts_at + timedelta(days=182),
            rematch_until=self.starts_at + timedelta(days=120), cool_off_days=7,
            approval="manual", people_digest="sha256:" + "ab" * 32,
            mentors=len({m for m, _, _ in pairs}), mentees=len(pairs),
        ), actor=OPS)
        self.record(at, MatchRunRecorded(
            run_id=run_id, kind="initial", input_digest="sha256:" + "cd" * 32,
            algorithm_version=ALGORITHM_VERSION, policy={"objective": "balanced"},
            total_score=round(sum(s for _, _, s in pairs), 6), pair_count=len(pairs),
            unmatched_count=0,
            pairs=tuple(ProposedPair(mentor=m, mentee=n, score=s) for m, n, s in pairs),
        ))
        self.record(at + timedelta(hours=2),
                    ProposalApproved(run_id=run_id, approved_by="ops:ops-test",
                                     pairs=len(pairs)), actor=OPS)

    def launch(self, mentor: str, mentee: str, score: float, *, at: datetime | None = None,
               rematch_of: str | None = None, attempt: int = 1,
               ground_rules: GroundRules | None = None) -> PairingSim:
        start = at or self.starts_at
        sim = PairingSim.start(cohort_id=self.cohort_id, mentor=mentor, mentee=mentee,
                               at=start, score=score, rematch_of=rematch_of, attempt=attempt,
                               ground_rules=ground_rules, actor=SYSTEM if rematch_of else OPS)
        self.pairings[sim.pairing_id] = sim
        self.record(start, PairingLaunched(pairing_id=sim.pairing_id, mentor_id=mentor,
                                           mentee_id=mentee, score=score, starts_at=start,
                                           rematch_of=rematch_of))
        return sim

    def ended(self, sim: PairingSim, *, wait: bool = False) -> None:
        s = sim.state
        assert s.is_closed
        at = s.completed_at or (s.exit.exited_at if s.exit else None)
        assert at is not None
        ex = s.exit
        self.record(at, PairingEnded(
            pairing_id=sim.pairing_id,
            outcome="completed" if s.phase is Phase.COMPLETED else "exited",
            initiated_by=ex.initiated_by.value if ex else None,
            reason=ex.reason.value if ex else None,
            phase_at_exit=ex.phase_at_exit if ex else None,
            leaving_employee_id=ex.leaving_employee_id if ex else None,
            ended_at=at, meetings_held=s.meetings_held, meetings_missed=s.meetings_missed,
        ))
        if wait and ex is not None:
            stays = sim.mentee if ex.leaving_employee_id != sim.mentee else sim.mentor
            role = "mentee" if stays == sim.mentee else "mentor"
            self.record(at, ParticipantWaiting(employee_id=stays, role=role,
                                               after_pairing=sim.pairing_id,
                                               available_at=at + timedelta(days=7)))

    def left_company(self, employee_id: str, on: date) -> None:
        self.record(datetime.combine(on, datetime.min.time(), UTC) + timedelta(hours=3),
                    ParticipantLeft(employee_id=employee_id, left_on=on,
                                    recorded_by="hr-import"), actor=OPS)

    def complete(self, at: datetime) -> None:
        ended = [p.state for p in self.pairings.values()]
        self.record(at, CohortCompleted(
            completed_at=at, pairings=len(ended),
            completed=sum(1 for s in ended if s.phase is Phase.COMPLETED),
            exited=sum(1 for s in ended if s.phase is Phase.EXITED),
        ))

    def all_decisions(self) -> list[Decision]:
        """Cohort and pairing decisions merged in domain-time order (stable per stream)."""
        merged = list(self.decisions)
        for sim in self.pairings.values():
            merged += sim.decisions
        return sorted(merged, key=lambda d: d.occurred_at)


def sample_cohort(cohort_id: str = "C1", *, seed: int = 7) -> CohortSim:
    """A small cohort with every path an auditor asks about: two completed pairings (one with
    missed meetings), an exit at the mid-point whose mentee is rematched and completes, a
    pairing ended because the mentee left the company, and a silent, escalated pairing."""
    rng = random.Random(seed)
    cohort = CohortSim(cohort_id)
    pairs = [("M01", "E01", 0.91), ("M02", "E02", 0.84), ("M03", "E03", 0.77),
             ("M04", "E04", 0.7), ("M05", "E05", 0.66)]
    cohort.begin(pairs)
    sims = [cohort.launch(m, n, s) for m, n, s in pairs]
    completed_pairing(sims[0], rng=rng)
    completed_pairing(sims[1], skip=(3, 4, 5, 9), rng=rng)
    exited_pairing(sims[2], after=timedelta(days=40), actor=sims[2].mentor_actor,
                   reason=e.ExitReason.SCHEDULE_CONFLICT)
    exited_pairing(sims[3], after=timedelta(days=30), actor=OPS,
                   reason=e.ExitReason.LEFT_COMPANY, leaving="E04")
    silent_pairing(sims[4], until=timedelta(days=60))
    for sim in sims[:4]:
        cohort.ended(sim, wait=sim is sims[2])
    cohort.left_company("E04", (sims[3].started_at + timedelta(days=30)).date())
    # The mentee of the exited pairing waits a week, then a rematch run pairs them with M01's
    # spare place.
    exited_at = sims[2].state.exit.exited_at if sims[2].state.exit else T0
    rematch_at = exited_at + timedelta(days=7)
    cohort.record(rematch_at, MatchRunRecorded(
        run_id="run-2", kind="rematch", input_digest="sha256:" + "ef" * 32,
        algorithm_version=REMATCH_ALGORITHM_VERSION, policy={"objective": "balanced"},
        total_score=0.73, pair_count=1, unmatched_count=0,
        pairs=(ProposedPair(mentor="M01", mentee="E03", score=0.73),),
    ))
    rematch = cohort.launch("M01", "E03", 0.73, at=rematch_at, rematch_of=sims[2].pairing_id)
    completed_pairing(rematch, rng=rng)
    cohort.ended(rematch)
    return cohort


# --- into the store ----------------------------------------------------------------------------


def new_events(decision: Decision, first_version: int) -> list[NewEvent]:
    """The store's envelope for one decision, exactly as the workflow builds it."""
    return [
        NewEvent(
            event_id=event_id_for(decision.stream_id, first_version + i),
            type=ev.event_type,
            schema_version=ev.schema_version,
            payload=ev.model_dump(mode="json"),
            metadata=EventMetadata(
                actor=decision.actor, occurred_at=decision.occurred_at,
                workflow_id=decision.workflow_id, correlation_id=decision.correlation_id,
            ),
        )
        for i, ev in enumerate(decision.events)
    ]


async def append_decisions(store: EventStore, decisions: Sequence[Decision],
                           versions: dict[str, int] | None = None) -> int:
    """Append each decision as its own transaction, in the given order; returns how many
    events. ``versions`` (stream -> current version) lets a caller append in parts."""
    versions = versions if versions is not None else {}
    count = 0
    for decision in decisions:
        version = versions.get(decision.stream_id, 0)
        await store.append(decision.stream_id, version, new_events(decision, version + 1))
        versions[decision.stream_id] = version + len(decision.events)
        count += len(decision.events)
    return count
