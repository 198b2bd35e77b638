"""Pairwise transfer: train every pair of tasks together and measure what each partner does to each task.

Why: the lookahead affinity of one joint run (``affinity.py``) sees how one step on task i's
gradient changes task j's loss; it cannot see harm that builds up over training, such as two
tasks competing for a small encoder's capacity. Standley et al. 2020 (Which Tasks Should Be
Learned Together in Multi-task Learning?, ICML) measure transfer directly instead: train each
task alone and every pair together with the same budget, then

    transfer(i→j) = (-1)^l (M_j({i, j}) − M_j({j})) / |M_j({j})| × 100

the relative change (in %, signed so that > 0 is better) of task j's primary dev metric when
trained beside task i. A larger group is scored by their higher-order approximation: a task's
change in a group is the mean of its changes in the pairs it forms with the other members,
which is exactly the grouping score of ``grouping.py`` with this matrix as the affinity.

Cost: T single-task runs and T(T−1)/2 pair runs per seed, trained in worker processes and
resumed like ``compare`` (a run with a ``summary.json`` is done). Dev metrics decide, never test.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polytask.dependencies import require
from polytask.errors import PolytaskError
from polytask.evidence.delta_m import PrimaryMetric, relative_change
from polytask.evidence.grouping import best_groupings, check_task_count
from polytask.evidence.runs import (
    STL,
    PlannedRun,
    plan_groups,
    single_task_config,
    task_subset_config,
    threads_per_job,
    train_incomplete,
)
from polytask.training.run_dir import SUMMARY, write_json

if TYPE_CHECKING:
    from rich.console import Console

    from polytask.config import ExperimentConfig

PAIR = "pair"
SPLIT = "dev"
TRANSFER_PNG = "transfer.png"
TOP_GROUPINGS = 5


def pair_group(a: str, b: str) -> str:
    """The run group of the pair {a, b}: ``pair-a+b``."""
    return f"{PAIR}-{a}+{b}"


def plan_pair_runs(base: dict[str, Any], seeds: Sequence[int], out: Path, threads: int,
                   file: str | None = None) -> list[PlannedRun]:
    """Every task alone and every pair of tasks, per seed; configs validated before any training."""
    tasks = list(base["tasks"])
    groups = [(f"{STL}-{task}", STL, single_task_config(base, task)) for task in tasks]
    groups += [(pair_group(a, b), PAIR, task_subset_config(base, [a, b])) for a, b in itertools.combinations(tasks, 2)]
    return plan_groups(groups, seeds, out, threads, file)


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


def run_pairwise(config: ExperimentConfig, out: str | Path, *, seeds: int = 1, jobs: int = 1, groups: int = 2,
                 file: str | None = None, overwrite: bool = False, console: Console | None = None,
                 backend: Any = None) -> dict[str, Any]:
    """Train every task alone and every pair into ``out/runs``; write and return ``out/affinity.json``.

    Rerunning the same command reuses finished runs (an interrupted measurement resumes); a
    lookahead measurement already in ``out`` is replaced only with ``overwrite``.
    """
    from rich.console import Console

    from polytask.evidence.affinity import AFFINITY_JSON, check_affinity_out
    from polytask.evidence.compare import primary_metrics

    console = console or Console(stderr=True, quiet=True)
    started = time.perf_counter()
    tasks = list(config.tasks)
    if len(tasks) < 2:
        raise PolytaskError("pairwise affinity needs at least two tasks")
    if not isinstance(seeds, int) or seeds < 1:
        raise PolytaskError(f"--seeds must be at least 1, not {seeds!r}")
    if jobs < 1:
        raise PolytaskError(f"--jobs must be at least 1, not {jobs!r}")
    if groups < 1:
        raise PolytaskError(f"--groups must be at least 1, not {groups}")
    check_task_count(len(tasks))
    require("matplotlib", "polytask affinity's heatmaps", "report")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PolytaskError(f"{out} exists and is not a directory")
    check_affinity_out(out, "pairs", overwrite)
    base = config.model_dump(mode="json")
    seed_values = [config.training.seed + i for i in range(seeds)]
    runs = plan_pair_runs(base, seed_values, out, threads_per_job(jobs), file)
    out.mkdir(parents=True, exist_ok=True)
    total, finished = len(runs), 0

    def progress(run: PlannedRun, summary: dict[str, Any], status: str) -> None:
        nonlocal finished
        finished += 1
        console.print(f"[{finished}/{total}] {run.name}: {status} ({summary.get('train_seconds', 0.0):.0f}s of training)",
                      highlight=False)

    pending = sum(not (run.path / SUMMARY).is_file() for run in runs)
    console.print(f"{total} runs ({total - pending} already complete in {out}), {jobs} job(s)", highlight=False)
    summaries = train_incomplete(runs, jobs, progress, backend=backend)
    result = pairwise_result(tasks, primary_metrics(config), runs, summaries, seed_values, groups)
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    write_json(out / AFFINITY_JSON, result)
    write_transfer_heatmap(result, out)
    return result


def pairwise_result(tasks: Sequence[str], primaries: Mapping[str, PrimaryMetric], runs: Sequence[PlannedRun],
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


def write_transfer_heatmap(result: Mapping[str, Any], out: Path) -> None:
    from polytask.evidence.heatmap import save_heatmap

    seeds = len(result["seeds"])
    save_heatmap(result["affinity"], result["tasks"], out / TRANSFER_PNG,
                 f"pairwise transfer, % change of the column task's dev metric beside the row task\n"
                 f"vs alone (> 0: the row task helps), mean of {seeds} seed(s)")


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _mean(values: Sequence[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None
