"""Task types: label parsing errors, label spaces, targets, masked losses, decoding, registry."""

from __future__ import annotations

import pytest

from polytask.evaluation.selection import normalised_score, selection_score
from polytask.tasks import (
    Regression,
    TokenClassification,
)


def test_normalised_scores_and_selection() -> None:
    assert normalised_score("f1", 90.0, True) == pytest.approx(0.9)
    assert normalised_score("accuracy", 90.0, False) == pytest.approx(0.1)
    assert normalised_score("mse", 1.0, False) == pytest.approx(0.5)
    assert normalised_score("mse", 0.0, False) == 1.0
    assert normalised_score("pearson", 0.5, True) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="METRIC_SCALES"):
        normalised_score("bleu", 30.0, True)
    tasks = {"ner": TokenClassification("ner", scheme="iob2"), "score": Regression("score")}
    dev = {"ner": {"accuracy": 99.0, "f1": 80.0}, "score": {"mse": 3.0, "pearson": 0.1}}
    assert selection_score(tasks, dev) == pytest.approx((0.8 + 0.25) / 2)


def test_selection_weights_give_a_weighted_mean_and_zero_leaves_a_task_out() -> None:
    tasks = {"ner": TokenClassification("ner", scheme="iob2"), "score": Regression("score")}
    dev = {"ner": {"accuracy": 99.0, "f1": 80.0}, "score": {"mse": 3.0, "pearson": 0.1}}
    assert selection_score(tasks, dev, {"ner": 3.0}) == pytest.approx((3 * 0.8 + 0.25) / 4)
    assert selection_score(tasks, dev, {"score": 0.0}) == pytest.approx(0.8)
    assert selection_score(tasks, dev, {"ner": 0.0, "score": 0.0}) == pytest.approx((0.8 + 0.25) / 2)  # none left
    assert selection_score(tasks, dev, {"other": 5.0}) == selection_score(tasks, dev)


@pytest.mark.parametrize(("weights", "message"), [
    ({"nope": 1.0}, r"training\.selection_weights\.nope: unknown task 'nope'"),
    ({"pos": -1.0}, r"training\.selection_weights\.pos: a weight is 0 or more"),
    ({"pos": 0, "chunk": 0, "sentiment": 0}, "every task weighs 0"),
])
def test_selection_weights_name_tasks_and_are_not_negative(weights: dict, message: str) -> None:
    from polytask.config import validate_config
    from polytask.errors import ConfigError
    from tests.conftest import tiny_config_dict

    data = tiny_config_dict()
    data["training"]["selection_weights"] = weights
    with pytest.raises(ConfigError, match=message):
        validate_config(data)


def test_training_selects_on_the_weighted_score(tmp_path) -> None:
    import json

    from polytask.config import validate_config
    from polytask.training.run import train_run
    from tests.conftest import tiny_config_dict

    data = tiny_config_dict()
    data["training"].update(epochs=2, max_steps=4, selection_weights={"sentiment": 0, "chunk": 2})
    summary = train_run(validate_config(data), tmp_path / "run", progress=False)
    evals = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
             if '"eval"' in line]
    evals = [r for r in evals if r.get("kind") == "eval" and r.get("split") == "dev"]
    for record in evals:
        tasks = record["tasks"]
        assert record["score"] == pytest.approx((tasks["pos"]["accuracy"] / 100 + 2 * tasks["chunk"]["f1"] / 100) / 3)
    assert summary["best_epoch"] == max(evals, key=lambda r: r["score"])["epoch"]
