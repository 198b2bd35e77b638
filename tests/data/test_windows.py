"""Overlapping windows: full coverage, the most central window per piece, no window when it fits."""

from __future__ import annotations

import pytest

from polytask.data.windows import plan_windows


def test_input_that_fits_is_one_window() -> None:
    plan = plan_windows(5, capacity=5, stride=2)
    assert plan.windows == [(0, 5)]
    assert plan.source == [0] * 5


def test_windows_cover_every_piece_and_the_last_is_aligned_to_the_end() -> None:
    plan = plan_windows(11, capacity=4, stride=3)
    assert plan.windows == [(0, 4), (3, 7), (6, 10), (7, 11)]
    for piece, window in enumerate(plan.source):
        start, end = plan.windows[window]
        assert start <= piece < end


def test_each_piece_reads_the_window_where_it_is_most_central() -> None:
    plan = plan_windows(10, capacity=4, stride=2)
    assert plan.windows == [(0, 4), (2, 6), (4, 8), (6, 10)]
    # piece 3 is the last piece of window 0 (no right context) but has one piece on each side in window 1
    assert plan.source == [0, 0, 0, 1, 1, 2, 2, 3, 3, 3]


def test_sentence_edges_cost_no_context() -> None:
    # piece 0 sits at the sentence start in window 0: nothing is cut there, so window 0 is best
    plan = plan_windows(6, capacity=4, stride=1)
    assert plan.source[0] == 0 and plan.source[-1] == len(plan.windows) - 1
    assert plan.source == [0, 0, 0, 1, 2, 2]  # ties go to the earlier window


@pytest.mark.parametrize("length,capacity,stride", [(50, 7, 3), (33, 8, 8), (9, 2, 1), (100, 16, 5)])
def test_chosen_window_maximises_the_context_on_the_cut_side(length, capacity, stride) -> None:
    plan = plan_windows(length, capacity, stride)

    def context(piece: int, window: tuple[int, int]) -> int:
        start, end = window
        left = piece - start if start > 0 else length
        right = end - 1 - piece if end < length else length
        return min(left, right)

    for piece, chosen in enumerate(plan.source):
        covering = [w for w in plan.windows if w[0] <= piece < w[1]]
        assert context(piece, plan.windows[chosen]) == max(context(piece, w) for w in covering)
    assert all(e - s == capacity for s, e in plan.windows)


def test_a_stride_longer_than_a_window_is_refused() -> None:
    with pytest.raises(ValueError, match="stride"):
        plan_windows(20, capacity=4, stride=5)
