"""``polytask compare``: every task alone and the multi-task model under several balancing methods, over seeds.

Why: "did multi-task learning help?" needs a single-task baseline trained with the same
budget, several seeds, and statistics that separate a real change from seed noise. The
result gives per task and run the mean ± std of every metric, Δm per method with a 95%
confidence interval (``delta_m``) and a per-task verdict from a paired t-test (``verdict``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from polytask.config import ExperimentConfig, resolve_config
from polytask.dependencies import require
from polytask.errors import PolytaskError
from polytask.evaluation.comparison import row_costs, summarise
from polytask.evaluation.delta_m import PrimaryMetric
from polytask.evidence.runs import (
    PlannedRun,
    plan_runs,
    row_label,
    threads_per_job,
    train_incomplete,
)
from polytask.rendering import comparison_markdown, write_report
from polytask.training.run_dir import SUMMARY, write_json

COMPARE_JSON, COMPARE_MD = "compare.json", "compare.md"


def compare(config: str | Path | ExperimentConfig, methods: Sequence[str] | str, seeds: int = 3,
            out: str | Path = "compare", jobs: int = 1, overrides: Iterable[str] = (), *,
            architectures: Sequence[str] | str | None = None, report: bool = True, console: Console | None = None,
            backend: Any = None) -> dict[str, Any]:
    """Train the single-task baselines and each method over ``seeds`` seeds into ``out``; return the comparison.

    Writes ``out/compare.json``, ``out/compare.md`` and (``report``) ``out/report.html`` with
    its PNG plots. Runs already complete in ``out/runs`` are reused, so an interrupted
    comparison resumes where it stopped. ``methods`` may be a comma-separated string;
    ``console`` receives one line per run (``comparison_table(result)`` renders the result).
    ``architectures`` (names or ``"hard,mmoe"``): one row per sharing architecture and method,
    ``ARCHITECTURE-METHOD``, the config's ``sharing`` section applying to the architecture it names
    (others get their defaults); without it the rows are the methods on the config's architecture.
    ``backend`` (``backends.RayBackend``) trains the runs on a Ray cluster instead of local workers.
    Started by ``torchrun`` it stops with a one-line error (spread the runs with ``jobs`` or ``backend``).
    """
    from polytask.training.distributed import refuse_torchrun

    refuse_torchrun("compare")
    console = console or Console(stderr=True, quiet=True)
    started = time.perf_counter()
    methods = parse_methods(methods)
    architectures = parse_architectures(architectures) if architectures else None
    if not isinstance(seeds, int) or seeds < 1:
        raise PolytaskError(f"--seeds must be at least 1, not {seeds!r}")
    if jobs < 1:
        raise PolytaskError(f"--jobs must be at least 1, not {jobs!r}")
    require("scipy", "polytask compare", "report")  # the statistics and plots come after all the training
    if report:
        require("matplotlib", "polytask compare's report", "report")
    experiment_config = resolve_config(config, overrides)
    if backend is None:  # local workers train here: a device this machine lacks fails before any run starts
        from polytask.training.device import resolve_device

        resolve_device(experiment_config.training.device)
    file = None if isinstance(config, ExperimentConfig) else str(config)
    base = experiment_config.model_dump(mode="json")
    seed_values = [experiment_config.training.seed + i for i in range(seeds)]
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PolytaskError(f"{out} exists and is not a directory")
    runs = plan_runs(base, methods, seed_values, out, threads_per_job(jobs), file, architectures)
    default = experiment_config.sharing.type
    rows = {row_label(architecture, method): (architecture or default, method)
            for architecture in architectures or [None] for method in methods}
    out.mkdir(parents=True, exist_ok=True)

    total = len(runs)
    finished = 0

    def progress(run: PlannedRun, summary: dict[str, Any], status: str) -> None:
        nonlocal finished
        finished += 1
        seconds = summary.get("train_seconds", 0.0)
        console.print(f"[{finished}/{total}] {run.name}: {status} ({seconds:.0f}s of training)", highlight=False)

    pending = sum(not (run.path / SUMMARY).is_file() for run in runs)
    console.print(f"{total} runs ({total - pending} already complete in {out}), {jobs} job(s)", highlight=False)
    summaries = train_incomplete(runs, jobs, progress, backend=backend)
    result = summarise(primary_metrics(experiment_config), runs, summaries, list(rows), seed_values)
    result["costs"] = row_costs(runs, summaries, rows)
    result.update({"config": base, "config_file": file, "jobs": jobs,
                   "wall_seconds": round(time.perf_counter() - started, 1)})
    write_json(out / COMPARE_JSON, result)
    (out / COMPARE_MD).write_text(comparison_markdown(result), encoding="utf-8")
    if report:
        path = write_report(out, result)
        console.print(f"report: {path}", highlight=False)
    return result


def parse_methods(methods: Sequence[str] | str) -> list[str]:
    """Method names from a list or ``"ew,uw"``; unknown or repeated names are a one-line error."""
    from polytask.balancing.registry import available_methods

    names = _names(methods)
    if not names:
        raise PolytaskError("--methods needs at least one balancing method (e.g. ew,uw,pcgrad)")
    return _checked_names(names, available_methods(), "method", "--methods")


def parse_architectures(architectures: Sequence[str] | str) -> list[str]:
    """Sharing architecture names from a list or ``"hard,mmoe"``; unknown or repeated names are a one-line error."""
    from polytask.models.sharing import available_architectures

    return _checked_names(_names(architectures), available_architectures(), "architecture", "--architectures")


def _names(value: Sequence[str] | str) -> list[str]:
    """The non-empty names of a list or a comma-separated string, stripped."""
    names = [name.strip() for name in (value.split(",") if isinstance(value, str) else value)]
    return [name for name in names if name]


def _checked_names(names: list[str], known: Sequence[str], what: str, option: str) -> list[str]:
    """``names`` if each is ``known`` and none repeats; else the one-line error naming ``option``."""
    unknown = [name for name in names if name not in known]
    if unknown:
        raise PolytaskError(f"unknown {what}(s) {', '.join(map(repr, unknown))} in {option}; "
                            f"choose from {', '.join(known)}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise PolytaskError(f"{option} names {', '.join(repeated)} more than once")
    return names


def primary_metrics(config: ExperimentConfig) -> dict[str, PrimaryMetric]:
    """Each task's primary metric and direction, as its task type defines them for model selection."""
    from polytask.training.setup import build_tasks

    return {name: PrimaryMetric(task.primary_metric, task.metric_directions[task.primary_metric])
            for name, task in build_tasks(config).items()}



def load_comparison(out: str | Path) -> dict[str, Any]:
    """``out/compare.json`` as written by ``compare``; a missing or unreadable file is a one-line error."""
    import json

    path = Path(out) / COMPARE_JSON
    if not path.is_file():
        raise PolytaskError(f"{out} holds no {COMPARE_JSON}: run 'polytask compare' into it first")
    try:
        return json.loads(path.read_text())
    except ValueError as error:
        raise PolytaskError(f"{path}: not valid JSON ({error})") from None


def rerender_report(out: str | Path) -> Path:
    """Render ``out/report.html`` and its PNGs again from an existing comparison in ``out``."""
    return write_report(out, load_comparison(out))
