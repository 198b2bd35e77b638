"""The task-type interface: how labels become tensors, losses, predictions and metrics."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from torch import Tensor, nn

from polytask.data.example import Example

Level = Literal["token", "sequence"]


class TaskType(ABC):
    """A kind of task (token tagging, sentence classification, ...) bound to one task name.

    A task type owns its label space (built from the training examples, saved as JSON),
    turns python labels into target tensors with a mask of labelled positions, computes
    its loss over labelled positions only, decodes logits into python labels and scores
    predictions. ``metric_directions`` says, per metric, whether higher is better.
    """

    type_name: ClassVar[str]
    level: ClassVar[Level]
    metric_directions: ClassVar[dict[str, bool]]

    def __init__(self, name: str, **options: Any):
        self.name = name

    # --- label space -------------------------------------------------------------------
    @abstractmethod
    def fit_labels(self, examples: Sequence[Example]) -> None:
        """Build the label space from training examples labelled for this task."""

    @abstractmethod
    def labels_to_json(self) -> dict[str, Any]:
        """The label space as JSON (saved in ``labels.json``)."""

    @abstractmethod
    def labels_from_json(self, data: dict[str, Any]) -> None:
        """Restore the label space saved by ``labels_to_json``."""

    @property
    @abstractmethod
    def output_size(self) -> int:
        """Number of outputs per position (token tasks) or per example (sequence tasks)."""

    # --- tensors -----------------------------------------------------------------------
    @abstractmethod
    def parse_label(self, raw: Any, origin: str) -> Any:
        """Validate and convert a reader's raw label; raise DataError naming ``origin``."""

    def check_label(self, label: Any, tokens: Sequence[str], origin: str) -> None:
        """Raise a DataError when a parsed label does not fit its example (token tasks: one tag per token)."""

    @abstractmethod
    def encode_targets(self, labels: Sequence[Any | None], max_length: int) -> tuple[Tensor, Tensor]:
        """Targets for a batch and a bool mask of which examples are labelled (shape [B]).

        ``labels[i]`` is None where example ``i`` is unlabelled for this task. Token tasks
        return targets of shape [B, max_length]; unlabelled or padded positions hold the
        ignore value and do not enter loss or metrics.
        """

    @abstractmethod
    def loss(self, logits: Tensor, targets: Tensor, labelled: Tensor) -> Tensor:
        """Mean loss over labelled examples (token tasks: over labelled tokens)."""

    def loss_count(self, targets: Tensor, labelled: Tensor) -> Tensor:
        """How many terms ``loss`` averages over (labelled examples); weighs the loss across shards."""
        return labelled.sum()

    @abstractmethod
    def decode(self, logits: Tensor, lengths: Sequence[int]) -> list[Any]:
        """Python predictions, one per example."""

    def configure_decoder(self, decoder: str, constrained: bool | None) -> nn.Module | None:
        """Choose how outputs become a loss and predictions (``heads.NAME.decoder``); return the module the head owns.

        Only token tasks have decoders; any other task accepts only the default ``softmax``.
        """
        if decoder != "softmax" or constrained:
            from polytask.errors import ConfigError

            what = f"decoder {decoder!r}" if decoder != "softmax" else "constrained decoding"
            raise ConfigError(f"{what} applies to token tasks only; {self.name!r} is a {self.type_name} task",
                              field=f"heads.{self.name}.decoder")
        return None

    def unknown_labels(self, labels: Sequence[Any]) -> set[str]:
        """Label values in ``labels`` outside the fitted label space (empty for regression)."""
        return set()

    def probabilities(self, logits: Tensor, lengths: Sequence[int]) -> list[Any] | None:
        """Optional per-example scores for prediction output (class probabilities)."""
        return None

    @abstractmethod
    def metrics(self, gold: Sequence[Any], predicted: Sequence[Any]) -> dict[str, float]:
        """Every metric of ``metric_directions`` on aligned gold/predicted lists."""

    @property
    @abstractmethod
    def primary_metric(self) -> str:
        """The metric used for model selection and summaries."""
