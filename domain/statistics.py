"""The statistics of the cohort report, apart from what they are applied to.

* proportions carry a Wilson score interval (:func:`wilson_interval`), which behaves at 0/n and
  n/n where the textbook normal interval collapses to a point;
* means carry a Student-t interval (:func:`t_interval`);
* a figure with a baseline gets a verdict from its interval (:func:`verdict`) and a p-value
  (exact binomial test for proportions, one-sample t-test for means);
* ``n`` travels with every estimate, and ``n == 0`` gives ``None`` values, never a division
  by zero.

Pure and deterministic: sums use ``math.fsum`` and quantiles are written out, so results do not
depend on input order or the numpy version. docs/evaluation.md has the formulas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum

from pydantic import BaseModel, ConfigDict
from scipy import stats

CONFIDENCE = 0.95


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------- estimates


class Proportion(_Frozen):
    """``successes`` out of ``n`` with a Wilson score interval; rate and CI are None at n=0."""

    successes: int
    n: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None


class Mean(_Frozen):
    """Mean of ``n`` values with a t interval; the CI needs n >= 2, everything needs n >= 1."""

    n: int
    mean: float | None
    sd: float | None
    ci_low: float | None
    ci_high: float | None


class Distribution(_Frozen):
    """Five-number summary (quartiles by linear interpolation, numpy's default)."""

    n: int
    min: float | None
    q1: float | None
    median: float | None
    q3: float | None
    max: float | None


class Bin(_Frozen):
    """``count`` values in [low, high) — the last bin also holds ``high`` itself."""

    low: float
    high: float
    count: int


def wilson_interval(
    successes: int, n: int, confidence: float = CONFIDENCE
) -> tuple[float, float] | None:
    """Wilson score interval for a binomial proportion; None when ``n == 0``.

    Chosen over the normal (Wald) interval because cohorts are small and rates are often near
    0 or 1, where Wald gives zero-width or out-of-range intervals.
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes}/{n}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n == 0:
        return None
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    z2 = z * z
    p = successes / n
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    # At 0/n and n/n the bound is exactly 0 or 1; floating point would leave 1e-17 residues.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def t_interval(
    values: Sequence[float], confidence: float = CONFIDENCE
) -> tuple[float, float] | None:
    """Student-t interval for the mean of ``values``; None with fewer than two values."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    n = len(values)
    if n < 2:
        return None
    mean = math.fsum(values) / n
    sd = _sd(values, mean)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return mean - half, mean + half


def proportion(successes: int, n: int, confidence: float = CONFIDENCE) -> Proportion:
    """A :class:`Proportion` with its Wilson interval."""
    ci = wilson_interval(successes, n, confidence)
    return Proportion(
        successes=successes,
        n=n,
        rate=successes / n if n else None,
        ci_low=ci[0] if ci else None,
        ci_high=ci[1] if ci else None,
    )


def mean_of(values: Sequence[float], confidence: float = CONFIDENCE) -> Mean:
    """A :class:`Mean` with its t interval."""
    n = len(values)
    if n == 0:
        return Mean(n=0, mean=None, sd=None, ci_low=None, ci_high=None)
    mean = math.fsum(values) / n
    ci = t_interval(values, confidence)
    return Mean(
        n=n,
        mean=mean,
        sd=_sd(values, mean) if n >= 2 else None,
        ci_low=ci[0] if ci else None,
        ci_high=ci[1] if ci else None,
    )


def _sd(values: Sequence[float], mean: float) -> float:
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


def distribution(values: Sequence[float]) -> Distribution:
    """Five-number summary of ``values``; all None when empty."""
    if not values:
        return Distribution(n=0, min=None, q1=None, median=None, q3=None, max=None)
    ordered = sorted(values)
    return Distribution(
        n=len(ordered),
        min=ordered[0],
        q1=_quantile(ordered, 0.25),
        median=_quantile(ordered, 0.5),
        q3=_quantile(ordered, 0.75),
        max=ordered[-1],
    )


def _quantile(ordered: Sequence[float], q: float) -> float:
    # Linear interpolation between closest ranks (numpy's default "linear" method), written
    # out so the result does not depend on the numpy version.
    position = (len(ordered) - 1) * q
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    fraction = position - below
    return ordered[below] + (ordered[above] - ordered[below]) * fraction


# --------------------------------------------------------------------------- verdicts


class Verdict(StrEnum):
    ABOVE = "above baseline"
    BELOW = "below baseline"
    NOT_DISTINGUISHABLE = "not distinguishable from baseline"
    NO_BASELINE = "no baseline"
    NOT_ENOUGH_DATA = "not enough data"


def verdict(
    ci_low: float | None, ci_high: float | None, baseline: float | None, n: int
) -> str:
    """Read an interval against a baseline.

    "above baseline" only when the whole interval lies above it, "below baseline" only when it
    lies wholly below; otherwise the data cannot tell the program from the baseline, and the
    sentence says how many observations that judgement rests on.
    """
    if baseline is None:
        return Verdict.NO_BASELINE.value
    if ci_low is None or ci_high is None:
        return f"{Verdict.NOT_ENOUGH_DATA.value} (n={n})"
    if ci_low > baseline:
        return Verdict.ABOVE.value
    if ci_high < baseline:
        return Verdict.BELOW.value
    return f"{Verdict.NOT_DISTINGUISHABLE.value} (n={n})"


def binomial_p_value(successes: int, n: int, baseline: float | None) -> float | None:
    """Two-sided exact binomial test of ``successes``/``n`` against rate ``baseline``."""
    if baseline is None or n == 0:
        return None
    return float(stats.binomtest(successes, n, baseline, alternative="two-sided").pvalue)


def t_test_p_value(values: Sequence[float], baseline: float | None) -> float | None:
    """Two-sided one-sample t-test of the mean of ``values`` against ``baseline``.

    None with fewer than two values or no spread (the statistic is undefined then).
    """
    if baseline is None or len(values) < 2:
        return None
    mean = math.fsum(values) / len(values)
    sd = _sd(values, mean)
    if sd == 0:
        return None
    statistic = (mean - baseline) / (sd / math.sqrt(len(values)))
    return float(2 * stats.t.sf(abs(statistic), len(values) - 1))
