"""Classification metrics agree with sklearn; regression metrics with numpy; all in documented units."""

from __future__ import annotations

import random

import numpy as np
import pytest

from polytask.tasks.metrics import (
    accuracy,
    exact_match,
    macro_f1,
    mae,
    mse,
    multilabel_micro_f1,
    pearson,
    token_accuracy,
)

sklearn_metrics = pytest.importorskip("sklearn.metrics")
sklearn_preprocessing = pytest.importorskip("sklearn.preprocessing")


def test_accuracy_is_percent() -> None:
    assert accuracy(["a", "b", "a", "c"], ["a", "b", "b", "b"]) == 50.0


def test_token_accuracy_skips_positions_without_gold() -> None:
    gold = [["A", None, "B"], ["C"]]
    pred = [["A", "X", "X"], ["C"]]
    assert token_accuracy(gold, pred) == pytest.approx(200 / 3)


def test_empty_or_misaligned_inputs_raise() -> None:
    for metric in (accuracy, macro_f1, multilabel_micro_f1, exact_match, mse, mae, pearson):
        with pytest.raises(ValueError):
            metric([], [])
        with pytest.raises(ValueError):
            metric([1.0], [])
    with pytest.raises(ValueError, match="no labelled tokens"):
        token_accuracy([[None]], [["A"]])


@pytest.mark.filterwarnings("ignore")
def test_macro_f1_matches_sklearn() -> None:
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 40)
        classes = ["a", "b", "c", "d", "e"][: rng.randint(1, 5)]
        gold = [rng.choice(classes) for _ in range(n)]
        pred = [g if rng.random() < 0.5 else rng.choice(classes) for g in gold]
        expected = sklearn_metrics.f1_score(gold, pred, average="macro")
        assert macro_f1(gold, pred) / 100 == pytest.approx(expected, abs=1e-9)


@pytest.mark.filterwarnings("ignore")
def test_multilabel_metrics_match_sklearn() -> None:
    rng = random.Random(1)
    classes = ["x", "y", "z", "w"]
    for _ in range(200):
        n = rng.randint(1, 20)
        gold = [[c for c in classes if rng.random() < 0.3] for _ in range(n)]
        pred = [[c for c in classes if rng.random() < 0.3] for _ in range(n)]
        binarizer = sklearn_preprocessing.MultiLabelBinarizer(classes=classes).fit([classes])
        y_true, y_pred = binarizer.transform(gold), binarizer.transform(pred)
        micro = sklearn_metrics.f1_score(y_true, y_pred, average="micro", zero_division=0)
        assert multilabel_micro_f1(gold, pred) / 100 == pytest.approx(micro, abs=1e-9)
        assert exact_match(gold, pred) / 100 == pytest.approx(sklearn_metrics.accuracy_score(y_true, y_pred), abs=1e-9)


def test_multilabel_all_empty_is_zero_f1_but_full_exact_match() -> None:
    assert multilabel_micro_f1([[], []], [[], []]) == 0.0
    assert exact_match([[], []], [[], []]) == 100.0


def test_regression_metrics_match_numpy() -> None:
    rng = np.random.default_rng(2)
    for _ in range(50):
        gold = rng.normal(size=30)
        pred = gold + rng.normal(scale=0.5, size=30)
        assert mse(list(gold), list(pred)) == pytest.approx(np.mean((gold - pred) ** 2), rel=1e-12)
        assert mae(list(gold), list(pred)) == pytest.approx(np.mean(np.abs(gold - pred)), rel=1e-12)
        assert pearson(list(gold), list(pred)) == pytest.approx(np.corrcoef(gold, pred)[0, 1], abs=1e-12)


def test_pearson_of_a_constant_input_is_zero() -> None:
    assert pearson([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]) == 0.0
    assert pearson([4.0, 4.0], [1.0, 2.0]) == 0.0
    assert pearson([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)
