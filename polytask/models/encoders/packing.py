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
    is the featurizer's ``piece_index`` renumbered to flat positions in the rows; ``token_type_ids``
    (sentence pairs) are packed like ``input_ids``; ``dtype`` is the model's, for the attention mask.
    """

    input_ids: Tensor
    position_ids: Tensor
    segments: Tensor
    lengths: Tensor
    piece_index: Tensor
    token_type_ids: Tensor | None = None
    dtype: torch.dtype = torch.float32

    def attention_mask(self, rows: Tensor | slice, used: int) -> Tensor:
        """[rows, 1, used, used] additive mask: 0 where a piece sees a piece of its own window, the dtype's minimum elsewhere.

        Additive, because transformers passes a 4-D mask to the attention as it is: eager attention
        adds it to the scores (a boolean mask would add 0 or 1), sdpa takes either form. Padding sees
        only itself, so no softmax row is empty (NaN).
        """
        segments = self.segments[rows, :used]
        sees = (segments[:, :, None] == segments[:, None, :]) & (segments[:, :, None] >= 0)
        sees |= torch.eye(used, dtype=torch.bool, device=sees.device)
        blocked = torch.zeros(sees.shape, dtype=self.dtype, device=sees.device)
        return blocked.masked_fill_(~sees, torch.finfo(self.dtype).min)[:, None]

    def inputs(self, rows: Tensor | slice, used: int) -> dict[str, Tensor]:
        """The model's keyword inputs for ``rows``, cut to their first ``used`` positions."""
        inputs = {"input_ids": self.input_ids[rows, :used], "position_ids": self.position_ids[rows, :used],
                  "attention_mask": self.attention_mask(rows, used)}
        if self.token_type_ids is not None:
            inputs["token_type_ids"] = self.token_type_ids[rows, :used]
        return inputs


def pack_windows(input_ids: Tensor, attention_mask: Tensor, piece_index: Tensor, pad: int,
                 token_type_ids: Tensor | None = None, dtype: torch.dtype = torch.float32) -> PackedWindows:
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
    places = target[real]
    size = len(fill) * capacity
    shape = (len(fill), capacity)

    def scatter(values: Tensor, fill_value: int) -> Tensor:
        flat = torch.full((size,), fill_value, dtype=values.dtype, device=device)
        flat[places] = values[real]
        return flat.view(shape)

    return PackedWindows(
        input_ids=scatter(input_ids, pad),
        position_ids=scatter(position.expand(windows, width), 0),
        segments=scatter(torch.arange(windows, device=device)[:, None].expand(windows, width), -1),
        lengths=torch.tensor(fill, device=device),
        piece_index=target.flatten()[piece_index],
        token_type_ids=scatter(token_type_ids, 0) if token_type_ids is not None else None,
        dtype=dtype,
    )
