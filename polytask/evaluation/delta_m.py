"""Δm, the mean relative change of each task's primary metric against its single-task baseline.

Why: one number per balancing method that puts an accuracy, an F1 and an MSE on one scale,
signed so that positive always means "multi-task learning helped" (Maninis, Radosavovic &
Kokkinos 2019, Attentive Single-Tasking of Multiple Tasks, CVPR; also LibMTL and Vandenhende
et al. 2021):

    Δm = (1/T) Σ_t (-1)^{l_t} (M_mtl,t − M_stl,t) / M_stl,t × 100,   l_t = 1 if lower is better.

The denominator is ``|M_stl,t|`` so a negative baseline (a Pearson r below 0) keeps the sign's
meaning; for every other metric it equals ``M_stl,t``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from polytask.dependencies import require


@dataclass(frozen=True)
class PrimaryMetric:
    """A task's primary metric and its direction (from ``TaskType.primary_metric``/``metric_directions``)."""

    name: str
    higher_is_better: bool


def relative_change(multi: float, single: float, higher_is_better: bool) -> float:
    """(-1)^l (multi − single) / |single| × 100; NaN when the baseline is 0."""
    if single == 0:
        return math.nan
    sign = 1.0 if higher_is_better else -1.0
    return sign * (multi - single) / abs(single) * 100.0


def delta_m(multi: Mapping[str, float], single: Mapping[str, float], directions: Mapping[str, bool]) -> float:
    """Δm over the tasks of ``directions`` (task -> higher is better) for one pair of runs (one seed)."""
    if not directions:
        raise ValueError("Δm needs at least one task")
    changes = [relative_change(multi[task], single[task], higher) for task, higher in directions.items()]
    return sum(changes) / len(changes)


@dataclass(frozen=True)
class Interval:
    """A mean over seeds with its two-sided confidence interval (t distribution)."""

    mean: float
    low: float
    high: float
    n: int

    def to_json(self) -> dict[str, object]:
        return {"mean": finite_or_none(self.mean), "ci95": [finite_or_none(self.low), finite_or_none(self.high)],
                "n": self.n}


def confidence_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """Mean ± t_{(1+level)/2, n−1} · s/√n; with one value the interval is [mean, mean] (no spread to estimate)."""
    if not values:
        raise ValueError("a confidence interval needs at least one value")
    n = len(values)
    mean = sum(values) / n
    if n == 1 or math.isnan(mean):
        return Interval(mean, mean, mean, n)
    stats = require("scipy.stats", "Δm confidence intervals", "report")
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf((1.0 + level) / 2.0, n - 1)) * std / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def finite_or_none(value: float) -> float | None:
    """``value``, or None (JSON null) for NaN."""
    return None if math.isnan(value) else value
