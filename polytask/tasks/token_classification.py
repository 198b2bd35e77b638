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
from polytask.errors import ConfigError, DataError
from polytask.tasks.base import Level, TaskType
from polytask.tasks.crf import CRFDecoder
from polytask.tasks.decoding import TagDecoder
from polytask.tasks.label_names import is_label_id, label_name, label_names_option
from polytask.tasks.metrics import canonical_scheme, span_prf, token_accuracy
from polytask.tasks.metrics.spans import split_tag
from polytask.tasks.sequence_classification import (
    IGNORE_INDEX,
    ClassIndex,
    fitted_labels,
)
from polytask.tasks.softmax_decoder import SoftmaxDecoder
from polytask.tasks.tag_constraints import scheme_constraints, well_formed

DECODERS: dict[str, type[TagDecoder]] = {"softmax": SoftmaxDecoder, "crf": CRFDecoder}
"""``heads.TASK.decoder`` names; ``constrained`` (default: true for crf, false for softmax) applies the scheme."""


class TokenClassification(TaskType):
    """A tag per token; loss and decoding by its decoder (default: softmax cross-entropy per labelled token).

    Option ``scheme``: None (plain tags, metric ``accuracy``) or ``iob1``, ``iob2``/``bio``,
    ``iobes``/``bioes`` (adds conlleval span ``precision``, ``recall``, ``f1``; primary ``f1``).
    ``configure_decoder`` (``heads.NAME.decoder``) picks a CRF or constrained decoding. Option
    ``label_names`` names integer tag ids (``datasets`` ``ClassLabel`` tags): id ``i`` is ``label_names[i]``.
    """

    type_name: ClassVar[str] = "token_classification"
    level: ClassVar[Level] = "token"
    metric_directions: ClassVar[dict[str, bool]] = {"accuracy": True}

    def __init__(self, name: str, *, scheme: str | None = None, label_names: Sequence[str] | None = None) -> None:
        super().__init__(name)
        self.scheme = None if scheme is None else canonical_scheme(scheme)
        self.label_names = label_names_option(label_names)
        if self.scheme is not None:
            # The span metrics exist only with a scheme, so the directions are per instance.
            spans = {"precision": True, "recall": True, "f1": True}
            self.metric_directions = {"accuracy": True, **spans}  # type: ignore[misc]
        self._tags: ClassIndex | None = None
        self._decoder: TagDecoder | None = None

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
        """The saved tags; with a scheme each must be one of its tags (``split_tag`` raises ValueError otherwise)."""
        tags = ClassIndex.saved(data["labels"])
        if self.scheme is not None:
            for tag in tags.names:
                split_tag(tag, self.scheme)
        self._tags = tags

    @property
    def output_size(self) -> int:
        return len(self.tags)

    def unknown_labels(self, labels: Iterable[Sequence[str] | None]) -> set[str]:
        """Tags outside the label space (e.g. seen only in dev), so the caller can name them."""
        return self.tags.unknown(tag for tags in labels if tags is not None for tag in tags)

    # --- decoder -----------------------------------------------------------------------
    @property
    def decoder(self) -> TagDecoder:
        """The decoder (an unconstrained softmax until ``configure_decoder`` chooses one)."""
        if self._decoder is None:
            self._decoder = SoftmaxDecoder(len(self.tags))
        return self._decoder

    def configure_decoder(self, decoder: str, constrained: bool | None) -> TagDecoder:
        """Build the decoder over the fitted label space; the scheme's constraints apply when ``constrained``."""
        field = f"heads.{self.name}.decoder"
        if decoder not in DECODERS:
            raise ConfigError(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}", field=field)
        constrained = decoder == "crf" and self.scheme is not None if constrained is None else constrained
        if constrained and self.scheme is None:
            raise ConfigError(f"constrained decoding needs the task's scheme: set tasks.{self.name}.scheme",
                              field=f"heads.{self.name}.constrained")
        constraints = scheme_constraints(self.tags.names, self.scheme) if constrained else None
        self._decoder = DECODERS[decoder](len(self.tags), constraints)
        return self._decoder

    # --- tensors -----------------------------------------------------------------------
    def parse_label(self, raw: Any, origin: str) -> list[str]:
        """A list of non-empty tag strings (integer ids named by ``label_names``), each valid in the scheme when set."""
        if not isinstance(raw, (list, tuple)):
            raise DataError.at(origin, f"task {self.name!r}: tags must be a list of strings, got {type(raw).__name__}")
        tags = [label_name(tag, self.label_names, self.name, origin) for tag in raw]
        for position, tag in enumerate(tags):
            if not isinstance(tag, str) or not tag:
                raise DataError.at(origin, f"task {self.name!r}: tag {position} is {tag!r}, not a non-empty string")
            if self.scheme is not None:
                try:
                    split_tag(tag, self.scheme)
                except ValueError as error:
                    hint = "; integer tag ids need the task's label_names" if is_label_id(raw[position]) else ""
                    raise DataError.at(origin, f"task {self.name!r}: token {position}: {error}{hint}") from None
        return tags

    def check_label(self, label: Sequence[str], tokens: Sequence[str], origin: str) -> None:
        """Raise a DataError when the sentence has not exactly one tag per token."""
        if len(label) != len(tokens):
            raise DataError.at(origin, f"task {self.name!r}: {len(label)} tags for {len(tokens)} tokens")

    def encode_targets(self, labels: Sequence[Sequence[str] | None], max_length: int) -> tuple[Tensor, Tensor]:
        """Tag ids [B, max_length] and the labelled mask [B].

        Padding, unlabelled sentences and tags outside the label space hold IGNORE_INDEX;
        tags beyond ``max_length`` (truncated tokens) are dropped. With a constrained decoder, gold
        tags are re-encoded in their well-formed form (the same conlleval chunks), so the gold path
        never takes a transition the decoder disallows.
        """
        targets = torch.full((len(labels), max_length), IGNORE_INDEX, dtype=torch.long)
        for row, tags in enumerate(labels):
            if tags is not None:
                if self.scheme is not None and self.decoder.constrained:
                    fixed = well_formed(tags, self.scheme)
                    tags = fixed if not self.tags.unknown(fixed) else tags
                ids = [self.tags.id(tag) for tag in tags[:max_length]]
                targets[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        labelled = torch.tensor([tags is not None for tags in labels], dtype=torch.bool)
        return targets, labelled

    def loss(self, logits: Tensor, targets: Tensor, labelled: Tensor) -> Tensor:
        """The decoder's loss per labelled token (softmax: cross-entropy; crf: sentence NLL); logits [B, T, C]."""
        targets = targets.to(logits.device).masked_fill(~labelled.to(logits.device)[:, None], IGNORE_INDEX)
        return self.decoder.loss(logits, targets)

    def loss_count(self, targets: Tensor, labelled: Tensor) -> Tensor:
        """Labelled tokens (``loss`` is their mean)."""
        return (targets.masked_fill(~labelled[:, None], IGNORE_INDEX) != IGNORE_INDEX).sum()

    def decode(self, logits: Tensor, lengths: Sequence[int]) -> list[list[str]]:
        return [[self.tags.names[i] for i in row] for row in self.decoder.decode(logits, lengths)]

    def probabilities(self, logits: Tensor, lengths: Sequence[int]) -> list[list[dict[str, float]]]:
        """Per token, the probability of every tag (a CRF's marginals)."""
        probs = self.decoder.marginals(logits, lengths).tolist()
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
