"""The projector's in-place fold equals ``domain.pairing.evolve``, event by event: same fields,
same events, and the same state (as the domain's model, to the byte of its JSON) after every
event of many lifecycles that together contain every pairing event type."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from domain import commands as c
from domain import events as e
from domain.events import PAIRING_EVENTS, DomainEvent
from domain.pairing import PairingState, evolve
from projections.pairing import mutable_values, pairing_constants
from projections.pairing_fold import FIELDS, KNOWN_EVENTS, PairingFold
from sebaya.samples.lifecycles import (
    OPS,
    T0,
    PairingSim,
    completed_pairing,
    exited_pairing,
    sample_cohort,
    silent_pairing,
)


def lifecycles() -> list[PairingSim]:
    sims = list(sample_cohort().pairings.values())
    rng = random.Random(11)
    for k in range(30):
        sim = PairingSim.start(cohort_id="CF", mentor=f"M{k}", mentee=f"E{k}",
                               at=T0 + timedelta(hours=k))
        roll = k % 4
        if roll == 0:
            completed_pairing(sim, skip=rng.sample(range(2, 20), k=3), rng=rng)
        elif roll == 1:
            exited_pairing(sim, after=timedelta(days=rng.randint(5, 150)),
                           actor=rng.choice((sim.mentor_actor, sim.mentee_actor, OPS)),
                           reason=e.ExitReason.WORKLOAD)
        elif roll == 2:
            silent_pairing(sim, until=timedelta(days=200))
        else:
            # Goals, a moved meeting, a mentee who wants out at mid-point, then an exit.
            sim.set_goals(sim.started_at + timedelta(hours=2))
            pending = sim.state.next_meeting
            assert pending is not None
            sim.act(c.RescheduleMeeting(actor=sim.mentor_actor, meeting_no=pending.meeting_no,
                                        new_time=pending.scheduled_at + timedelta(days=2)),
                    pending.scheduled_at - timedelta(days=1))
            sim.hold_next_meeting()
            sim.midpoint(mentee_continue=False)
            if not sim.state.is_closed:
                sim.exit(sim.started_at + timedelta(days=100))
        sims.append(sim)
    return sims


def test_knows_every_field_and_event_of_the_domain() -> None:
    assert set(FIELDS) == set(PairingState.model_fields)
    assert set(KNOWN_EVENTS) == set(PAIRING_EVENTS)


def test_equals_evolve_after_every_event() -> None:
    seen: set[type[DomainEvent]] = set()
    for sim in lifecycles():
        domain_state = PairingState()
        fold = PairingFold()
        for decision in sim.decisions:
            for event in decision.events:
                seen.add(type(event))
                domain_state = evolve(domain_state, event)
                fold.apply(event)
                assert fold.to_state().model_dump_json() == domain_state.model_dump_json(), (
                    sim.pairing_id, type(event).__name__)
                assert fold.is_closed == domain_state.is_closed
                assert fold.goals_overdue == domain_state.goals_overdue
        # The rendered row is the same whichever state it is rendered from.
        at = sim.decisions[-1].occurred_at
        assert mutable_values(fold, last_event_at=at) == mutable_values(domain_state,
                                                                        last_event_at=at)
        assert pairing_constants(fold, cross_functional=True) == pairing_constants(
            domain_state, cross_functional=True)
        # And a fold resumed from the domain's snapshot carries on identically.
        assert PairingFold(domain_state).to_state() == domain_state
    assert seen == set(PAIRING_EVENTS), set(PAIRING_EVENTS) - seen


def test_refuses_an_event_it_does_not_know_like_evolve() -> None:
    class Stranger(DomainEvent):
        event_type = "Stranger"

    with pytest.raises(TypeError, match="Stranger"):
        evolve(PairingState(), Stranger())
    fold = PairingFold()
    with pytest.raises(TypeError, match="Stranger"):
        fold.apply(Stranger())
    assert fold.version == 0
