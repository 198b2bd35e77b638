"""Length-sorted chunks: run a batch's rows in groups of similar length, each cut to its own longest.

Why: a mixed multi-task step collates every task's micro-batch into one batch (CoNLL-2003's short
NER sentences beside long POS sentences and reviews), and one padded call runs every row to the
batch's longest. Sorted by length and split into chunks, each call pads only to its own longest
row; the encoders (word-level and transformer) encode rows independently, so every real position
gets the states of one call. ``SortedChunks`` is the bookkeeping both share.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor


class SortedChunks:
    """The rows of a batch with real lengths ``lengths`` [rows], sorted by length (stable), in chunks of ``size``."""

    def __init__(self, lengths: Tensor, size: int):
        self.lengths, self.size = lengths, size
        self.order = torch.argsort(lengths, stable=True)

    def __iter__(self) -> Iterator[tuple[Tensor, int]]:
        """Each chunk's row indices (into the batch) and the length it is cut to (its longest row, at least 1)."""
        for rows in self.order.split(self.size):
            yield rows, max(int(self.lengths[rows].max()), 1)

    def position(self) -> Tensor:
        """[rows]: where batch row r lands in the chunks' outputs concatenated in order."""
        position = torch.empty_like(self.order)
        position[self.order] = torch.arange(self.order.shape[0], device=self.order.device)
        return position
