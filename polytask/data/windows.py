"""Overlapping windows over sub-word sequences longer than a transformer's input limit.

A sentence of ``n`` pieces that does not fit in ``capacity`` pieces (the model's limit minus
its special tokens) is covered by windows of ``capacity`` pieces starting every ``stride``
pieces, the last one aligned to the end; nothing is truncated. Each piece then takes its state
from the window where it is most central, the usual merge for long-document tagging (as in
BERT's SQuAD document stride, Devlin et al. 2019).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WindowPlan:
    """Windows ``[start, end)`` over one sentence's pieces and, per piece, the window it reads."""

    windows: list[tuple[int, int]]
    source: list[int]  # source[p] = index into ``windows`` of the window piece p takes its state from


def plan_windows(length: int, capacity: int, stride: int) -> WindowPlan:
    """Cover ``length`` pieces with windows of at most ``capacity`` pieces, ``stride`` apart.

    Centrality is the piece's distance to the nearest edge where its window *cuts* the sentence:
    a window edge at the sentence's own start or end costs no context, so it does not count.
    Ties go to the earlier window.
    """
    if capacity < 1 or not 1 <= stride <= capacity:
        raise ValueError(f"need 1 <= stride <= capacity, got stride {stride} and capacity {capacity}")
    if length <= capacity:
        return WindowPlan([(0, length)], [0] * length)
    starts = list(range(0, length - capacity, stride))
    starts.append(length - capacity)
    windows = [(s, s + capacity) for s in starts]
    source = []
    first = 0  # the earliest window that may still cover the current piece
    for piece in range(length):
        while windows[first][1] <= piece:
            first += 1
        best, best_context = first, -1
        for index in range(first, len(windows)):
            start, end = windows[index]
            if start > piece:
                break
            left = piece - start if start > 0 else length
            right = end - 1 - piece if end < length else length
            if min(left, right) > best_context:
                best, best_context = index, min(left, right)
        source.append(best)
    return WindowPlan(windows, source)
