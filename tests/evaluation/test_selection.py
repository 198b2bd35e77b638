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
