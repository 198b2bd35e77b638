"""Pairwise transfer (Standley et al. 2020): the matrix by hand, pair configs, grouping, the command end to end."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from polytask.evaluation.delta_m import PrimaryMetric
from polytask.evaluation.grouping import grouping_score
from polytask.evaluation.transfer import pair_group, pairwise_result, transfer_matrix
from polytask.evidence.runs import PlannedRun

ACC, MSE = PrimaryMetric("accuracy", True), PrimaryMetric("mse", False)


def test_transfer_matrix_hand_computed_with_mixed_directions() -> None:
    tasks = ["a", "b"]
    single = {"a": [80.0, 90.0], "b": [2.0, 4.0]}
    # a beside b: 88 and 90 (+10%, 0%); b (MSE, lower is better) beside a: 1.0 and 5.0 (+50%, -25%)
    paired = {("b", "a"): [88.0, 90.0], ("a", "b"): [1.0, 5.0]}
    matrix = transfer_matrix(tasks, {"a": ACC, "b": MSE}, single, paired)
    assert math.isnan(matrix[0][0]) and math.isnan(matrix[1][1])
    assert matrix[1][0] == pytest.approx(5.0)  # row = partner b, column = task a
    assert matrix[0][1] == pytest.approx(12.5)


def test_transfer_matrix_skips_seeds_with_a_zero_baseline() -> None:
    matrix = transfer_matrix(["a", "b"], {"a": ACC, "b": ACC}, {"a": [0.0, 50.0], "b": [10.0, 10.0]},
                             {("b", "a"): [5.0, 55.0], ("a", "b"): [10.0, 10.0]})
    assert matrix[1][0] == pytest.approx(10.0) and matrix[0][1] == pytest.approx(0.0)


def _summary(metrics: dict[str, float]) -> dict:
    return {"tasks": {t: {"accuracy": {"dev": v, "test": -1.0}} for t, v in metrics.items()}, "train_seconds": 1.0}


def test_a_task_every_partner_hurts_is_grouped_apart(tmp_path: Path) -> None:
    """x, y, z help each other; u hurts and is hurt by everyone: the best 2-grouping is {x, y, z} {u}."""
    tasks = ["x", "y", "u", "z"]
    alone = {"x": 80.0, "y": 70.0, "u": 90.0, "z": 60.0}
    runs, summaries = [], {}
    for task in tasks:
        run = PlannedRun(f"stl-{task}", "stl", 1, {}, tmp_path / task)
        runs.append(run)
        summaries[run.name] = _summary({task: alone[task]})
    for i, a in enumerate(tasks):
        for b in tasks[i + 1:]:
            factor = 0.8 if "u" in (a, b) else 1.1
            run = PlannedRun(pair_group(a, b), "pair", 1, {}, tmp_path / f"{a}{b}")
            runs.append(run)
            summaries[run.name] = _summary({a: alone[a] * factor, b: alone[b] * factor})
    primaries = dict.fromkeys(tasks, ACC)
    result = pairwise_result(tasks, primaries, runs, summaries, [1], groups=2)
    assert result["measure"] == "pairs" and result["primary"]["x"]["split"] == "dev"  # never test
    assert result["affinity"][0][1] == pytest.approx(10.0) and result["affinity"][2][0] == pytest.approx(-20.0)
    assert result["affinity"][1][1] is None
    assert result["groups"] == [["x", "y", "z"], ["u"]]
    assert result["score"] == pytest.approx(30.0)
    assert result["pairs"]["x+u"] == {"x": pytest.approx(64.0), "u": pytest.approx(72.0)}
    assert result["single"]["z"] == 60.0
    index = {t: i for i, t in enumerate(tasks)}
    for grouping in result["all_groupings"]:
        blocks = [[index[t] for t in g] for g in grouping["groups"]]
        assert grouping["score"] == pytest.approx(grouping_score(result["affinity"], blocks))
