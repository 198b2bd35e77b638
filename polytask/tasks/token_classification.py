"""Token tagging (POS, chunking, NER): one tag per token, optionally scored as spans.

Why: with a tagging ``scheme`` the tags encode chunks, and the field's standard score is
conlleval's span F1 (see ``polytask.tasks.metrics.spans``); without one, token accuracy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from polytask.data.example import Example
from polytask.errors import DataError
from polytask.tasks.base import Level, TaskType
from polytask.tasks.metrics import canonical_scheme, span_prf, token_accuracy
from polytask.tasks.metrics.spans import split_tag
from polytask.tasks.sequence_classification import (
    IGNORE_INDEX,
    ClassIndex,
    fitted_labels,
    masked_cross_entropy,
)


class TokenClassification(TaskType):
    """A tag per token, trained with cross-entropy averaged over labelled tokens.

    Option ``scheme``: None (plain tags, metric ``accuracy``) or ``iob1``, ``iob2``/``bio``,
    ``iobes``/``bioes`` (adds conlleval span ``precision``, ``recall``, ``f1``; primary ``f1``).
    """

    type_name: ClassVar[str] = "token_classification"
    level: ClassVar[Level] = "token"
    metric_directions: ClassVar[dict[str, bool]] = {"accuracy": True}

    def __init__(self, name: str, *, scheme: str | None = None) -> None:
        super().__init__(name)
        self.scheme = None if scheme is None else canonical_scheme(scheme)
        if self.scheme is not None:
            # The span metrics exist only with a scheme, so the directions are per instance.
            spans = {"precision": True, "recall": True, "f1": True}
            self.metric_directions = {"accuracy": True, **spans}  # type: ignore[misc]
        self._tags: ClassIndex | None = None

    # --- label space -------------------------------------------------------------------
    @property
    def tags(self) -> ClassIndex:
        if self._tags is None:
            raise RuntimeError(f"task {self.name!r}: label space not built; call fit_labels or labels_from_json")
        return self._tags

    def fit_labels(self, examples: Sequence[Example]) -> None:
        self._tags = ClassIndex(tag for tags in fitted_labels(examples, self.name) for tag in tags)

    def labels_to_json(self) -> dict[str, Any]:
        return {"labels": list(self.tags.names)}

    def labels_from_json(self, data: dict[str, Any]) -> None:
        self._tags = ClassIndex(data["labels"])

    @property
    def output_size(self) -> int:
        return len(self.tags)

    def unknown_labels(self, labels: Iterable[Sequence[str] | None]) -> set[str]:
        """Tags outside the label space (e.g. seen only in dev), so the caller can name them."""
        return self.tags.unknown(tag for tags in labels if tags is not None for tag in tags)

    # --- tensors -----------------------------------------------------------------------
    def parse_label(self, raw: Any, origin: str) -> list[str]:
        """A list of non-empty tag strings, each valid in the scheme when one is set."""
        if not isinstance(raw, (list, tuple)):
            raise DataError.at(origin, f"task {self.name!r}: tags must be a list of strings, got {type(raw).__name__}")
        for position, tag in enumerate(raw):
            if not isinstance(tag, str) or not tag:
                raise DataError.at(origin, f"task {self.name!r}: tag {position} is {tag!r}, not a non-empty string")
            if self.scheme is not None:
                try:
                    split_tag(tag, self.scheme)
                except ValueError as error:
                    raise DataError.at(origin, f"task {self.name!r}: token {position}: {error}") from None
        return list(raw)

    def check_label(self, label: Sequence[str], tokens: Sequence[str], origin: str) -> None:
        """Raise a DataError when the sentence has not exactly one tag per token."""
        if len(label) != len(tokens):
            raise DataError.at(origin, f"task {self.name!r}: {len(label)} tags for {len(tokens)} tokens")

    def encode_targets(self, labels: Sequence[Sequence[str] | None], max_length: int) -> tuple[Tensor, Tensor]:
        """Tag ids [B, max_length] and the labelled mask [B].

        Padding, unlabelled sentences and tags outside the label space hold IGNORE_INDEX;
        tags beyond ``max_length`` (truncated tokens) are dropped.
        """
        targets = torch.full((len(labels), max_length), IGNORE_INDEX, dtype=torch.long)
        for row, tags in enumerate(labels):
            if tags is not None:
                ids = [self.tags.id(tag) for tag in tags[:max_length]]
                targets[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        labelled = torch.tensor([tags is not None for tags in labels], dtype=torch.bool)
        return targets, labelled

    def loss(self, logits: Tensor, targets: Tensor, labelled: Tensor) -> Tensor:
        """Cross-entropy averaged over the batch's labelled tokens; logits [B, T, C]."""
        targets = targets.to(logits.device).masked_fill(~labelled.to(logits.device)[:, None], IGNORE_INDEX)
        return masked_cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    def loss_count(self, targets: Tensor, labelled: Tensor) -> Tensor:
        """Labelled tokens (``loss`` is their mean)."""
        return (targets.masked_fill(~labelled[:, None], IGNORE_INDEX) != IGNORE_INDEX).sum()

    def decode(self, logits: Tensor, lengths: Sequence[int]) -> list[list[str]]:
        ids = logits.argmax(dim=-1).tolist()
        return [[self.tags.names[i] for i in row[:length]] for row, length in zip(ids, lengths)]

    def probabilities(self, logits: Tensor, lengths: Sequence[int]) -> list[list[dict[str, float]]]:
        """Per token, the probability of every tag."""
        probs = logits.float().softmax(dim=-1).tolist()
        return [[dict(zip(self.tags.names, token)) for token in row[:length]] for row, length in zip(probs, lengths)]

    # --- scores ------------------------------------------------------------------------
    def metrics(self, gold: Sequence[Sequence[str] | None], predicted: Sequence[Sequence[str]]) -> dict[str, float]:
        """Token accuracy, plus conlleval span P/R/F1 with a scheme (percent).

        Sentences with gold ``None`` are skipped; a gold tag outside the label space simply
        never matches a prediction, so it counts as an error.
        """
        if len(gold) != len(predicted):
            raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted")
        pairs = [(g, p) for g, p in zip(gold, predicted) if g is not None]
        g_list, p_list = [g for g, _ in pairs], [p for _, p in pairs]
        scores = {"accuracy": token_accuracy(g_list, p_list)}
        if self.scheme is not None:
            scores.update(span_prf(g_list, p_list, self.scheme))
        return scores

    @property
    def primary_metric(self) -> str:
        return "f1" if self.scheme is not None else "accuracy"
