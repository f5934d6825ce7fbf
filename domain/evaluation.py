"""Cohort evaluation: what a cohort of pairings achieved, judged against the program's baseline.

Pure and deterministic: no clock (``as_of`` is an argument), no I/O. Pairings are sorted by id
and mentees by employee id before anything is computed, sums use ``math.fsum`` (correctly
rounded, so independent of order) and every mapping is built in a fixed key order: the same
facts in any order give the same report, byte for byte once rendered.

The estimates, intervals, tests and verdicts come from ``domain.statistics``
(docs/evaluation.md has the formulas and the populations); this module decides which facts
each figure counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from domain.evaluation_inputs import MenteeFacts, PairingFacts
from domain.events import ExitInitiator, ExitReason, Side
from domain.pairing import Phase
from domain.program import ProgramSpec
from domain.statistics import (
    CONFIDENCE,
    Bin,
    Distribution,
    Mean,
    Proportion,
    binomial_p_value,
    distribution,
    mean_of,
    proportion,
    t_test_p_value,
    verdict,
)

REPORT_VERSION = "sebaya-evaluation/1"
# A goal counts as attained when its final attainment is at least this (0-100 scale).
ATTAINED_THRESHOLD = 70
# Days after the hire date at which each retention figure is read. A year is 365 days: the
# baseline figures are annual shares and a leap day does not move them measurably.
RETENTION_WINDOWS: dict[str, int] = {"retention_45d": 45, "retention_1y": 365}
# Per-pairing meeting adherence is histogrammed in this many equal bins over [0, 1].
ADHERENCE_BINS = 10

SIDES: tuple[Side, ...] = (Side.MENTOR, Side.MENTEE)
# Phases in lifecycle order, so tables read top to bottom as a pairing lives.
PHASE_ORDER: tuple[str, ...] = tuple(p.value for p in Phase if p is not Phase.NOT_STARTED)
_EXIT_PHASES: tuple[str, ...] = (
    Phase.GOAL_SETTING.value,
    Phase.ACTIVE.value,
    Phase.FINAL_EVALUATION.value,
)
_ENDED = frozenset({Phase.COMPLETED.value, Phase.EXITED.value})
UNKNOWN = "unknown"

_M = TypeVar("_M", bound=BaseModel)

# Why a mentee is not in a retention window's population (docs/evaluation.md, "Retention").
EXCLUSION_REASONS: tuple[str, ...] = (
    "not_paired",
    "no_employment_facts",
    "left_before_hire",
    "hired_after_as_of",
    "window_closed_before_program",
    "left_before_program",
    "window_still_open",
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------- report sections


class Counts(_Frozen):
    """How many pairings there are and where they stand."""

    pairings: int
    by_phase: dict[str, int]
    completed: int
    exited: int
    # Not yet ended: goal_setting + active + final_evaluation (+ any unknown phase).
    in_progress: int
    # Pairings that are a rematch (``rematch_of`` set).
    rematches: int
    # Distinct employees in any pairing, and per role.
    people: int
    mentors: int
    mentees: int


class GoalAttainment(_Frozen):
    """One side's goals as rated in its final evaluations (0-100 per goal)."""

    side: str
    evaluations: int
    goals_set: int
    goals_rated: int
    mean_attainment: Mean
    attained: Proportion  # goals rated >= ATTAINED_THRESHOLD
    threshold: int = ATTAINED_THRESHOLD


class MeetingAdherence(_Frozen):
    """Meetings held out of meetings that were due (held + missed)."""

    held: int
    missed: int
    overall: Proportion
    # Per-pairing adherence, over pairings with at least one meeting due.
    per_pairing: Distribution
    histogram: list[Bin]
    # Over every pairing, including those with no meeting due yet.
    held_per_pairing: Mean
    missed_per_pairing: Mean


class SideSatisfaction(_Frozen):
    """One side's ratings: mid-point satisfaction and final ratings (1-5), recommendation."""

    side: str
    midpoint: Mean
    relationship: Mean
    program: Mean
    would_recommend: Proportion


class LearnedText(_Frozen):
    text: str
    count: int


