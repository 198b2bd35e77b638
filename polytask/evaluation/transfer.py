"""Pairwise transfer from trained runs: task j's relative change beside task i, and the grouping it implies.

Why: Standley et al. 2020 (Which Tasks Should Be Learned Together in Multi-task Learning?,
ICML) measure transfer directly — every task alone and every pair trained with the same
budget — as the relative change (%, > 0 better) of task j's primary dev metric beside task i.
Pure arithmetic over the runs' summaries, kept apart from the runner (``evidence.pairwise``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

from polytask.evaluation.comparison import STL, RunRecord
from polytask.evaluation.delta_m import PrimaryMetric, relative_change
from polytask.evaluation.grouping import best_groupings

PAIR = "pair"
"""The run label of a pair of tasks trained together."""
SPLIT = "dev"
"""Transfer is measured on dev metrics, never test."""
TOP_GROUPINGS = 5


def pair_group(a: str, b: str) -> str:
    """The run group of the pair {a, b}: ``pair-a+b``."""
    return f"{PAIR}-{a}+{b}"


def transfer_matrix(tasks: Sequence[str], primaries: Mapping[str, PrimaryMetric],
                    single: Mapping[str, Sequence[float]],
                    paired: Mapping[tuple[str, str], Sequence[float]]) -> list[list[float]]:
    """transfer[i][j]: mean over seeds of task j's relative change beside task i (NaN on the diagonal).

    ``single[j]`` holds task j's primary metric alone, one value per seed; ``paired[(i, j)]``
    task j's primary metric in the pair {i, j}, per seed in the same order.
    """
    matrix = [[math.nan] * len(tasks) for _ in tasks]
    for a, source in enumerate(tasks):
        for b, target in enumerate(tasks):
            if source == target:
                continue
            changes = [relative_change(m, s, primaries[target].higher_is_better)
                       for m, s in zip(paired[(source, target)], single[target])]
            finite = [c for c in changes if math.isfinite(c)]
            matrix[a][b] = sum(finite) / len(finite) if finite else math.nan
    return matrix


def pairwise_result(tasks: Sequence[str], primaries: Mapping[str, PrimaryMetric], runs: Sequence[RunRecord],
                    summaries: Mapping[str, dict[str, Any]], seeds: Sequence[int], groups: int) -> dict[str, Any]:
    """The JSON-ready result from the runs' summaries; pure, so it can be tested on crafted numbers."""
    metric_of: dict[str, dict[int, dict[str, float]]] = {}  # group -> seed -> task -> primary dev metric
    for run in runs:
        values = summaries[run.name]["tasks"]
        metric_of.setdefault(run.group, {})[run.seed] = {
            task: _number(values.get(task, {}).get(primaries[task].name, {}).get(SPLIT)) for task in values}
    single = {t: [metric_of[f"{STL}-{t}"][s][t] for s in seeds] for t in tasks}
    paired: dict[tuple[str, str], list[float]] = {}
    for a, b in itertools.combinations(tasks, 2):
        by_seed = metric_of[pair_group(a, b)]
        paired[(a, b)] = [by_seed[s][b] for s in seeds]  # b beside a
        paired[(b, a)] = [by_seed[s][a] for s in seeds]
    matrix = transfer_matrix(tasks, primaries, single, paired)
    ranked = best_groupings(tasks, matrix, groups)
    return {
        "measure": "pairs",
        "tasks": list(tasks),
        "affinity": [[x if math.isfinite(x) else None for x in row] for row in matrix],
        "primary": {t: {"metric": p.name, "higher_is_better": p.higher_is_better, "split": SPLIT}
                    for t, p in primaries.items()},
        "single": {t: _mean(v) for t, v in single.items()},
        "pairs": {f"{a}+{b}": {a: _mean(paired[(b, a)]), b: _mean(paired[(a, b)])}
                  for a, b in itertools.combinations(tasks, 2)},
        "seeds": list(seeds),
        "max_groups": groups,
        "groups": ranked[0].groups,
        "score": ranked[0].score,
        "all_groupings": [{"groups": g.groups, "score": g.score} for g in ranked[:TOP_GROUPINGS]],
    }


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _mean(values: Sequence[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None
