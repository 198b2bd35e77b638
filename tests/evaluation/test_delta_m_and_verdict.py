"""`polytask compare`: Δm, intervals and verdicts on hand-computed cases; runs end to end, resume, CLI errors."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from polytask.evaluation.delta_m import (
    confidence_interval,
    delta_m,
    relative_change,
)
from polytask.evaluation.verdict import paired_verdict


def test_delta_m_mixed_directions_hand_computed() -> None:
    directions = {"pos": True, "score": False}  # accuracy up is good, MSE down is good
    # accuracy 80 -> 90: +12.5%; MSE 1.0 -> 0.5: +50% (lower is better)
    assert delta_m({"pos": 90.0, "score": 0.5}, {"pos": 80.0, "score": 1.0}, directions) == pytest.approx(31.25)
    # accuracy 80 -> 72: -10%; MSE 1.0 -> 1.5: -50%
    assert delta_m({"pos": 72.0, "score": 1.5}, {"pos": 80.0, "score": 1.0}, directions) == pytest.approx(-30.0)
    # a gain on one task cancelling a loss on the other
    assert delta_m({"pos": 88.0, "score": 1.1}, {"pos": 80.0, "score": 1.0}, directions) == pytest.approx(0.0)


def test_relative_change_zero_and_negative_baselines() -> None:
    assert math.isnan(relative_change(5.0, 0.0, True))
    assert relative_change(-0.25, -0.5, True) == pytest.approx(50.0)  # Pearson -0.5 -> -0.25 is better
    assert relative_change(0.8, 1.0, False) == pytest.approx(20.0)


def test_confidence_interval_hand_computed() -> None:
    interval = confidence_interval([1.0, 2.0, 3.0])  # mean 2, s = 1, t_{0.975, 2} = 4.302653
    half = 4.302652729749462 / math.sqrt(3)
    assert (interval.mean, interval.low, interval.high, interval.n) == pytest.approx((2.0, 2.0 - half, 2.0 + half, 3))
    assert confidence_interval([4.0, 4.0]).to_json() == {"mean": 4.0, "ci95": [4.0, 4.0], "n": 2}
    one = confidence_interval([1.5])
    assert (one.low, one.mean, one.high) == (1.5, 1.5, 1.5)


@pytest.mark.parametrize(
    ("multi", "single", "higher", "expected"),
    [
        ([91.0, 92.1, 90.9, 91.5], [90.0, 91.0, 90.1, 90.4], True, "positive"),  # +1.0, +1.1, +0.8, +1.1
        ([89.0, 89.9, 89.2, 89.3], [90.0, 91.0, 90.1, 90.4], True, "negative"),
        ([90.5, 90.4, 90.3, 90.3], [90.0, 91.0, 90.1, 90.4], True, "neutral"),  # +0.5, -0.6, +0.2, -0.1
        ([0.40, 0.42, 0.41], [0.50, 0.53, 0.50], False, "positive"),  # MSE went down: better
        ([0.60, 0.62, 0.61], [0.50, 0.53, 0.50], False, "negative"),
        ([95.0], [90.0], True, "neutral"),  # one seed: no test
        ([90.0, 91.0], [90.0, 91.0], True, "neutral"),  # identical values
        ([89.0, 90.0], [90.0, 91.0], True, "neutral"),  # equal differences: no spread, no test
    ],
)
def test_paired_verdict(multi: list[float], single: list[float], higher: bool, expected: str) -> None:
    result = paired_verdict(multi, single, higher)
    assert result.verdict == expected
    if len({m - s for m, s in zip(multi, single)}) == 1:
        assert result.p_value is None
    else:
        assert result.p_value == pytest.approx(stats.ttest_rel(multi, single).pvalue)
    sign = 1 if higher else -1
    assert result.mean_difference == pytest.approx(sign * (sum(multi) - sum(single)) / len(multi))
