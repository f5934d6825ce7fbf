"""The batched fold of first launches equals event-by-event evolution."""

from __future__ import annotations

from datetime import UTC, datetime

from domain import cohort as co
from domain import cohort_events as ce

T0 = datetime(2027, 1, 11, 2, 0, tzinfo=UTC)


def test_batched_launches_fold_like_single_events() -> None:
    start = co.CohortState(cohort_id="C", phase=co.CohortPhase.SCHEDULED, pending_launch=tuple(
        co.LaunchSpec(pairing_id=f"C.E{i}.M{i % 3}.1", mentor_id=f"M{i % 3}", mentee_id=f"E{i}",
                      score=0.5, run_id="r") for i in range(9)))
    events = [ce.PairingLaunched(pairing_id=s.pairing_id, mentor_id=s.mentor_id,
                                 mentee_id=s.mentee_id, score=s.score, starts_at=T0)
              for s in start.pending_launch[:7]]
    one_by_one = start
    for event in events:
        one_by_one = co.evolve(one_by_one, event)
    assert co.fold(events, start) == one_by_one
    assert one_by_one.launched == 7 and len(one_by_one.pending_launch) == 2
    assert one_by_one.mentor_load == {"M0": 3, "M1": 2, "M2": 2}
