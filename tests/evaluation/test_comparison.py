"""`polytask compare`: Δm, intervals and verdicts on hand-computed cases; runs end to end, resume, CLI errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from polytask.evaluation.comparison import summarise
from polytask.evaluation.delta_m import (
    PrimaryMetric,
    confidence_interval,
)
from polytask.evidence.runs import PlannedRun
from polytask.rendering import comparison_markdown as markdown


def _summary(tasks: dict[str, dict[str, float]]) -> dict:
    return {"tasks": {t: {m: {"dev": v, "test": v} for m, v in metrics.items()} for t, metrics in tasks.items()},
            "train_seconds": 1.0}


def test_summarise_pairs_seeds_and_uses_directions(tmp_path: Path) -> None:
    primaries = {"pos": PrimaryMetric("accuracy", True), "score": PrimaryMetric("mse", False)}
    seeds = [1, 2, 3]
    stl_pos, stl_mse = [80.0, 82.0, 81.0], [1.0, 2.0, 1.0]
    ew_pos, ew_mse = [88.0, 90.2, 89.1], [1.5, 2.6, 1.5]  # MSE up: worse
    planned, summaries = [], {}
    for i, seed in enumerate(seeds):
        for group, label, tasks in [("ew", "ew", {"pos": {"accuracy": ew_pos[i]}, "score": {"mse": ew_mse[i]}}),
                                    ("stl-pos", "stl", {"pos": {"accuracy": stl_pos[i]}}),
                                    ("stl-score", "stl", {"score": {"mse": stl_mse[i]}})]:
            run = PlannedRun(group, label, seed, {}, tmp_path / "runs" / group / f"seed-{seed}")
            planned.append(run)
            summaries[run.name] = _summary(tasks)
    result = summarise(primaries, planned, summaries, ["ew"], seeds)
    expected = [(ew_pos[i] - stl_pos[i]) / stl_pos[i] * 50 + (stl_mse[i] - ew_mse[i]) / stl_mse[i] * 50
                for i in range(3)]
    assert result["delta_m"]["ew"]["per_seed"] == pytest.approx(expected)
    interval = confidence_interval(expected)
    assert result["delta_m"]["ew"]["mean"] == pytest.approx(interval.mean)
    assert result["delta_m"]["ew"]["ci95"] == pytest.approx([interval.low, interval.high])
    assert result["tasks"]["pos"]["stl"]["accuracy"]["mean"] == pytest.approx(81.0)
    assert result["tasks"]["pos"]["stl"]["accuracy"]["std"] == pytest.approx(1.0)
    assert result["verdicts"]["ew"] == {"pos": "positive", "score": "negative"}
    assert result["primary"]["score"] == {"metric": "mse", "higher_is_better": False, "split": "test"}
    assert result["runs"]["stl-pos"]["2"] == str(Path("runs/stl-pos/seed-2"))
    text = markdown(result)
    assert "| ew |" in text and "positive" in text


def test_summarise_one_seed_has_a_point_interval(tmp_path: Path) -> None:
    primaries = {"pos": PrimaryMetric("accuracy", True)}
    planned = [PlannedRun("ew", "ew", 5, {}, tmp_path / "ew"), PlannedRun("stl-pos", "stl", 5, {}, tmp_path / "stl")]
    summaries = {"ew/seed-5": _summary({"pos": {"accuracy": 90.0}}),
                 "stl-pos/seed-5": _summary({"pos": {"accuracy": 80.0}})}
    result = summarise(primaries, planned, summaries, ["ew"], [5])
    assert result["delta_m"]["ew"]["mean"] == pytest.approx(12.5)
    assert result["delta_m"]["ew"]["ci95"] == pytest.approx([12.5, 12.5])
    assert result["verdicts"]["ew"]["pos"] == "neutral"
    assert any("one seed" in note for note in result["notes"])
