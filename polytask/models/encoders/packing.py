"""Packing a batch's sub-word windows into shared rows, so short windows are not padded to long ones.

Why: a mixed multi-task step batches NER's short sentences with polarity's long ones; padded to
the longest, or even cut into length-sorted chunks, many positions of every transformer call are
padding. Packed, several windows share one row of the longest window's length, each with its own
position ids and attention only within itself (a block-diagonal mask), so their states are those
of separate calls while almost every position is a real piece (sequence packing as in Krell et al.
2021, "Efficient Sequence Packing without Cross-contamination", arXiv:2107.02027).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class PackedWindows:
    """Windows packed into rows: ``input_ids``/``position_ids``/``segments`` [rows, width], ``lengths`` [rows].

    ``segments`` holds, per position, the window it belongs to (-1 for padding); ``piece_index``
    is the featurizer's ``piece_index`` renumbered to flat positions in the rows.
    """

    input_ids: Tensor
    position_ids: Tensor
    segments: Tensor
    lengths: Tensor
    piece_index: Tensor

    def attention_mask(self, rows: Tensor | slice, used: int) -> Tensor:
        """[rows, 1, used, used] booleans: a piece attends to the pieces of its own window; padding to itself."""
        segments = self.segments[rows, :used]
        mask = (segments[:, :, None] == segments[:, None, :]) & (segments[:, :, None] >= 0)
        mask |= torch.eye(used, dtype=torch.bool, device=mask.device)  # no empty softmax row (NaN) at padding
        return mask[:, None]


def pack_windows(input_ids: Tensor, attention_mask: Tensor, piece_index: Tensor, pad: int) -> PackedWindows:
    """First-fit decreasing: the windows, longest first, each into the first row with room, rows as long as the longest."""
    windows, width = input_ids.shape
    device = input_ids.device
    lengths = attention_mask.sum(1)
    sizes = lengths.tolist()
    capacity = max(max(sizes), 1)
    fill: list[int] = []
    row_of, offset = [0] * windows, [0] * windows
    for window in sorted(range(windows), key=lambda w: -sizes[w]):
        row = next((r for r, used in enumerate(fill) if used + sizes[window] <= capacity), len(fill))
        if row == len(fill):
            fill.append(0)
        row_of[window], offset[window] = row, fill[row]
        fill[row] += sizes[window]
    position = torch.arange(width, device=device)
    real = position[None, :] < lengths[:, None]
    target = (torch.tensor(row_of, device=device)[:, None] * capacity + torch.tensor(offset, device=device)[:, None]
              + position[None, :])  # [windows, width]: each window position's flat place in the rows
    size = len(fill) * capacity
    ids = torch.full((size,), pad, dtype=input_ids.dtype, device=device)
    ids[target[real]] = input_ids[real]
    positions = torch.zeros(size, dtype=torch.long, device=device)
    positions[target[real]] = position.expand(windows, width)[real]
    segments = torch.full((size,), -1, dtype=torch.long, device=device)
    segments[target[real]] = torch.arange(windows, device=device)[:, None].expand(windows, width)[real]
    shape = (len(fill), capacity)
    return PackedWindows(ids.view(shape), positions.view(shape), segments.view(shape),
                         torch.tensor(fill, device=device), target.flatten()[piece_index])
