"""``SortedChunks``: every row in exactly one chunk, chunks by rising length, and ``position`` undoing the sort."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from polytask.models.encoders.chunks import SortedChunks


@given(st.lists(st.integers(0, 40), min_size=1, max_size=50), st.integers(1, 12))
def test_chunks_cover_every_row_once_sorted_and_position_undoes_the_order(lengths: list[int], size: int) -> None:
    chunks = SortedChunks(torch.tensor(lengths), size)
    parts = list(chunks)
    rows = torch.cat([part for part, _ in parts])
    assert sorted(rows.tolist()) == list(range(len(lengths)))
    assert all(part.shape[0] <= size for part, _ in parts)
    assert [used for _, used in parts] == [max(max(lengths[r] for r in part.tolist()), 1) for part, _ in parts]
    in_order = [lengths[r] for r in rows.tolist()]
    assert in_order == sorted(in_order)
    values = torch.tensor(lengths)[rows]  # the rows' values in chunk order, put back in batch order
    assert values[chunks.position()].tolist() == lengths
