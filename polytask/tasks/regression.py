"""Sentence-level regression (similarity or rating scores): one float per sentence.

Why normalise: a loss on raw targets (say, prices) would dwarf the other tasks' losses;
standardising with the training mean/std keeps it near unit scale. Predictions and
metrics are always in the targets' natural units.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from polytask.data.example import Example
from polytask.errors import DataError
from polytask.tasks.base import Level, TaskType
from polytask.tasks.metrics import mae, mse, pearson
from polytask.tasks.sequence_classification import fitted_labels


class Regression(TaskType):
    """A real number per sentence, trained with mean squared error over labelled examples.

    Option ``normalize`` (default True): the loss sees targets standardised with the
    training mean and (population) standard deviation, both saved in ``labels.json``; a
    constant training target keeps std 1. Metrics: ``mse`` and ``mae`` (lower is better),
    ``pearson`` (higher is better); primary ``mse``.
    """

    type_name: ClassVar[str] = "regression"
    level: ClassVar[Level] = "sequence"
    metric_directions: ClassVar[dict[str, bool]] = {"mse": False, "mae": False, "pearson": True}

    def __init__(self, name: str, *, normalize: bool = True) -> None:
        super().__init__(name)
        if not isinstance(normalize, bool):
            raise ValueError(f"option 'normalize' must be true or false, got {normalize!r}")
        self.normalize = normalize
        self._mean: float | None = None
        self._std: float = 1.0

    # --- label space -------------------------------------------------------------------
    def _scale(self) -> tuple[float, float]:
        if self._mean is None:
            raise RuntimeError(f"task {self.name!r}: target scale not built; call fit_labels or labels_from_json")
        return self._mean, self._std

    def fit_labels(self, examples: Sequence[Example]) -> None:
        values = [float(v) for v in fitted_labels(examples, self.name)]
        if not self.normalize:
            self._mean, self._std = 0.0, 1.0
            return
        self._mean = statistics.fmean(values)
        self._std = statistics.pstdev(values, self._mean) or 1.0

    def labels_to_json(self) -> dict[str, Any]:
        mean, std = self._scale()
        return {"mean": mean, "std": std}

    def labels_from_json(self, data: dict[str, Any]) -> None:
        self._mean, self._std = float(data["mean"]), float(data["std"])

    @property
    def output_size(self) -> int:
        return 1

    # --- tensors -----------------------------------------------------------------------
    def parse_label(self, raw: Any, origin: str) -> float:
        """A finite float from a number or a numeric string."""
        value: float | None = None
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            value = float(raw)
        elif isinstance(raw, str):
            try:
                value = float(raw)
            except ValueError:
                value = None
        if value is None or not math.isfinite(value):
            raise DataError.at(origin, f"task {self.name!r}: target {raw!r} is not a number")
        return value

    def encode_targets(self, labels: Sequence[float | None], max_length: int) -> tuple[Tensor, Tensor]:
        """Standardised targets [B] (0 where unlabelled) and the labelled mask [B]."""
        mean, std = self._scale()
        targets = torch.tensor([0.0 if v is None else (v - mean) / std for v in labels], dtype=torch.float32)
        labelled = torch.tensor([v is not None for v in labels], dtype=torch.bool)
        return targets, labelled

    def loss(self, logits: Tensor, targets: Tensor, labelled: Tensor) -> Tensor:
        """Mean squared error over labelled examples; logits [B, 1] or [B]."""
        mask = labelled.to(logits.device)
        squared = (logits.reshape(-1).float() - targets.to(logits.device)) ** 2
        return torch.where(mask, squared, torch.zeros_like(squared)).sum() / mask.sum().clamp(min=1)

    def decode(self, logits: Tensor, lengths: Sequence[int]) -> list[float]:
        mean, std = self._scale()
        return [v * std + mean for v in logits.reshape(-1).float().tolist()]

    # --- scores ------------------------------------------------------------------------
    def metrics(self, gold: Sequence[float | None], predicted: Sequence[float]) -> dict[str, float]:
        """MSE, MAE and Pearson r in natural units; examples with gold ``None`` are skipped."""
        if len(gold) != len(predicted):
            raise ValueError(f"{len(gold)} gold values but {len(predicted)} predicted")
        pairs = [(g, p) for g, p in zip(gold, predicted) if g is not None]
        g_list, p_list = [g for g, _ in pairs], [p for _, p in pairs]
        return {"mse": mse(g_list, p_list), "mae": mae(g_list, p_list), "pearson": pearson(g_list, p_list)}

    @property
    def primary_metric(self) -> str:
        return "mse"
