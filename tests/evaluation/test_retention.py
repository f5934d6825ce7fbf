"""Who counts for retention at 45 days and one year, and how the verdict reads."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from domain.evaluation import Retention, evaluate
from domain.evaluation_inputs import MenteeFacts, PairingFacts
from tests.evaluation.cohort_facts import START, program

D = timedelta(days=1)


def pairing_for(mentee_id: str, phase: str = "active") -> PairingFacts:
    return PairingFacts(
        pairing_id=f"P-{mentee_id}", mentor_id=f"M-{mentee_id}", mentee_id=mentee_id, phase=phase
    )


def retention(
    mentees: list[MenteeFacts], as_of: date, metric: str = "retention_45d", **baseline: float | None
) -> Retention:
    report = evaluate(
        program(**baseline),  # type: ignore[arg-type]
        "C",
        [pairing_for(m.employee_id) for m in mentees],
        mentees,
        as_of=as_of,
    )
    return report.retention[metric]


def test_hired_too_recently_is_not_observable() -> None:
    hired = START + 5 * D
    r = retention([MenteeFacts(employee_id="E1", hire_date=hired)], as_of=hired + 10 * D)
    assert r.population == 0
    assert r.excluded["window_still_open"] == 1
    assert (r.rate, r.ci_low, r.ci_high, r.difference, r.p_value) == (None,) * 5
    assert r.verdict == "not enough data (n=0)"


def test_left_before_day_45_counts_as_not_retained() -> None:
    m = MenteeFacts(employee_id="E1", hire_date=START, left_on=START + 20 * D)
    r = retention([m], as_of=START + 60 * D)
    assert (r.population, r.retained, r.not_retained) == (1, 0, 1)


def test_left_early_waits_for_the_window_to_close() -> None:
    # Counting the leaver now, while colleagues hired the same day who stayed cannot be
    # counted yet, would bias the rate down; the leaver counts once the window closes.
    early = MenteeFacts(employee_id="E1", hire_date=START, left_on=START + 20 * D)
    stayer = MenteeFacts(employee_id="E2", hire_date=START)
    r = retention([early, stayer], as_of=START + 30 * D)
    assert r.population == 0
    assert r.excluded["window_still_open"] == 2
    assert r.left_while_window_open == 1
    closed = retention([early, stayer], as_of=START + 45 * D)
    assert (closed.population, closed.retained) == (2, 1)


def test_left_between_45_days_and_a_year() -> None:
    m = MenteeFacts(employee_id="E1", hire_date=START, left_on=START + 100 * D)
    as_of = START + 400 * D
    assert retention([m], as_of).retained == 1
    one_year = retention([m], as_of, metric="retention_1y")
    assert (one_year.population, one_year.retained) == (1, 0)
    # Before the year is out the 1-year outcome is not counted yet, even though they left.
    pending = retention([m], START + 200 * D, metric="retention_1y")
    assert pending.population == 0 and pending.left_while_window_open == 1


def test_closing_day_boundaries() -> None:
    # left_on is the last day employed: still employed on day 45 means retained.
    on_day_45 = MenteeFacts(employee_id="E1", hire_date=START, left_on=START + 45 * D)
    on_day_44 = MenteeFacts(employee_id="E2", hire_date=START, left_on=START + 44 * D)
    r = retention([on_day_45, on_day_44], as_of=START + 45 * D)
    assert (r.population, r.retained) == (2, 1)
    # The window of someone hired on START closes on START + 45: observable that day, not before.
    stayer = MenteeFacts(employee_id="E3", hire_date=START)
    assert retention([stayer], START + 45 * D).population == 1
    assert retention([stayer], START + 44 * D).population == 0


def test_departure_after_as_of_is_not_known_yet() -> None:
    m = MenteeFacts(employee_id="E1", hire_date=START, left_on=START + 300 * D)
    assert retention([m], START + 60 * D).retained == 1
    assert retention([m], START + 200 * D, metric="retention_1y").left_while_window_open == 0


def test_window_closed_before_joining_is_excluded() -> None:
    # Hired 60 days before the program: already past day 45, so 45-day retention says nothing
    # about the program; the 1-year window was still open, so it counts there.
    veteran = MenteeFacts(employee_id="E1", hire_date=START - 60 * D)
    as_of = START + 400 * D
    assert retention([veteran], as_of).excluded["window_closed_before_program"] == 1
    assert retention([veteran], as_of, metric="retention_1y").population == 1
    # paired_on overrides the program start: joined late, the 1-year window had closed too.
    late = MenteeFacts(employee_id="E2", hire_date=START - 60 * D, paired_on=START + 320 * D)
    r = retention([late], as_of, metric="retention_1y")
    assert r.excluded["window_closed_before_program"] == 1


def test_days_from_hire_to_program() -> None:
    ms = [
        MenteeFacts(employee_id="E1", hire_date=START - 10 * D),
        MenteeFacts(employee_id="E2", hire_date=START - 20 * D),
        MenteeFacts(employee_id="E3", hire_date=START + 5 * D),  # hired after the start: 0
    ]
    d = retention(ms, START + 100 * D).days_hire_to_program
    assert (d.n, d.min, d.median, d.max) == (3, 0.0, 10.0, 20.0)


def test_who_is_not_in_the_population_at_all() -> None:
    as_of = START + 100 * D
    mentees = [
        MenteeFacts(employee_id="E1", hire_date=START),
        MenteeFacts(employee_id="E2", hire_date=START, left_on=START - 3 * D),  # bad dates
        MenteeFacts(employee_id="E3", hire_date=as_of + 5 * D),
        MenteeFacts(employee_id="E9", hire_date=START),  # never a mentee here
    ]
    pairings = [pairing_for("E1"), pairing_for("E2"), pairing_for("E3"), pairing_for("E4")]
    r = evaluate(program(), "C", pairings, mentees, as_of=as_of).retention["retention_45d"]
    assert r.population == 1
    assert r.excluded["not_paired"] == 1
    assert r.excluded["no_employment_facts"] == 1  # E4 is paired but has no dates
    assert r.excluded["left_before_hire"] == 1
    assert r.excluded["hired_after_as_of"] == 1


def test_exited_pairings_stay_in_the_population() -> None:
    # Intention to treat: the mentee whose pairing ended because they left is a loss.
    m = MenteeFacts(employee_id="E1", hire_date=START, left_on=START + 30 * D)
    pairing = pairing_for("E1", phase="exited").model_copy(
        update={"exit_reason": "left_company", "exit_phase": "active"}
    )
    r = evaluate(program(), "C", [pairing], [m], as_of=START + 50 * D).retention["retention_45d"]
    assert (r.population, r.not_retained) == (1, 1)


def cohort(retained: int, lost: int) -> list[MenteeFacts]:
    out = [MenteeFacts(employee_id=f"R{i:03d}", hire_date=START) for i in range(retained)]
    out += [
        MenteeFacts(employee_id=f"L{i:03d}", hire_date=START, left_on=START + 10 * D)
        for i in range(lost)
    ]
    return out


@pytest.mark.parametrize(
    ("retained", "lost", "expected"),
    [
        (50, 0, "above baseline"),  # Wilson 92.9%-100% is above 78%
        (20, 30, "below baseline"),  # 40%: 27.6%-53.8%
        (9, 1, "not distinguishable from baseline (n=10)"),  # 90%, but 59.6%-98.2%
    ],
)
def test_verdict_against_baseline(retained: int, lost: int, expected: str) -> None:
    r = retention(cohort(retained, lost), START + 60 * D)
    assert r.verdict == expected
    assert r.baseline == 0.78
    assert r.difference == pytest.approx(retained / (retained + lost) - 0.78)
    assert r.p_value is not None and 0 <= r.p_value <= 1
    if expected.startswith("above"):
        assert r.ci_low is not None and r.ci_low > 0.78
    if expected.startswith("below"):
        assert r.ci_high is not None and r.ci_high < 0.78


def test_no_baseline_figure() -> None:
    r = retention(cohort(20, 2), START + 400 * D, metric="retention_1y", retention_1y=None)
    assert (r.baseline, r.difference, r.p_value) == (None, None, None)
    assert r.verdict == "no baseline"
    assert r.rate == pytest.approx(20 / 22)
