"""Sentence-level single-label classification (sentiment, subjectivity, ...).

Also home of the small label-space pieces the other classification types share: the class
index and the ignore index.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from polytask.data.example import Example
from polytask.errors import DataError
from polytask.tasks.base import Level, TaskType
from polytask.tasks.label_names import label_name, label_names_option
from polytask.tasks.metrics import accuracy, macro_f1

IGNORE_INDEX = -100
"""Target id of positions that enter neither loss nor metrics (padding, unlabelled, unknown)."""


class ClassIndex:
    """The sorted class names of a task and their integer ids.

    Why sorted: ids must not depend on the order examples were read, so a saved
    ``labels.json`` and a rebuilt label space always agree.
    """

    def __init__(self, names: Iterable[str]):
        self.names: list[str] = sorted(set(names))
        self._ids = {name: i for i, name in enumerate(self.names)}

    @classmethod
    def saved(cls, names: Any) -> ClassIndex:
        """The index a ``labels.json`` lists: distinct non-empty strings, else a ValueError naming the first that is not."""
        if not isinstance(names, list) or not names:
            raise ValueError(f"'labels' must be a non-empty list of class names, not {names!r}")
        seen: set[str] = set()
        for name in names:
            if not isinstance(name, str) or not name:
                raise ValueError(f"label {name!r} is not a non-empty string")
            if name in seen:
                raise ValueError(f"label {name!r} is listed twice")
            seen.add(name)
        return cls(names)

    def __len__(self) -> int:
        return len(self.names)

    def id(self, name: str) -> int:
        """The id of ``name``; IGNORE_INDEX for a class not in the index."""
        return self._ids.get(name, IGNORE_INDEX)

    def unknown(self, names: Iterable[str]) -> set[str]:
        """The names that are not classes of this index."""
        return {name for name in names if name not in self._ids}


def fitted_labels(examples: Sequence[Example], task: str) -> list[Any]:
    """The labels of ``task`` in ``examples``, skipping examples unlabelled for it."""
    labels = [example.labels[task] for example in examples if example.labels.get(task) is not None]
    if not labels:
        raise DataError(f"task {task!r}: no training example is labelled for it")
    return labels


def masked_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy over targets that are not IGNORE_INDEX; 0 (with a graph) when none are."""
    total = F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="sum")
    count = (targets != IGNORE_INDEX).sum().clamp(min=1)
    return total / count


class SequenceClassification(TaskType):
    """One class per sentence, trained with cross-entropy over labelled examples.

    Labels are strings; integer or boolean raw values (JSONL) become ``"3"``, ``"true"``. Option
    ``label_names`` names integer ids instead: id ``i`` is ``label_names[i]``.
    """

    type_name: ClassVar[str] = "sequence_classification"
    level: ClassVar[Level] = "sequence"
    metric_directions: ClassVar[dict[str, bool]] = {"accuracy": True, "macro_f1": True}

    def __init__(self, name: str, *, label_names: Sequence[str] | None = None) -> None:
        super().__init__(name)
        self.label_names = label_names_option(label_names)
        self._classes: ClassIndex | None = None

    # --- label space -------------------------------------------------------------------
    @property
    def classes(self) -> ClassIndex:
        if self._classes is None:
            raise RuntimeError(f"task {self.name!r}: label space not built; call fit_labels or labels_from_json")
        return self._classes

    def fit_labels(self, examples: Sequence[Example]) -> None:
        self._classes = ClassIndex(fitted_labels(examples, self.name))

    def labels_to_json(self) -> dict[str, Any]:
        return {"labels": list(self.classes.names)}

    def labels_from_json(self, data: dict[str, Any]) -> None:
        self._classes = ClassIndex.saved(data["labels"])

    @property
    def output_size(self) -> int:
        return len(self.classes)

    def unknown_labels(self, labels: Iterable[str | None]) -> set[str]:
        """Labels outside the label space (e.g. a class seen only in dev), for precise errors."""
        return self.classes.unknown(label for label in labels if label is not None)

    # --- tensors -----------------------------------------------------------------------
    def parse_label(self, raw: Any, origin: str) -> str:
        if isinstance(raw, bool):
            return "true" if raw else "false"
        raw = label_name(raw, self.label_names, self.name, origin)
        if not isinstance(raw, str):
            raise DataError.at(origin, f"task {self.name!r}: a class label must be a string, got {type(raw).__name__}")
        if not raw.strip():
            raise DataError.at(origin, f"task {self.name!r}: empty class label")
        return raw

    def encode_targets(self, labels: Sequence[str | None], max_length: int) -> tuple[Tensor, Tensor]:
        """Class ids [B] (IGNORE_INDEX where unlabelled or unknown) and the labelled mask [B]."""
        targets = torch.tensor(
            [IGNORE_INDEX if label is None else self.classes.id(label) for label in labels], dtype=torch.long
        )
        labelled = torch.tensor([label is not None for label in labels], dtype=torch.bool)
        return targets, labelled

    def loss(self, logits: Tensor, targets: Tensor, labelled: Tensor) -> Tensor:
        targets = targets.to(logits.device).masked_fill(~labelled.to(logits.device), IGNORE_INDEX)
        return masked_cross_entropy(logits, targets)

    def loss_count(self, targets: Tensor, labelled: Tensor) -> Tensor:
        return (targets.masked_fill(~labelled, IGNORE_INDEX) != IGNORE_INDEX).sum()

    def decode(self, logits: Tensor, lengths: Sequence[int]) -> list[str]:
        return [self.classes.names[i] for i in logits.argmax(dim=-1).tolist()]

    def probabilities(self, logits: Tensor, lengths: Sequence[int]) -> list[dict[str, float]]:
        probs = logits.float().softmax(dim=-1).tolist()
        return [dict(zip(self.classes.names, row)) for row in probs]

    # --- scores ------------------------------------------------------------------------
    def metrics(self, gold: Sequence[str | None], predicted: Sequence[str]) -> dict[str, float]:
        """Accuracy and macro-F1 (percent); examples with gold ``None`` are skipped."""
        if len(gold) != len(predicted):
            raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predicted")
        pairs = [(g, p) for g, p in zip(gold, predicted) if g is not None]
        g_list, p_list = [g for g, _ in pairs], [p for _, p in pairs]
        return {"accuracy": accuracy(g_list, p_list), "macro_f1": macro_f1(g_list, p_list)}

    @property
    def primary_metric(self) -> str:
        return "accuracy"
