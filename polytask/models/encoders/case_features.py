"""Word-shape features: a small learned embedding of each word's casing class, joined to its states.

Why: an uncased encoder (the shipped MiniLM lower-cases its input; a from-scratch encoder with
``lowercase: true``) cannot tell "Apple" from "apple", a strong named-entity cue; the word's shape
restores it (Collobert et al. 2011 "caps" feature; Lample et al. 2016). ``encoder.case_features: true``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from polytask.data.word_arrays import shape_id_array
from polytask.data.word_shapes import SHAPE_IDS, SHAPES, word_shape

__all__ = ["CASE_DIM", "SHAPES", "SHAPE_IDS", "CaseEmbedding", "shape_ids", "word_shape"]

CASE_DIM = 16
"""Size of the shape embedding."""


def shape_ids(sentences: Sequence[Sequence[str]], width: int) -> Tensor:
    """``[batch, width]`` shape ids of the words (0 past each sentence's end)."""
    return torch.from_numpy(shape_id_array(sentences, width))


class CaseEmbedding(nn.Module):
    """The learned ``CASE_DIM`` vector of each shape id (padding: zeros)."""

    output_dim = CASE_DIM

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(len(SHAPES) + 1, CASE_DIM, padding_idx=0)

    def forward(self, ids: Tensor) -> Tensor:
        return self.embedding(ids)