class Learned(_Frozen):
    """What each side says it learned. Mentors come first: peer mentoring is two-way, and what
    the more experienced colleague took away is part of the program's yield."""

    mentor: list[LearnedText]
    mentee: list[LearnedText]


class Exits(_Frozen):
    """No-fault exits: why, when and on whose initiative."""

    exited: Proportion  # exited pairings out of all pairings
    by_reason: dict[str, int]
    by_phase: dict[str, int]
    by_initiator: dict[str, int]
    # Exited pairings whose people were matched again (some pairing has rematch_of = it).
    followed_by_rematch: int


class CrossFunctional(_Frozen):
    """Pairs whose mentor and mentee work in different departments."""

    share: Proportion  # over pairings with both departments known
    unknown_department: int


class Retention(_Frozen):
    """Mentee retention ``window_days`` after hire, against the program's baseline."""

    metric: str
    window_days: int
    population: int
    retained: int
    not_retained: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    baseline: float | None
    difference: float | None
    p_value: float | None
    verdict: str
    excluded: dict[str, int]
    # Already left, window not yet closed: part of excluded["window_still_open"]; they will
    # count as not retained once the window closes (see _retention for why not earlier).
    left_while_window_open: int
    # Days from hire to joining the program, over the population: joining late means the
    # mentee had already survived part of the window, which flatters the comparison.
    days_hire_to_program: Distribution


class Comparison(_Frozen):
    """One row of the before/after table: a baseline figure next to the program's figure."""

    metric: str
    label: str
    kind: Literal["proportion", "mean"] | None
    is_objective: bool
    computed: bool  # False for a baseline key the report does not know how to compute
    baseline: float
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    difference: float | None
    p_value: float | None
    test: str | None
    verdict: str


class CohortReport(_Frozen):
    """Everything the cohort report shows; render it with ``sebaya.report``."""

    report_version: str
    cohort_id: str
    program_name: str
    objective_kind: str
    objective_metric: str
    objective_description: str
    baseline_source: str | None
    as_of: date
    confidence: float
    counts: Counts
    goal_attainment: dict[str, GoalAttainment]  # keys: mentor, mentee
    meetings: MeetingAdherence
    satisfaction: dict[str, SideSatisfaction]  # keys: mentor, mentee
    learned: Learned
    exits: Exits
    cross_functional: CrossFunctional
    retention: dict[str, Retention]  # keys: retention_45d, retention_1y
    before_after: list[Comparison]
    objective: Comparison


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class _Sample:
    """Raw observations behind a figure, so a baseline comparison can run its own test."""

    kind: Literal["proportion", "mean"]
    successes: int = 0
    n: int = 0
    values: tuple[float, ...] = ()


@dataclass(frozen=True)
class _Recognised:
    label: str
    sample: Callable[[_Samples], _Sample]


@dataclass(frozen=True)
class _Samples:
    retention: Mapping[str, _Sample]
    adherence: _Sample
    completion: _Sample
    exit_rate: _Sample
    cross_functional: _Sample
    goals_attained: Mapping[str, _Sample]
    goal_mean: Mapping[str, _Sample]
    would_recommend: Mapping[str, _Sample]
    midpoint: Mapping[str, _Sample]
    relationship: Mapping[str, _Sample]
    program: Mapping[str, _Sample]


def _per_side(
    stem: str, label: str, pick: Callable[[_Samples], Mapping[str, _Sample]]
) -> dict[str, _Recognised]:
    def one(side: Side) -> _Recognised:
        return _Recognised(f"{label} ({side.value}s)", lambda s: pick(s)[side.value])

    return {f"{stem}_{side.value}": one(side) for side in SIDES}


