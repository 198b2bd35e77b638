"""Map each task's primary dev metric to [0, 1] (higher is better) and average them.

Why: model selection uses "the mean of the tasks' normalised dev metrics" (weighted by
``training.selection_weights``), and an F1 of 91.2, an accuracy of 97.4 and an MSE of 0.6 must
first be put on one scale.

The scale of a metric is looked up by its name in ``METRIC_SCALES`` (a new metric adds
one line there); its direction comes from the task's ``metric_directions``:

* ``percent`` (accuracy, F1, ...; in [0, 100]): ``v / 100``, or ``1 - v / 100`` if lower is better;
* ``correlation`` (Pearson r; in [-1, 1]): ``(v + 1) / 2``, or ``1 - (v + 1) / 2``;
* ``error`` (MSE, MAE; in [0, inf), lower is better): ``1 / (1 + v)``. This depends on the
  targets' units (an MSE of 0.5 maps to 0.67), so comparisons are only meaningful between
  runs on the same data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from polytask.tasks.base import TaskType

Scale = Literal["percent", "correlation", "error"]

METRIC_SCALES: dict[str, Scale] = {
    "accuracy": "percent",
    "precision": "percent",
    "recall": "percent",
    "f1": "percent",
    "macro_f1": "percent",
    "micro_f1": "percent",
    "exact_match": "percent",
    "pearson": "correlation",
    "mse": "error",
    "mae": "error",
}


def normalised_score(metric: str, value: float, higher_is_better: bool) -> float:
    """``value`` of ``metric`` mapped to [0, 1] with 1 best (see the module docstring)."""
    if metric not in METRIC_SCALES:
        raise ValueError(f"no scale known for metric {metric!r}; add it to METRIC_SCALES")
    scale = METRIC_SCALES[metric]
    if scale == "percent":
        unit = value / 100.0
    elif scale == "correlation":
        unit = (value + 1.0) / 2.0
    else:
        unit = value / (1.0 + value)  # grows with the error, so "lower is better" flips it below
    return unit if higher_is_better else 1.0 - unit


def selection_score(tasks: Mapping[str, TaskType], dev_metrics: Mapping[str, Mapping[str, float]],
                    weights: Mapping[str, float] | None = None) -> float:
    """Mean over ``tasks`` of the normalised primary dev metric; ``dev_metrics[task][metric]``.

    ``weights`` (``training.selection_weights``): a weighted mean, a task not named weighing 1; where every
    task here weighs 0 (a finetune's new tasks, the old ones weighted), the plain mean.
    """
    if not tasks:
        raise ValueError("no tasks to score")
    scores, given = [], []
    for name, task in tasks.items():
        metric = task.primary_metric
        scores.append(normalised_score(metric, dev_metrics[name][metric], task.metric_directions[metric]))
        given.append((weights or {}).get(name, 1.0))
    if sum(given) <= 0:
        given = [1.0] * len(scores)
    return sum(w * v for w, v in zip(given, scores)) / sum(given)
