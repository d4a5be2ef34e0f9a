"""Intervals and verdicts for results across seeds.

Accuracies are fractions, so their 95% interval is a Student-t interval on the logit scale, turned back:
it always lies inside 0..1, is about the plain t interval when seeds agree, and widens honestly when they
do not (2 seeds at 0.29 and 0.30 give 0.236–0.362; at 0.10 and 0.85 nearly 0..1, where the plain interval
says 0.475 ± 4.76).

A method is judged against the baseline by the paired differences of their test accuracies (same seed:
same initialization and shuffle order): a paired t-test, and the smallest difference those seeds could
have detected (two-sided 5% test with 80% power, from the spread of the differences). With fewer than
MIN_PAIRS pairs, or when the seeds could not detect a difference of MEANINGFUL, a non-significant
result is *inconclusive*, never "no significant difference".
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np

SIGNIFICANT = 0.05
POWER = 0.8
MIN_PAIRS = 3  # two pairs give one degree of freedom: a t-test that can hardly find anything
MEANINGFUL = 0.01  # one point of accuracy: about the gaps between the scaled methods
LOGIT_EPSILON = 1e-4  # accuracies are clipped to [1e-4, 1 - 1e-4] (one image in 10,000) before the logit


def _finite(values) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return values[np.isfinite(values)]


def interval(values) -> tuple[float, float, float, float]:
    """Mean, sample std, and a 95% interval (low, high) of the finite values, fractions in 0..1: Student-t
    on the logit scale, turned back (NaN where there are too few values)."""
    from scipy import stats

    values = _finite(values)
    if len(values) == 0:
        return math.nan, math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) == 1:
        return mean, math.nan, math.nan, math.nan
    if np.all(values == values[0]):
        return mean, 0.0, mean, mean
    clipped = np.clip(values, LOGIT_EPSILON, 1 - LOGIT_EPSILON)
    logits = np.log(clipped / (1 - clipped))
    half = stats.t.ppf(0.975, len(values) - 1) * logits.std(ddof=1) / math.sqrt(len(values))
    low, high = (float(1 / (1 + math.exp(-bound))) for bound in (logits.mean() - half, logits.mean() + half))
    low, high = max(0.0, min(low, mean)), min(1.0, max(high, mean))  # the mean inside, 0..1 around it
    return mean, float(values.std(ddof=1)), low, high


@dataclasses.dataclass(frozen=True)
class Paired:
    """Ours minus theirs over the seeds both have: the mean difference, its 95% t interval, the p-value
    of a paired t-test, and the smallest difference the seeds could have detected (NaN where undefined)."""

    pairs: int
    diff: float
    low: float
    high: float
    p_value: float
    detectable: float


def paired(ours: dict, theirs: dict) -> Paired:
    """Paired t-test of two {seed: value} maps over the seeds both hold finite values for."""
    from scipy import stats

    seeds = [seed for seed in ours if seed in theirs and math.isfinite(ours[seed]) and math.isfinite(theirs[seed])]
    differences = np.array([ours[seed] - theirs[seed] for seed in seeds], dtype=float)
    if not len(seeds):
        return Paired(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    diff = float(differences.mean())
    if len(seeds) < 2:
        return Paired(1, diff, math.nan, math.nan, math.nan, math.nan)
    freedom = len(seeds) - 1
    error = float(differences.std(ddof=1)) / math.sqrt(len(seeds))
    half = float(stats.t.ppf(0.975, freedom)) * error
    detectable = float(stats.t.ppf(1 - SIGNIFICANT / 2, freedom) + stats.t.ppf(POWER, freedom)) * error
    if error == 0:  # every difference the same: no spread to test against
        return Paired(len(seeds), diff, diff, diff, math.nan if diff == 0 else 0.0, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p_value = float(2 * stats.t.sf(abs(diff) / error, freedom))
    return Paired(len(seeds), diff, diff - half, diff + half, p_value, detectable)


def judge(result: Paired) -> tuple[str, str]:
    """(verdict, why) for a method against the baseline: better, worse, no significant difference, or
    inconclusive (too few seeds, or seeds that could not have detected a difference of MEANINGFUL)."""
    if result.pairs == 0:
        return "inconclusive", "no seed finished for both"
    if result.pairs < MIN_PAIRS:
        return "inconclusive", f"only {result.pairs} paired seed{'s' * (result.pairs != 1)}, {MIN_PAIRS} needed"
    if math.isnan(result.p_value):
        return "no significant difference", "identical on every seed"
    if result.p_value < SIGNIFICANT:
        return ("better" if result.diff > 0 else "worse"), f"p={result.p_value:.2g}"
    if result.detectable > MEANINGFUL:
        return "inconclusive", (f"the seeds could only have detected a difference of {100 * result.detectable:.2f} "
                                "points or more")
    return "no significant difference", f"p={result.p_value:.2g}; the seeds could have detected " \
                                        f"{100 * result.detectable:.2f} points"


def format_mean(mean: float, low: float, high: float) -> str:
    """``0.8797 (0.8790–0.8805)``; the mean alone where there is no interval."""
    if math.isnan(mean):
        return "—"
    return f"{mean:.4f}" + ("" if math.isnan(low) else f" ({low:.4f}–{high:.4f})")
