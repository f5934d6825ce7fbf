"""A roster change that breaks a running pair's hard constraint offers the pair a no-fault
exit (pure pairing core): both sides, never by a participant, never on a closed pair."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain import commands as c
from domain import errors
from domain import events as e
from domain.notifications import notifications_for
from domain.pairing import decide, fold
from tests.domain.test_pairing import T0, started


def test_operations_offer_both_sides_an_exit_and_both_are_told() -> None:
    s = started()
    (offer,) = decide(s, c.OfferExit(actor=c.Actor.ops("hr-feed")), T0 + timedelta(days=20))
    assert offer == e.ExitOffered(offered_to=(e.Side.MENTOR, e.Side.MENTEE),
                                  because="roster_change")
    after = fold([offer], s)
    assert set(after.exit_offered_to) == {e.Side.MENTOR, e.Side.MENTEE}
    assert not after.is_closed  # offered, not ended
    told = {n.recipient for n in notifications_for(after, offer)}
    assert told == {s.mentor_id, s.mentee_id}


def test_a_participant_cannot_offer_the_exit_and_a_closed_pair_gets_none() -> None:
    s = started()
    with pytest.raises(errors.NotAllowedNow):
        decide(s, c.OfferExit(actor=c.Actor.employee(s.mentee_id)), T0 + timedelta(days=1))
    exited = fold(decide(s, c.RequestExit(actor=c.Actor.ops("hr"),
                                          reason=e.ExitReason.OTHER), T0 + timedelta(days=1)), s)
    with pytest.raises(errors.PairingClosed):
        decide(exited, c.OfferExit(actor=c.Actor.ops("hr")), datetime(2027, 3, 1, tzinfo=UTC))


def test_an_old_exit_offer_payload_still_validates() -> None:
    old = {"offered_to": ["mentee"], "because": "midpoint_review"}
    assert e.ExitOffered.model_validate(old).because == "midpoint_review"
    assert e.ExitOffered.model_validate({"offered_to": ["mentor"]}).because == "midpoint_review"
