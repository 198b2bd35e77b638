"""Per-task verdict: did a multi-task method beat single-task learning beyond seed noise?

Why: a mean difference over three seeds says little on its own; a paired t-test over the
seeds (seed s of the method against seed s of the single-task run, which share the
initialisation seed and data order) separates a consistent change from noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from polytask.dependencies import require

Verdict = Literal["positive", "neutral", "negative"]


@dataclass(frozen=True)
class PairedTest:
    """The direction-adjusted mean difference (positive: multi-task better), its p-value and the verdict."""

    verdict: Verdict
    mean_difference: float
    p_value: float | None
    n: int

    def to_json(self) -> dict[str, object]:
        return {"verdict": self.verdict, "mean_difference": self.mean_difference, "p_value": self.p_value, "n": self.n}


def paired_verdict(multi: Sequence[float], single: Sequence[float], higher_is_better: bool,
                   alpha: float = 0.05) -> PairedTest:
    """Two-sided paired t-test on per-seed values: "positive"/"negative" when p < ``alpha``, else "neutral".

    Fewer than two pairs, or differences without spread (all equal, identical values included),
    give "neutral" with no p-value: the t-test is undefined there, and with few seeds and a
    discrete metric (accuracy on a small test set) equal differences happen by chance.
    """
    if len(multi) != len(single):
        raise ValueError(f"paired test needs as many multi-task values ({len(multi)}) as single-task ones "
                         f"({len(single)})")
    sign = 1.0 if higher_is_better else -1.0
    differences = [sign * (m - s) for m, s in zip(multi, single)]
    n = len(differences)
    if n == 0:
        raise ValueError("paired test needs at least one pair")
    mean = sum(differences) / n
    std = math.sqrt(sum((d - mean) ** 2 for d in differences) / (n - 1)) if n > 1 else 0.0
    if std <= 1e-12 * max(1.0, abs(mean)):
        return PairedTest("neutral", mean, None, n)
    stats = require("scipy.stats", "paired t-test verdicts", "report")
    t = mean / (std / math.sqrt(n))
    p_value = float(2.0 * stats.t.sf(abs(t), n - 1))
    if p_value < alpha:
        return PairedTest("positive" if mean > 0 else "negative", mean, p_value, n)
    return PairedTest("neutral", mean, p_value, n)
