"""Pairwise transfer (Standley et al. 2020): the matrix by hand, pair configs, grouping, the command end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import polytask
from polytask.config import validate_config
from polytask.errors import PolytaskError
from polytask.evaluation.delta_m import PrimaryMetric
from polytask.evidence.runs import task_subset_config
from tests.evidence.test_compare import tiny_compare_config
from tests.test_cli import polytask as run_cli

ACC, MSE = PrimaryMetric("accuracy", True), PrimaryMetric("mse", False)


def test_pair_config_keeps_everything_but_the_other_tasks() -> None:
    base = tiny_compare_config()
    base["tasks"]["extra"] = base["tasks"]["tag"]
    base["balancing"] = {"method": "static", "options": {"weights": {"tag": 2.0, "score": 1.0, "extra": 3.0}}}
    base["sampling"] = {"method": "weighted", "tasks_per_step": 3,
                        "options": {"rates": {"tag": 0.5, "score": 0.25, "extra": 0.25}}}
    base["training"]["epoch"] = {"task": "extra"}
    pair = task_subset_config(base, ["tag", "score"])
    assert list(pair["tasks"]) == ["tag", "score"] and pair["heads"] == {"score": {"pooling": "mean"}}
    assert pair["balancing"] == {"method": "static", "options": {"weights": {"tag": 2.0, "score": 1.0}}}
    assert pair["sampling"]["options"]["rates"] == {"tag": 0.5, "score": 0.25}
    assert pair["sampling"]["tasks_per_step"] == "all" and pair["training"]["epoch"]["task"] is None
    assert pair["encoder"] == base["encoder"] and pair["training"]["lr"] == base["training"]["lr"]
    assert list(base["tasks"]) == ["tag", "score", "extra"]  # not modified


def test_affinity_pairs_command_end_to_end_and_resumes(tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    data = tiny_compare_config()
    data["tasks"]["mood"] = {"type": "sequence_classification",
                             "data": {"format": "synthetic", "column": "mood",
                                      "synthetic": {**data["tasks"]["tag"]["data"]["synthetic"], "corpus": "mood"}}}
    data["training"]["threads"] = 1
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / "pairs"
    result = run_cli("affinity", str(config), "--measure", "pairs", "--out", str(out), "--seeds", "2")
    assert result.returncode == 0, result.stderr
    assert "pairwise transfer" in result.stdout and "task groupings" in result.stdout
    saved = json.loads((out / "affinity.json").read_text())
    tasks = ["tag", "score", "mood"]
    assert saved["tasks"] == tasks and saved["seeds"] == [3, 4]
    groups = sorted(p.name for p in (out / "runs").iterdir())
    assert groups == ["pair-score+mood", "pair-tag+mood", "pair-tag+score", "stl-mood", "stl-score", "stl-tag"]
    # the matrix is the runs' dev metrics: check one cell against the summaries
    def dev(group: str, seed: int, task: str, metric: str) -> float:
        summary = json.loads((out / "runs" / group / f"seed-{seed}" / "summary.json").read_text())
        return summary["tasks"][task][metric]["dev"]
    expected = sum(-(dev("pair-tag+score", s, "score", "mse") - dev("stl-score", s, "score", "mse"))
                   / dev("stl-score", s, "score", "mse") * 100 for s in (3, 4)) / 2
    assert saved["affinity"][0][1] == pytest.approx(expected)
    assert (out / "transfer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pair_config = yaml.safe_load((out / "runs" / "pair-tag+mood" / "seed-3" / "config.yaml").read_text())
    assert list(pair_config["tasks"]) == ["tag", "mood"] and pair_config["training"]["seed"] == 3

    again = run_cli("affinity", str(config), "--measure", "pairs", "--out", str(out), "--seeds", "2")
    assert again.returncode == 0 and "12 runs (12 already complete" in again.stderr
    lookahead = run_cli("affinity", str(config), "--out", str(out))
    assert lookahead.returncode == 2 and "already holds affinity.json (measure: pairs)" in lookahead.stderr


def test_pairs_user_errors(tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_compare_config(), sort_keys=False))
    bad = run_cli("affinity", str(config), "--out", str(tmp_path / "x"), "--seeds", "2")
    assert bad.returncode == 2 and "--measure pairs" in bad.stderr and not (tmp_path / "x").exists()
    with pytest.raises(PolytaskError, match="needs an out directory"):
        polytask.affinity(validate_config(tiny_compare_config()), measure="pairs")
    with pytest.raises(PolytaskError, match="unknown affinity measure"):
        polytask.affinity(validate_config(tiny_compare_config()), measure="tag")
    one = tiny_compare_config()
    del one["tasks"]["score"], one["heads"]["score"]
    with pytest.raises(PolytaskError, match="at least two tasks"):
        polytask.affinity(validate_config(one), out=str(tmp_path / "y"), measure="pairs")
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "affinity.json").write_text(json.dumps({"measure": "lookahead"}))
    with pytest.raises(PolytaskError, match=r"already holds affinity.json \(measure: lookahead\)"):
        polytask.affinity(validate_config(tiny_compare_config()), out=str(earlier), measure="pairs")
    assert not (earlier / "runs").exists()  # refused before any run was planned or trained
