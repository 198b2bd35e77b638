"""Pairwise transfer: train every pair of tasks together and measure what each partner does to each task.

Why: the lookahead affinity of one joint run (``lookahead_affinity.py``) sees how one step on task i's
gradient changes task j's loss; it cannot see harm that builds up over training, such as two
tasks competing for a small encoder's capacity. Standley et al. 2020 (Which Tasks Should Be
Learned Together in Multi-task Learning?, ICML) measure transfer directly instead: train each
task alone and every pair together with the same budget, then

    transfer(i→j) = (-1)^l (M_j({i, j}) − M_j({j})) / |M_j({j})| × 100

the relative change (in %, signed so that > 0 is better) of task j's primary dev metric when
trained beside task i. A larger group is scored by their higher-order approximation: a task's
change in a group is the mean of its changes in the pairs it forms with the other members,
which is exactly the grouping score of ``evaluation.grouping`` with this matrix as the affinity.

Cost: T single-task runs and T(T−1)/2 pair runs per seed, trained in worker processes and
resumed like ``compare`` (a run with a ``summary.json`` is done). Dev metrics decide, never test.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polytask.dependencies import require
from polytask.errors import PolytaskError
from polytask.evaluation.comparison import STL
from polytask.evaluation.grouping import check_task_count
from polytask.evaluation.transfer import PAIR, pair_group, pairwise_result
from polytask.evidence.runs import (
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

TRANSFER_PNG = "transfer.png"


def plan_pair_runs(base: dict[str, Any], seeds: Sequence[int], out: Path, threads: int,
                   file: str | None = None) -> list[PlannedRun]:
    """Every task alone and every pair of tasks, per seed; configs validated before any training."""
    tasks = list(base["tasks"])
    groups = [(f"{STL}-{task}", STL, single_task_config(base, task)) for task in tasks]
    groups += [(pair_group(a, b), PAIR, task_subset_config(base, [a, b])) for a, b in itertools.combinations(tasks, 2)]
    return plan_groups(groups, seeds, out, threads, file)


def run_pairwise(config: ExperimentConfig, out: str | Path, *, seeds: int = 1, jobs: int = 1, groups: int = 2,
                 file: str | None = None, overwrite: bool = False, console: Console | None = None,
                 backend: Any = None) -> dict[str, Any]:
    """Train every task alone and every pair into ``out/runs``; write and return ``out/affinity.json``.

    Rerunning the same command reuses finished runs (an interrupted measurement resumes); a
    lookahead measurement already in ``out`` is replaced only with ``overwrite``.
    """
    from rich.console import Console

    from polytask.evidence.affinity_files import AFFINITY_JSON, check_affinity_out
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


def write_transfer_heatmap(result: Mapping[str, Any], out: Path) -> None:
    from polytask.rendering import save_heatmap

    seeds = len(result["seeds"])
    save_heatmap(result["affinity"], result["tasks"], out / TRANSFER_PNG,
                 f"pairwise transfer, % change of the column task's dev metric beside the row task\n"
                 f"vs alone (> 0: the row task helps), mean of {seeds} seed(s)")


