"""Affix features: learned embeddings of each word's lower-cased prefix and suffix, joined to its input vector.

Why: a word's ending is the strongest cue to its part of speech when the word itself is rare or
unseen ("-ly", "-ing", "-ed", "-tion"), and a character CNN's max-pooling keeps which trigrams occur
but not where (Ratnaparkhi 1996 reads prefixes and suffixes; spaCy's tok2vec embeds PREFIX and
SUFFIX). ``encoder.affix_features: true`` (from-scratch encoders): the first and last
``AFFIX_CHARS`` characters of the digit-normalised, lower-cased word, each looked up in a
vocabulary of the training data's affixes seen at least ``AFFIX_MIN_COUNT`` times (others: unknown).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from polytask.data.word_arrays import AFFIX_CHARS

__all__ = ["AFFIX_CHARS", "AFFIX_DIM", "AFFIX_MIN_COUNT", "AffixEmbedding"]

AFFIX_DIM = 25
"""Size of the prefix embedding and of the suffix embedding (the input vector grows by twice this)."""

AFFIX_MIN_COUNT = 2
"""Training-data occurrences an affix needs to get its own vector; rarer ones share the unknown affix's,
which is thereby trained for the affixes a test set brings."""


class AffixEmbedding(nn.Module):
    """The learned prefix and suffix vectors of ``affix_ids`` ``[rows, words, 2]`` (padding: zeros), joined."""

    output_dim = 2 * AFFIX_DIM

    def __init__(self, prefixes: int, suffixes: int):
        super().__init__()
        self.prefixes = nn.Embedding(prefixes, AFFIX_DIM, padding_idx=0)
        self.suffixes = nn.Embedding(suffixes, AFFIX_DIM, padding_idx=0)

    def forward(self, affix_ids: Tensor) -> Tensor:
        return torch.cat([self.prefixes(affix_ids[..., 0]), self.suffixes(affix_ids[..., 1])], dim=-1)
