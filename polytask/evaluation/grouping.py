"""Task grouping: split the tasks into at most G models so that tasks share a model with those that help them.

Why: inter-task affinity says which tasks help which; the grouping turns the matrix into a
recommendation. Score of Fifty et al. 2021 (Efficiently Identifying Task Groupings for
Multi-Task Learning, NeurIPS): in a grouping, task t scores the mean affinity onto t from the
other members of its group (0 for a task alone in its group, which gains nothing from anyone);
the grouping scores the sum over tasks. The search is exhaustive over set partitions, so it is
limited to ``MAX_TASKS`` tasks (Bell(8) = 4140 partitions); more tasks are refused.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from polytask.errors import PolytaskError

MAX_TASKS = 8


@dataclass(frozen=True)
class Grouping:
    """Groups of task names (each in the tasks' order, groups ordered by their first task) and their score."""

    groups: list[list[str]]
    score: float


def set_partitions(n: int, max_blocks: int | None = None) -> Iterator[list[list[int]]]:
    """Every partition of ``range(n)`` into at most ``max_blocks`` non-empty blocks, each exactly once.

    Blocks are in order of their smallest element, elements ascending within a block.
    """
    limit = n if max_blocks is None else max_blocks

    def extend(i: int, blocks: list[list[int]]) -> Iterator[list[list[int]]]:
        if i == n:
            yield [list(block) for block in blocks]
            return
        for block in blocks:
            block.append(i)
            yield from extend(i + 1, blocks)
            block.pop()
        if len(blocks) < limit:
            blocks.append([i])
            yield from extend(i + 1, blocks)
            blocks.pop()

    if n == 0:
        return
    yield from extend(0, [])


def grouping_score(affinity: Sequence[Sequence[float]], blocks: Sequence[Sequence[int]]) -> float:
    """Σ_t mean_{s in group(t), s ≠ t} affinity[s][t] (row = source s, column = target t); singletons add 0.

    An unmeasured pair (NaN) counts as 0.
    """
    total = 0.0
    for block in blocks:
        if len(block) < 2:
            continue
        for target in block:
            onto = [_value(affinity[source][target]) for source in block if source != target]
            total += sum(onto) / len(onto)
    return total


def best_groupings(tasks: Sequence[str], affinity: Sequence[Sequence[float]], max_groups: int = 2,
                   top: int | None = None) -> list[Grouping]:
    """Every grouping of ``tasks`` into at most ``max_groups`` models, best first (ties: fewer groups first)."""
    if max_groups < 1:
        raise PolytaskError(f"--groups must be at least 1, not {max_groups}")
    check_task_count(len(tasks))
    if len(affinity) != len(tasks) or any(len(row) != len(tasks) for row in affinity):
        raise ValueError(f"the affinity matrix must be {len(tasks)}×{len(tasks)}")
    scored = [(grouping_score(affinity, blocks), blocks) for blocks in set_partitions(len(tasks), max_groups)]
    # Scores equal up to float noise (relative to the matrix's scale) tie, and ties go to fewer groups.
    scale = max((abs(_value(x)) for row in affinity for x in row), default=0.0) or 1.0
    scored.sort(key=lambda item: (-round(item[0] / scale, 9), len(item[1])))
    chosen = scored if top is None else scored[:top]
    return [Grouping([[tasks[i] for i in block] for block in blocks], score) for score, blocks in chosen]


def check_task_count(n: int) -> None:
    """Refuse a task count the exhaustive search cannot handle, before any training is spent."""
    if n > MAX_TASKS:
        raise PolytaskError(f"the task grouping search is exhaustive and handles at most {MAX_TASKS} tasks; "
                            f"this config has {n}")


def _value(x: float) -> float:
    return 0.0 if x is None or math.isnan(x) else float(x)
