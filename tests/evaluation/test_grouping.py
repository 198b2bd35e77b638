"""Task grouping search: set partitions, the Fifty et al. score, best groupings on crafted affinity matrices."""

from __future__ import annotations

import math
import random

import pytest

from polytask.errors import PolytaskError
from polytask.evaluation.grouping import (
    MAX_TASKS,
    best_groupings,
    grouping_score,
    set_partitions,
)

TASKS = ["a", "b", "c", "d"]


def stirling2(n: int, k: int) -> int:
    """Partitions of n elements into exactly k non-empty blocks."""
    if n == k:
        return 1
    if k == 0 or k > n:
        return 0
    return k * stirling2(n - 1, k) + stirling2(n - 1, k - 1)


@pytest.mark.parametrize(("n", "max_blocks"), [(1, 1), (3, 2), (4, 2), (5, 3), (5, 5), (6, 2), (7, 7)])
def test_partitions_are_counted_by_stirling_numbers_and_unique(n: int, max_blocks: int) -> None:
    partitions = list(set_partitions(n, max_blocks))
    assert len(partitions) == sum(stirling2(n, k) for k in range(1, max_blocks + 1))
    canonical = {tuple(tuple(sorted(b)) for b in sorted(p)) for p in partitions}
    assert len(canonical) == len(partitions)
    for partition in partitions:
        assert sorted(x for block in partition for x in block) == list(range(n))
        assert 1 <= len(partition) <= max_blocks and all(partition)


def test_bell_numbers_without_a_block_limit() -> None:
    assert [len(list(set_partitions(n))) for n in range(1, 8)] == [1, 2, 5, 15, 52, 203, 877]


def paired_matrix(help_: float = 0.5, hurt: float = -0.3) -> list[list[float]]:
    """{a, b} help each other, {c, d} help each other, every cross pair hurts."""
    m = [[hurt] * 4 for _ in range(4)]
    for i, j in [(0, 1), (1, 0), (2, 3), (3, 2)]:
        m[i][j] = help_
    for i in range(4):
        m[i][i] = 1.0  # self-affinity never enters the score
    return m


def test_two_helping_pairs_are_grouped_apart() -> None:
    best = best_groupings(TASKS, paired_matrix(), max_groups=2)[0]
    assert best.groups == [["a", "b"], ["c", "d"]]
    assert best.score == pytest.approx(4 * 0.5)


def test_all_tasks_helping_each_other_gives_one_group() -> None:
    m = [[0.2] * 4 for _ in range(4)]
    best = best_groupings(TASKS, m, max_groups=3)[0]
    assert best.groups == [TASKS] and best.score == pytest.approx(0.8)


def test_one_group_forced_when_g_is_one() -> None:
    ranked = best_groupings(TASKS, paired_matrix(), max_groups=1)
    assert len(ranked) == 1 and ranked[0].groups == [TASKS]
    # each task: one helper (+0.5) and two that hurt (-0.3), averaged
    assert ranked[0].score == pytest.approx(4 * (0.5 - 0.3 - 0.3) / 3)


def test_a_task_hurt_by_everyone_is_left_alone() -> None:
    m = [[0.4] * 4 for _ in range(4)]
    for i in range(3):
        m[i][3] = m[3][i] = -0.2
    assert best_groupings(TASKS, m, max_groups=2)[0].groups == [["a", "b", "c"], ["d"]]


def test_score_is_the_mean_affinity_onto_each_task_from_its_group() -> None:
    m = [[0, 1, 2, 3], [4, 0, 5, 6], [7, 8, 0, 9], [1, 2, 3, 0]]
    # row = source: onto a from b,c = (4 + 7)/2, onto b = (1 + 8)/2, onto c = (2 + 5)/2; d alone scores 0
    assert grouping_score(m, [[0, 1, 2], [3]]) == pytest.approx(11 / 2 + 9 / 2 + 7 / 2)
    assert grouping_score(m, [[0], [1], [2], [3]]) == 0.0
    m[0][1] = math.nan  # an unmeasured pair counts 0
    assert grouping_score(m, [[0, 1]]) == pytest.approx(4 + 0)


def test_ties_go_to_fewer_groups() -> None:
    zero = [[0.0] * 4 for _ in range(4)]
    ranked = best_groupings(TASKS, zero, max_groups=4)
    assert ranked[0].groups == [TASKS]
    assert [len(g.groups) for g in ranked] == sorted(len(g.groups) for g in ranked)


def test_ranking_is_sorted_and_the_best_is_the_maximum() -> None:
    rng = random.Random(0)
    m = [[rng.uniform(-1, 1) for _ in range(5)] for _ in range(5)]
    tasks = list("abcde")
    ranked = best_groupings(tasks, m, max_groups=3)
    scores = [g.score for g in ranked]
    assert scores == sorted(scores, reverse=True)
    index = {t: i for i, t in enumerate(tasks)}
    brute = max(grouping_score(m, p) for p in set_partitions(5, 3))
    assert ranked[0].score == pytest.approx(brute)
    assert grouping_score(m, [[index[t] for t in g] for g in ranked[0].groups]) == pytest.approx(brute)


def test_the_search_is_permutation_equivariant() -> None:
    m = paired_matrix()
    order = [2, 0, 3, 1]
    permuted = [[m[i][j] for j in order] for i in order]
    best = best_groupings([TASKS[i] for i in order], permuted, max_groups=2)[0]
    assert sorted(sorted(g) for g in best.groups) == [["a", "b"], ["c", "d"]]


def test_more_than_max_tasks_is_refused_and_bad_g_too() -> None:
    n = MAX_TASKS + 1
    with pytest.raises(PolytaskError, match=f"at most {MAX_TASKS} tasks"):
        best_groupings([f"t{i}" for i in range(n)], [[0.0] * n for _ in range(n)])
    with pytest.raises(PolytaskError, match="--groups must be at least 1"):
        best_groupings(TASKS, paired_matrix(), max_groups=0)
    eight = [f"t{i}" for i in range(MAX_TASKS)]
    assert len(best_groupings(eight, [[0.0] * MAX_TASKS for _ in eight], max_groups=2)) == 2**(MAX_TASKS - 1)
