"""Regression metrics in the targets' natural units: MSE, MAE and Pearson's r.

Why: regression scores are not percentages; they are reported as computed so a reader can
compare them with published numbers. Each function raises ValueError on empty input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def _check_aligned(gold: Sequence[float], predicted: Sequence[float]) -> None:
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold values but {len(predicted)} predicted")
    if not gold:
        raise ValueError("no examples to score")


def mse(gold: Sequence[float], predicted: Sequence[float]) -> float:
    """Mean squared error (lower is better)."""
    _check_aligned(gold, predicted)
    return math.fsum((g - p) ** 2 for g, p in zip(gold, predicted)) / len(gold)


def mae(gold: Sequence[float], predicted: Sequence[float]) -> float:
    """Mean absolute error (lower is better)."""
    _check_aligned(gold, predicted)
    return math.fsum(abs(g - p) for g, p in zip(gold, predicted)) / len(gold)


def pearson(gold: Sequence[float], predicted: Sequence[float]) -> float:
    """Pearson correlation in [-1, 1] (higher is better); 0.0 when either side is constant.

    Why 0.0: r is undefined for a constant input, and a constant predictor carries no
    information, so it scores like an uncorrelated one instead of producing NaN.
    """
    _check_aligned(gold, predicted)
    mean_g, mean_p = math.fsum(gold) / len(gold), math.fsum(predicted) / len(predicted)
    dg = [g - mean_g for g in gold]
    dp = [p - mean_p for p in predicted]
    var_g, var_p = math.fsum(d * d for d in dg), math.fsum(d * d for d in dp)
    if var_g == 0.0 or var_p == 0.0:
        return 0.0
    r = math.fsum(a * b for a, b in zip(dg, dp)) / math.sqrt(var_g * var_p)
    return max(-1.0, min(1.0, r))