# Baseline keys the report can compute; ``Baseline.other`` keys outside this list still show in
# the before/after table, marked as not computed. Proportions are shares in [0, 1], ratings
# are on the 1-5 scale, goal attainment on 0-100.
RECOGNISED_BASELINE_KEYS: dict[str, _Recognised] = {
    "retention_45d": _Recognised(
        "Mentees retained 45 days after hire", lambda s: s.retention["retention_45d"]
    ),
    "retention_1y": _Recognised(
        "Mentees retained 1 year after hire", lambda s: s.retention["retention_1y"]
    ),
    "meeting_adherence": _Recognised("Meetings held of meetings due", lambda s: s.adherence),
    "completion_rate": _Recognised("Ended pairings that completed", lambda s: s.completion),
    "exit_rate": _Recognised("Pairings that exited early", lambda s: s.exit_rate),
    "cross_functional_share": _Recognised(
        "Pairs across departments", lambda s: s.cross_functional
    ),
    **_per_side("goals_attained", "Goals attained (>= 70)", lambda s: s.goals_attained),
    **_per_side("goal_attainment_mean", "Mean goal attainment 0-100", lambda s: s.goal_mean),
    **_per_side("would_recommend", "Would recommend the program", lambda s: s.would_recommend),
    **_per_side("midpoint_satisfaction", "Mid-point satisfaction 1-5", lambda s: s.midpoint),
    **_per_side("relationship_rating", "Final relationship rating 1-5", lambda s: s.relationship),
    **_per_side("program_rating", "Final program rating 1-5", lambda s: s.program),
}


def evaluate(
    program: ProgramSpec,
    cohort_id: str,
    pairings: Sequence[PairingFacts],
    mentees: Sequence[MenteeFacts],
    *,
    as_of: date,
) -> CohortReport:
    """Evaluate a cohort as of ``as_of``.

    ``pairings`` are the cohort's pairings (any order; a pairing id given twice must carry the
    same facts), ``mentees`` the employment dates of its mentees (extra people who were never a
    mentee in ``pairings`` are ignored). Employment facts dated after ``as_of`` are ignored, so
    a report as of a past date shows what could be known then.
    """
    ps = _unique(pairings, lambda p: p.pairing_id, "pairing")
    ms = _unique(mentees, lambda m: m.employee_id, "mentee")

    counts = _counts(ps)
    goals = {side.value: _goal_attainment(ps, side) for side in SIDES}
    meetings = _meetings(ps)
    satisfaction = {side.value: _satisfaction(ps, side) for side in SIDES}
    exits = _exits(ps)
    cross = _cross_functional(ps)
    baseline = program.baseline
    paired_mentees = {p.mentee_id for p in ps}
    retention: dict[str, Retention] = {}
    retention_samples: dict[str, _Sample] = {}
    for metric, window in RETENTION_WINDOWS.items():
        retention[metric], retention_samples[metric] = _retention(
            metric,
            window,
            getattr(baseline, metric),
            ms,
            paired_mentees,
            default_paired_on=program.start_date,
            as_of=as_of,
        )

    samples = _samples(ps, retention_samples, meetings, exits, cross)
    objective_metric = program.objective.metric
    before_after = [
        _compare(metric, figure, samples, is_objective=metric == objective_metric)
        for metric, figure in _ordered_baseline(baseline.figures())
    ]
    objective = next(row for row in before_after if row.is_objective)

    return CohortReport(
        report_version=REPORT_VERSION,
        cohort_id=cohort_id,
        program_name=program.name,
        objective_kind=program.objective.kind.value,
        objective_metric=objective_metric,
        objective_description=program.objective.description,
        baseline_source=baseline.source,
        as_of=as_of,
        confidence=CONFIDENCE,
        counts=counts,
        goal_attainment=goals,
        meetings=meetings,
        satisfaction=satisfaction,
        learned=Learned(mentor=_learned(ps, Side.MENTOR), mentee=_learned(ps, Side.MENTEE)),
        exits=exits,
        cross_functional=cross,
        retention=retention,
        before_after=before_after,
        objective=objective,
    )


def _unique(items: Iterable[_M], key: Callable[[_M], str], what: str) -> list[_M]:
    """Sorted by ``key``; exact duplicates collapse (a projection read twice), conflicting ones
    are a caller bug that would silently change the figures, so they raise."""
    seen: dict[str, _M] = {}
    for item in items:
        k = key(item)
        previous = seen.get(k)
        if previous is None:
            seen[k] = item
        elif previous != item:
            raise ValueError(f"{what} {k!r} given twice with different facts")
    return [seen[k] for k in sorted(seen)]


def _ordered(counter: Mapping[str, int], known: Sequence[str]) -> dict[str, int]:
    """Known keys first in their natural order (zero-filled, so tables and charts always show
    the same rows), then any other key found in the data, alphabetically."""
    out = {k: counter.get(k, 0) for k in known}
    for k in sorted(set(counter) - set(known)):
        out[k] = counter[k]
    return out


