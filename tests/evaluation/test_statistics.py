"""The interval and test helpers, against published reference values."""

from __future__ import annotations

import math

import pytest
from scipy.stats import binomtest, ttest_1samp

from domain.statistics import (
    binomial_p_value,
    distribution,
    mean_of,
    proportion,
    t_interval,
    t_test_p_value,
    verdict,
    wilson_interval,
)


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        # Reference values of the Wilson score interval (z = 1.959964), e.g. statsmodels
        # proportion_confint(method="wilson") and Newcombe (1998), Stat Med 17:857, table I.
        (0, 10, 0.0, 0.2775328),
        (10, 10, 0.7224672, 1.0),
        (5, 10, 0.2365931, 0.7634069),
        (1, 10, 0.0178762, 0.4041500),
        (81, 263, 0.2552885, 0.3662096),
    ],
)
def test_wilson_matches_reference(successes: int, n: int, low: float, high: float) -> None:
    ci = wilson_interval(successes, n)
    assert ci is not None
    assert ci[0] == pytest.approx(low, abs=5e-7)
    assert ci[1] == pytest.approx(high, abs=5e-7)


def test_wilson_bounds_are_exact_at_the_edges() -> None:
    # Not 1e-17 or 0.9999999999999999: a share of 0 or 1 prints as such.
    none_of_7 = wilson_interval(0, 7)
    all_of_7 = wilson_interval(7, 7)
    assert none_of_7 is not None and none_of_7[0] == 0.0
    assert all_of_7 is not None and all_of_7[1] == 1.0


@pytest.mark.parametrize(("successes", "n"), [(3, 17), (12, 40), (99, 100), (1, 1)])
def test_wilson_agrees_with_scipy(successes: int, n: int) -> None:
    ours = wilson_interval(successes, n)
    ref = binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert ours == (pytest.approx(ref.low, abs=1e-12), pytest.approx(ref.high, abs=1e-12))


def test_wilson_other_confidence_is_wider_or_narrower() -> None:
    ci90 = wilson_interval(5, 10, 0.90)
    ci99 = wilson_interval(5, 10, 0.99)
    assert ci90 is not None and ci99 is not None
    assert ci99[0] < ci90[0] < 0.5 < ci90[1] < ci99[1]


def test_wilson_empty_and_invalid() -> None:
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    with pytest.raises(ValueError):
        wilson_interval(-1, 2)
    with pytest.raises(ValueError):
        wilson_interval(1, 2, confidence=1.0)


def test_proportion_at_zero_n_is_all_none() -> None:
    p = proportion(0, 0)
    assert (p.n, p.rate, p.ci_low, p.ci_high) == (0, None, None, None)


def test_t_interval_reference() -> None:
    # mean 3, sd sqrt(2.5), t(0.975, 4) = 2.776445: 3 ± 1.963243
    low, high = t_interval([1, 2, 3, 4, 5])  # type: ignore[misc]
    assert low == pytest.approx(1.036757, abs=1e-6)
    assert high == pytest.approx(4.963243, abs=1e-6)


def test_t_interval_small_samples() -> None:
    assert t_interval([]) is None
    assert t_interval([4.0]) is None
    assert t_interval([4.0, 4.0]) == (4.0, 4.0)  # no spread: a zero-width interval


def test_mean_of_reports_n_and_none() -> None:
    empty = mean_of([])
    assert (empty.n, empty.mean, empty.sd, empty.ci_low) == (0, None, None, None)
    one = mean_of([3.0])
    assert (one.n, one.mean, one.sd, one.ci_low, one.ci_high) == (1, 3.0, None, None, None)
    many = mean_of([2.0, 4.0, 4.0, 5.0])
    assert many.mean == pytest.approx(3.75)
    assert many.sd == pytest.approx(math.sqrt(1.583333333), rel=1e-6)


def test_distribution_quartiles_match_numpy_linear() -> None:
    d = distribution([0.5, 1.0, 0.25, 0.75, 0.9])
    assert (d.min, d.q1, d.median, d.q3, d.max) == (0.25, 0.5, 0.75, 0.9, 1.0)
    assert distribution([]).median is None


@pytest.mark.parametrize(
    ("low", "high", "baseline", "n", "expected"),
    [
        (0.80, 0.95, 0.78, 40, "above baseline"),
        (0.60, 0.70, 0.78, 40, "below baseline"),
        (0.70, 0.90, 0.78, 40, "not distinguishable from baseline (n=40)"),
        # Touching the baseline is not clearing it.
        (0.78, 0.90, 0.78, 40, "not distinguishable from baseline (n=40)"),
        (0.60, 0.78, 0.78, 40, "not distinguishable from baseline (n=40)"),
        (None, None, 0.78, 0, "not enough data (n=0)"),
        (0.70, 0.90, None, 40, "no baseline"),
    ],
)
def test_verdict(
    low: float | None, high: float | None, baseline: float | None, n: int, expected: str
) -> None:
    assert verdict(low, high, baseline, n) == expected


def test_binomial_p_value() -> None:
    assert binomial_p_value(25, 27, 0.78) == pytest.approx(binomtest(25, 27, 0.78).pvalue)
    assert binomial_p_value(0, 0, 0.78) is None
    assert binomial_p_value(5, 10, None) is None


def test_t_test_p_value_matches_scipy() -> None:
    values = [3.0, 4.0, 4.0, 5.0, 5.0, 4.0]
    assert t_test_p_value(values, 3.5) == pytest.approx(ttest_1samp(values, 3.5).pvalue)
    assert t_test_p_value([4.0], 3.5) is None
    assert t_test_p_value([4.0, 4.0], 3.5) is None  # no spread: undefined statistic
