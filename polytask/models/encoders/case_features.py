"""Word-shape features: a small learned embedding of each word's casing class, joined to its states.

Why: an uncased encoder (the shipped MiniLM lower-cases its input; a from-scratch encoder with
``lowercase: true``) cannot tell "Apple" from "apple", a strong named-entity cue; the word's shape
restores it (Collobert et al. 2011 "caps" feature; Lample et al. 2016). ``encoder.case_features: true``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

SHAPES: tuple[str, ...] = ("all_caps", "initial_cap", "lower", "mixed", "digits", "punctuation", "other")
"""Shape classes; id ``i + 1`` is ``SHAPES[i]`` and id 0 is padding."""
CASE_DIM = 16
"""Size of the shape embedding."""


def word_shape(word: str) -> str:
    """The casing class of a word: all caps ("USA", "U.S."), initial cap ("Paris"), lower, mixed ("iPhone"),
    digits (no letters, some digit: "1,000"), punctuation (neither letters nor digits) or other (uncased script)."""
    letters = [c for c in word if c.isalpha()]
    if not letters:
        return "digits" if any(c.isdigit() for c in word) else "punctuation"
    cased = [c for c in letters if c.isupper() or c.islower()]
    if not cased:
        return "other"
    if all(c.isupper() for c in cased):
        return "all_caps"
    if all(c.islower() for c in cased):
        return "lower"
    if cased[0].isupper() and all(c.islower() for c in cased[1:]):
        return "initial_cap"
    return "mixed"


_IDS = {shape: i + 1 for i, shape in enumerate(SHAPES)}


def shape_ids(sentences: Sequence[Sequence[str]], width: int) -> Tensor:
    """``[batch, width]`` shape ids of the words (0 past each sentence's end)."""
    ids = torch.zeros(len(sentences), width, dtype=torch.long)
    for i, sentence in enumerate(sentences):
        if sentence:
            ids[i, : len(sentence)] = torch.tensor([_IDS[word_shape(w)] for w in sentence[:width]], dtype=torch.long)
    return ids


class CaseEmbedding(nn.Module):
    """The learned ``CASE_DIM`` vector of each shape id (padding: zeros)."""

    output_dim = CASE_DIM

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(len(SHAPES) + 1, CASE_DIM, padding_idx=0)

    def forward(self, ids: Tensor) -> Tensor:
        return self.embedding(ids)
