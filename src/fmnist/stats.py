"""Intervals and paired tests for results across seeds."""

from __future__ import annotations

import math
import warnings

import numpy as np


def interval(values) -> tuple[float, float, float]:
    """Mean, sample std, and the half-width of a 95% Student-t interval of the finite values (NaN where
    there are too few values for it)."""
    from scipy import stats

    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    if len(values) == 1:
        return float(values[0]), math.nan, math.nan
    std = float(values.std(ddof=1))
    return float(values.mean()), std, float(stats.t.ppf(0.975, len(values) - 1) * std / math.sqrt(len(values)))


def paired(ours: dict, theirs: dict) -> tuple[int, float, float]:
    """Paired t-test of two {seed: value} maps over the seeds both hold finite values for.

    Returns (pairs, mean difference ours - theirs, two-sided p-value); the p-value is NaN with fewer
    than two pairs or when every difference is zero.
    """
    from scipy import stats

    seeds = [seed for seed in ours if seed in theirs and math.isfinite(ours[seed]) and math.isfinite(theirs[seed])]
    a = np.array([ours[seed] for seed in seeds], dtype=float)
    b = np.array([theirs[seed] for seed in seeds], dtype=float)
    if not len(seeds):
        return 0, math.nan, math.nan
    diff = float((a - b).mean())
    if len(seeds) < 2 or not np.any(a != b):
        return len(seeds), diff, math.nan
    with warnings.catch_warnings():  # identical differences: t is infinite, p is 0; no warning needed
        warnings.simplefilter("ignore", RuntimeWarning)
        return len(seeds), diff, float(stats.ttest_rel(a, b).pvalue)


def format_mean(mean: float, spread: float) -> str:
    if math.isnan(mean):
        return "—"
    return f"{mean:.4f}" + ("" if math.isnan(spread) else f" ± {spread:.4f}")