def _counts(ps: Sequence[PairingFacts]) -> Counts:
    phases = Counter(p.phase for p in ps)
    mentors = {p.mentor_id for p in ps}
    mentee_ids = {p.mentee_id for p in ps}
    return Counts(
        pairings=len(ps),
        by_phase=_ordered(phases, PHASE_ORDER),
        completed=phases[Phase.COMPLETED.value],
        exited=phases[Phase.EXITED.value],
        in_progress=sum(1 for p in ps if p.phase not in _ENDED),
        rematches=sum(1 for p in ps if p.rematch_of is not None),
        people=len(mentors | mentee_ids),
        mentors=len(mentors),
        mentees=len(mentee_ids),
    )


def _attainments(ps: Sequence[PairingFacts], side: Side) -> list[float]:
    return [
        float(final.goal_attainment[goal])
        for p in ps
        if (final := p.final.get(side.value)) is not None
        for goal in sorted(final.goal_attainment)
    ]


def _goal_attainment(ps: Sequence[PairingFacts], side: Side) -> GoalAttainment:
    values = _attainments(ps, side)
    attained = sum(1 for v in values if v >= ATTAINED_THRESHOLD)
    return GoalAttainment(
        side=side.value,
        evaluations=sum(1 for p in ps if side.value in p.final),
        goals_set=sum(len(p.goals.get(side.value, ())) for p in ps),
        goals_rated=len(values),
        mean_attainment=mean_of(values),
        attained=proportion(attained, len(values)),
    )


