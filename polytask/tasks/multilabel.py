"""Sentence-level multi-label classification (topics, tags): any subset of classes per sentence.

Why a separate type: classes are independent yes/no decisions, so the loss is a per-class
binary cross-entropy and the scores are micro-F1 and exact-match, not accuracy.
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
from polytask.tasks.metrics import exact_match, multilabel_micro_f1
from polytask.tasks.sequence_classification import ClassIndex, fitted_labels

DEFAULT_SEPARATOR = ","
OTHER_SEPARATORS = (";", "|", "\t", " ")
"""Separators a label may use by mistake: a class name holding one is refused unless ``separator`` is set."""


class MultiLabel(TaskType):
    """A set of classes per sentence, trained with binary cross-entropy on logits.

    Options: ``separator`` (default ``","``) splits a string label (``""`` means no class);
    ``threshold`` (default 0.5) is the probability at or above which a class is predicted;
    ``label_names`` names integer class ids (id ``i`` is ``label_names[i]``).
    Metrics ``micro_f1`` (primary) and ``exact_match``, both percent, higher is better.

    Without an explicit ``separator``, a class name holding another usual separator (``;``,
    ``|``, a space or tab) is a DataError naming file:line: ``a;b`` split on ``,`` would silently
    become one combined class. Setting ``separator`` (even to ``","``) accepts such names as given.
    """

    type_name: ClassVar[str] = "multilabel"
    level: ClassVar[Level] = "sequence"
    metric_directions: ClassVar[dict[str, bool]] = {"micro_f1": True, "exact_match": True}

    def __init__(self, name: str, *, separator: str | None = None, threshold: float = 0.5,
                 label_names: Sequence[str] | None = None) -> None:
        super().__init__(name)
        if separator is not None and (not isinstance(separator, str) or not separator):
            raise ValueError(f"option 'separator' must be a non-empty string, got {separator!r}")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold < 1.0:
            raise ValueError(f"option 'threshold' must be a number strictly between 0 and 1, got {threshold!r}")
        self.separator, self.threshold = separator or DEFAULT_SEPARATOR, float(threshold)
        self.separator_given = separator is not None
        self.label_names = label_names_option(label_names)
        self._classes: ClassIndex | None = None

    # --- label space -------------------------------------------------------------------
    @property
    def classes(self) -> ClassIndex:
        if self._classes is None:
            raise RuntimeError(f"task {self.name!r}: label space not built; call fit_labels or labels_from_json")
        return self._classes

    def fit_labels(self, examples: Sequence[Example]) -> None:
        self._classes = ClassIndex(name for names in fitted_labels(examples, self.name) for name in names)
        if not len(self._classes):
            raise DataError(f"task {self.name!r}: no class occurs in the training labels")

    def labels_to_json(self) -> dict[str, Any]:
        return {"labels": list(self.classes.names)}

    def labels_from_json(self, data: dict[str, Any]) -> None:
        self._classes = ClassIndex.saved(data["labels"])

    @property
    def output_size(self) -> int:
        return len(self.classes)

    def unknown_labels(self, labels: Iterable[Sequence[str] | None]) -> set[str]:
        """Classes outside the label space (e.g. seen only in dev), so the caller can name them."""
        return self.classes.unknown(name for names in labels if names is not None for name in names)

    # --- tensors -----------------------------------------------------------------------
    def parse_label(self, raw: Any, origin: str) -> list[str]:
        """A sorted, duplicate-free list of class names, from a list or a separated string."""
        if isinstance(raw, str):
            parts = [] if not raw.strip() else [part.strip() for part in raw.split(self.separator)]
            names = [label_name(part, self.label_names, self.name, origin) for part in parts]
            if not self.separator_given:
                self._check_separator(names, origin)
        elif isinstance(raw, (list, tuple)):
            names = [label_name(name, self.label_names, self.name, origin) for name in raw]
        else:
            raise DataError.at(origin, f"task {self.name!r}: labels must be a list or a string, got {type(raw).__name__}")
        for name in names:
            if not isinstance(name, str) or not name:
                raise DataError.at(origin, f"task {self.name!r}: class {name!r} is not a non-empty string")
        return sorted(set(names))

    def _check_separator(self, names: Sequence[str], origin: str) -> None:
        """A class name like ``a;b`` under the default ``,`` is a separator mix-up, not a class: say what to set."""
        for name in names:
            other = next((mark for mark in OTHER_SEPARATORS if mark in name), None)
            if other is not None:
                shown = repr(other)
                raise DataError.at(origin, f"task {self.name!r}: class {name!r} holds {shown}, but labels are split "
                                           f"on {DEFAULT_SEPARATOR!r}; set tasks.{self.name}.options.separator to "
                                           f"{shown} (or to {DEFAULT_SEPARATOR!r} to keep {name!r} as one class)")

    def encode_targets(self, labels: Sequence[Sequence[str] | None], max_length: int) -> tuple[Tensor, Tensor]:
        """Multi-hot targets [B, C] and the labelled mask [B]; classes outside the space are dropped."""
        targets = torch.zeros((len(labels), len(self.classes)), dtype=torch.float32)
        for row, names in enumerate(labels):
            for name in names or ():
                column = self.classes.id(name)
                if column >= 0:
                    targets[row, column] = 1.0
        labelled = torch.tensor([names is not None for names in labels], dtype=torch.bool)
        return targets, labelled

    def loss(self, logits: Tensor, targets: Tensor, labelled: Tensor) -> Tensor:
        """Binary cross-entropy averaged over labelled examples and classes."""
        mask = labelled.to(logits.device)
        per_class = F.binary_cross_entropy_with_logits(logits.float(), targets.to(logits.device), reduction="none")
        per_class = torch.where(mask[:, None], per_class, torch.zeros_like(per_class))
        return per_class.sum() / (mask.sum() * per_class.shape[-1]).clamp(min=1)

    def decode(self, logits: Tensor, lengths: Sequence[int]) -> list[list[str]]:
        chosen = (logits.float().sigmoid() >= self.threshold).tolist()
        return [[name for name, on in zip(self.classes.names, row) if on] for row in chosen]

    def probabilities(self, logits: Tensor, lengths: Sequence[int]) -> list[dict[str, float]]:
        probs = logits.float().sigmoid().tolist()
        return [dict(zip(self.classes.names, row)) for row in probs]

    # --- scores ------------------------------------------------------------------------
    def metrics(self, gold: Sequence[Sequence[str] | None], predicted: Sequence[Sequence[str]]) -> dict[str, float]:
        """Micro-F1 and exact match (percent); examples with gold ``None`` are skipped."""
        if len(gold) != len(predicted):
            raise ValueError(f"{len(gold)} gold label sets but {len(predicted)} predicted")
        pairs = [(g, p) for g, p in zip(gold, predicted) if g is not None]
        g_list, p_list = [g for g, _ in pairs], [p for _, p in pairs]
        return {"micro_f1": multilabel_micro_f1(g_list, p_list), "exact_match": exact_match(g_list, p_list)}

    @property
    def primary_metric(self) -> str:
        return "micro_f1"
