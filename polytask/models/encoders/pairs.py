"""Sentence pairs for encoders that read each sentence alone: which rows to encode, and how to fold them back.

Why: a from-scratch encoder (BiLSTM, CNN) must not run across the boundary between a pair's two
sentences, yet every head reads one row of word states per example. The featurizer therefore
appends each pair's second sentence as an extra row (one encoder pass still encodes the whole
batch), and the encoder folds the rows back: example i's words are its first sentence's, then
its second's, with ``segments`` telling them apart (Conneau et al. 2017 encode both sentences of
an NLI pair with one shared encoder).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def pair_rows(sentences: Sequence[Sequence[str]], pairs: Sequence[Sequence[str] | None],
              ) -> tuple[list[Sequence[str]], list[int]]:
    """The rows to encode (every first sentence, then every second one) and, per example, its second row (-1: none)."""
    rows = list(sentences)
    second = []
    for pair in pairs:
        second.append(len(rows) if pair is not None else -1)
        if pair is not None:
            rows.append(pair)
    return rows, second


def fold_tensors(sentences: Sequence[Sequence[str]], pairs: Sequence[Sequence[str] | None], second: Sequence[int],
                 row_width: int) -> dict[str, Tensor]:
    """``fold_index`` [batch, words] (the flat row position of each word's state), ``mask`` and ``segments``."""
    lengths = [len(s) + (len(p) if p is not None else 0) for s, p in zip(sentences, pairs)]
    width = max(max(lengths, default=0), 1)
    fold_index = torch.zeros(len(sentences), width, dtype=torch.long)
    mask = torch.zeros(len(sentences), width, dtype=torch.bool)
    segments = torch.zeros(len(sentences), width, dtype=torch.long)
    for i, (sentence, pair) in enumerate(zip(sentences, pairs)):
        first = len(sentence)
        fold_index[i, :first] = torch.arange(first) + i * row_width
        if pair is not None:
            fold_index[i, first : first + len(pair)] = torch.arange(len(pair)) + second[i] * row_width
            segments[i, first : first + len(pair)] = 1
        mask[i, : lengths[i]] = True
    return {"fold_index": fold_index, "mask": mask, "segments": segments}


def fold_rows(layer: Tensor, fold_index: Tensor, mask: Tensor) -> Tensor:
    """Row states ``[rows, row_words, dim]`` to example states ``[batch, words, dim]`` (padding zero)."""
    return layer.flatten(0, 1)[fold_index] * mask.unsqueeze(-1).to(layer.dtype)