def _meetings(ps: Sequence[PairingFacts]) -> MeetingAdherence:
    held = sum(p.meetings_held for p in ps)
    missed = sum(p.meetings_missed for p in ps)
    due = [(p.meetings_held, p.meetings_held + p.meetings_missed) for p in ps]
    due = [(h, total) for h, total in due if total > 0]
    bins = [0] * ADHERENCE_BINS
    for h, total in due:
        # Integer arithmetic: 7/10 must land in the 70-80% bin, not in 60-70% by rounding.
        bins[min(h * ADHERENCE_BINS // total, ADHERENCE_BINS - 1)] += 1
    return MeetingAdherence(
        held=held,
        missed=missed,
        overall=proportion(held, held + missed),
        per_pairing=distribution([h / total for h, total in due]),
        histogram=[
            Bin(low=i / ADHERENCE_BINS, high=(i + 1) / ADHERENCE_BINS, count=c)
            for i, c in enumerate(bins)
        ],
        held_per_pairing=mean_of([float(p.meetings_held) for p in ps]),
        missed_per_pairing=mean_of([float(p.meetings_missed) for p in ps]),
    )


def _ratings(ps: Sequence[PairingFacts], side: Side, field: str) -> list[float]:
    return [
        float(getattr(final, field)) for p in ps if (final := p.final.get(side.value)) is not None
    ]


def _satisfaction(ps: Sequence[PairingFacts], side: Side) -> SideSatisfaction:
    finals = [f for p in ps if (f := p.final.get(side.value)) is not None]
    return SideSatisfaction(
        side=side.value,
        midpoint=mean_of(
            [float(p.midpoint_satisfaction[side.value]) for p in ps
             if side.value in p.midpoint_satisfaction]
        ),
        relationship=mean_of(_ratings(ps, side, "relationship_rating")),
        program=mean_of(_ratings(ps, side, "program_rating")),
        would_recommend=proportion(sum(1 for f in finals if f.would_recommend), len(finals)),
    )


def _learned(ps: Sequence[PairingFacts], side: Side) -> list[LearnedText]:
    """Texts grouped ignoring case and spacing; each group shows its most frequent spelling
    (ties: the alphabetically first), most frequent groups first."""
    groups: dict[str, Counter[str]] = {}
    for p in ps:
        final = p.final.get(side.value)
        if final is None:
            continue
        text = " ".join(final.learned.split())
        if not text:
            continue
        groups.setdefault(text.casefold(), Counter())[text] += 1
    items = [
        LearnedText(text=_commonest(spellings), count=sum(spellings.values()))
        for spellings in groups.values()
    ]
    return sorted(items, key=lambda i: (-i.count, i.text.casefold(), i.text))


def _commonest(spellings: Counter[str]) -> str:
    return min(spellings, key=lambda text: (-spellings[text], text))


def _exits(ps: Sequence[PairingFacts]) -> Exits:
    exited = [p for p in ps if p.phase == Phase.EXITED.value]
    exited_ids = {p.pairing_id for p in exited}
    rematched = {p.rematch_of for p in ps if p.rematch_of is not None}
    return Exits(
        exited=proportion(len(exited), len(ps)),
        by_reason=_ordered(
            Counter(p.exit_reason or UNKNOWN for p in exited), [r.value for r in ExitReason]
        ),
        by_phase=_ordered(Counter(p.exit_phase or UNKNOWN for p in exited), _EXIT_PHASES),
        by_initiator=_ordered(
            Counter(p.exit_initiated_by or UNKNOWN for p in exited),
            [i.value for i in ExitInitiator],
        ),
        followed_by_rematch=len(exited_ids & rematched),
    )


def _department(name: str | None) -> str | None:
    # "Finance" and " finance " are one department; a blank cell is an unknown one.
    folded = " ".join((name or "").split()).casefold()
    return folded or None


def _cross_functional(ps: Sequence[PairingFacts]) -> CrossFunctional:
    known = [
        (mentor, mentee)
        for p in ps
        if (mentor := _department(p.mentor_department)) is not None
        and (mentee := _department(p.mentee_department)) is not None
    ]
    return CrossFunctional(
        share=proportion(sum(1 for a, b in known if a != b), len(known)),
        unknown_department=len(ps) - len(known),
    )


def _retention(
    metric: str,
    window: int,
    baseline: float | None,
    mentees: Sequence[MenteeFacts],
    paired: set[str],
    *,
    default_paired_on: date,
    as_of: date,
) -> tuple[Retention, _Sample]:
    """Retention ``window`` days after hire, intention-to-treat over paired mentees.

    The window of a mentee hired on H closes on H + window. ``left_on`` is the last day
    employed, so a mentee is retained when still employed on the closing day.

    Who counts is decided by dates that do not depend on the outcome: a mentee is in the
    population once the window has closed by ``as_of`` (every outcome is then known), and only
    if the window was still open when they joined the program. Counting early leavers whose
    window is still open, while their colleagues hired the same week are not yet countable,
    would bias the rate down (early in a cohort's first year the only known 1-year outcomes
    are departures); they are reported as ``left_while_window_open`` and enter the population
    when their window closes. Mentees whose pairing ended early stay in: dropping them would
    hide exactly the people the program lost.
    """
    excluded: Counter[str] = Counter()
    outcomes: list[bool] = []
    lead_days: list[float] = []
    left_while_open = 0
    with_facts = {m.employee_id for m in mentees}
    excluded["no_employment_facts"] = len(paired - with_facts)
    for m in mentees:
        closes = m.hire_date + timedelta(days=window)
        joined = m.paired_on or default_paired_on
        # A departure dated after as_of was not known on as_of.
        left = m.left_on if m.left_on is not None and m.left_on <= as_of else None
        if m.employee_id not in paired:
            reason = "not_paired"
        elif m.left_on is not None and m.left_on < m.hire_date:
            reason = "left_before_hire"
        elif m.hire_date > as_of:
            reason = "hired_after_as_of"
        elif closes <= joined:
            reason = "window_closed_before_program"
        elif left is not None and left < joined:
            reason = "left_before_program"
        elif as_of < closes:
            reason = "window_still_open"
            left_while_open += left is not None
        else:
            outcomes.append(left is None or left >= closes)
            lead_days.append(float(max((joined - m.hire_date).days, 0)))
            continue
        excluded[reason] += 1

    n = len(outcomes)
    retained = sum(outcomes)
    estimate = proportion(retained, n)
    return (
        Retention(
            metric=metric,
            window_days=window,
            population=n,
            retained=retained,
            not_retained=n - retained,
            rate=estimate.rate,
            ci_low=estimate.ci_low,
            ci_high=estimate.ci_high,
            baseline=baseline,
            difference=_difference(estimate.rate, baseline),
            p_value=binomial_p_value(retained, n, baseline),
            verdict=verdict(estimate.ci_low, estimate.ci_high, baseline, n),
            excluded={reason: excluded[reason] for reason in EXCLUSION_REASONS},
            left_while_window_open=left_while_open,
            days_hire_to_program=distribution(lead_days),
        ),
        _Sample("proportion", successes=retained, n=n),
    )


def _difference(value: float | None, baseline: float | None) -> float | None:
    return None if value is None or baseline is None else value - baseline


def _samples(
    ps: Sequence[PairingFacts],
    retention: Mapping[str, _Sample],
    meetings: MeetingAdherence,
    exits: Exits,
    cross: CrossFunctional,
) -> _Samples:
    completed = sum(1 for p in ps if p.phase == Phase.COMPLETED.value)
    ended = sum(1 for p in ps if p.phase in _ENDED)

    def prop(estimate: Proportion) -> _Sample:
        return _Sample("proportion", successes=estimate.successes, n=estimate.n)

    def per_side(values: Callable[[Side], Sequence[float]]) -> dict[str, _Sample]:
        return {side.value: _Sample("mean", values=tuple(values(side))) for side in SIDES}

    def attained(side: Side) -> _Sample:
        values = _attainments(ps, side)
        return _Sample(
            "proportion", successes=sum(v >= ATTAINED_THRESHOLD for v in values), n=len(values)
        )

    def recommend(side: Side) -> _Sample:
        finals = [f for p in ps if (f := p.final.get(side.value)) is not None]
        return _Sample(
            "proportion", successes=sum(f.would_recommend for f in finals), n=len(finals)
        )

    return _Samples(
        retention=retention,
        adherence=prop(meetings.overall),
        completion=_Sample("proportion", successes=completed, n=ended),
        exit_rate=prop(exits.exited),
        cross_functional=prop(cross.share),
        goals_attained={side.value: attained(side) for side in SIDES},
        goal_mean=per_side(lambda side: _attainments(ps, side)),
        would_recommend={side.value: recommend(side) for side in SIDES},
        midpoint=per_side(
            lambda side: [float(p.midpoint_satisfaction[side.value]) for p in ps
                          if side.value in p.midpoint_satisfaction]
        ),
        relationship=per_side(lambda side: _ratings(ps, side, "relationship_rating")),
        program=per_side(lambda side: _ratings(ps, side, "program_rating")),
    )


def _ordered_baseline(figures: Mapping[str, float]) -> list[tuple[str, float]]:
    # The two named retention figures first (the article's own numbers), then the rest by key.
    named = [k for k in RETENTION_WINDOWS if k in figures]
    rest = sorted(k for k in figures if k not in RETENTION_WINDOWS)
    return [(k, figures[k]) for k in [*named, *rest]]


def _compare(metric: str, baseline: float, samples: _Samples, *, is_objective: bool) -> Comparison:
    recognised = RECOGNISED_BASELINE_KEYS.get(metric)
    if recognised is None:
        return Comparison(
            metric=metric, label=metric, kind=None, is_objective=is_objective, computed=False,
            baseline=baseline, value=None, ci_low=None, ci_high=None, n=0, difference=None,
            p_value=None, test=None, verdict="not computed by the report (unrecognised key)",
        )
    sample = recognised.sample(samples)
    if sample.kind == "proportion":
        estimate = proportion(sample.successes, sample.n)
        value, low, high, n = estimate.rate, estimate.ci_low, estimate.ci_high, sample.n
        p_value = binomial_p_value(sample.successes, sample.n, baseline)
        test = "exact binomial (two-sided)"
    else:
        m = mean_of(sample.values)
        value, low, high, n = m.mean, m.ci_low, m.ci_high, m.n
        p_value = t_test_p_value(sample.values, baseline)
        test = "one-sample t (two-sided)"
    return Comparison(
        metric=metric,
        label=recognised.label,
        kind=sample.kind,
        is_objective=is_objective,
        computed=True,
        baseline=baseline,
        value=value,
        ci_low=low,
        ci_high=high,
        n=n,
        difference=_difference(value, baseline),
        p_value=p_value,
        test=test,
        verdict=verdict(low, high, baseline, n),
    )
