"""The runs of a comparison: single-task baselines and one multi-task run per method and seed, resumable.

Why: a fair baseline trains each task alone with everything else held equal (encoder, budget,
early stopping, seeds), and a comparison of many runs must survive an interruption: a run is
complete once its ``summary.json`` exists, so rerunning the same command skips finished runs;
an unfinished run continues from its last checkpoint (``polytask resume``), or starts again if
it stopped before its first one.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from polytask.config import sharing_for_tasks
from polytask.errors import ConfigError, PolytaskError
from polytask.evaluation.comparison import STL
from polytask.training.run_dir import CHECKPOINT, CONFIG, SUMMARY

RUNS_DIR = "runs"


@dataclass(frozen=True)
class PlannedRun:
    """One training run: ``group`` is ``stl-TASK`` or a method name, ``label`` is ``stl`` or the method."""

    group: str
    label: str
    seed: int
    config: dict[str, Any]
    path: Path

    @property
    def name(self) -> str:
        return f"{self.group}/seed-{self.seed}"


def single_task_config(base: dict[str, Any], task: str) -> dict[str, Any]:
    """``base`` with only ``task`` and its head, equal weighting, no task sampling and hard sharing (the
    single-task model is the plain encoder and head); same encoder and budget."""
    data = copy.deepcopy(base)
    data["tasks"] = {task: data["tasks"][task]}
    data["sharing"] = {"type": "hard"}
    data["heads"] = {name: head for name, head in (data.get("heads") or {}).items() if name == task}
    training = data.setdefault("training", {})
    epoch = training.get("epoch") or {}
    if epoch.get("task") not in (None, task):
        training["epoch"] = {**epoch, "task": None}
    data["balancing"] = {"method": "ew"}
    data.pop("sampling", None)
    return data


def method_config(base: dict[str, Any], method: str, kind: str) -> dict[str, Any]:
    """``base`` trained with ``method``.

    The config's ``balancing`` section belongs to the method it names and is kept whole for
    it; another method gets its default options, and gradient aggregators keep the engine
    settings (``mode``, ``update_every``, ``shared_params``).
    """
    data = copy.deepcopy(base)
    balancing = data.get("balancing") or {}
    if balancing.get("method", "ew") != method:
        kept = {"method": method}
        if kind == "gradient aggregator":
            kept.update({k: balancing[k] for k in ("mode", "update_every", "shared_params") if k in balancing})
        data["balancing"] = kept
    return data


def architecture_config(base: dict[str, Any], architecture: str) -> dict[str, Any]:
    """``base`` with sharing architecture ``architecture``: the config's ``sharing`` section if it names that
    architecture (kept whole), else the architecture with its default options."""
    data = copy.deepcopy(base)
    if (data.get("sharing") or {}).get("type", "hard") != architecture:
        data["sharing"] = {"type": architecture}
    return data


def row_label(architecture: str | None, method: str) -> str:
    """A comparison row's name: the method, or ``ARCHITECTURE-METHOD`` when architectures are compared."""
    return method if architecture is None else f"{architecture}-{method}"


def task_subset_config(base: dict[str, Any], tasks: Sequence[str]) -> dict[str, Any]:
    """``base`` trained on ``tasks`` only, everything else as configured (encoder, budget, balancing, sampling).

    Options keyed by task name (static weights, sampling rates) keep the chosen tasks' entries;
    ``tasks_per_step`` above the number of tasks becomes ``all``; an epoch counted over a task
    left out is counted over the largest remaining one. Used for the pair runs of pairwise affinity.
    """
    data = copy.deepcopy(base)
    names = set(data["tasks"])
    data["tasks"] = {task: data["tasks"][task] for task in tasks}
    data["heads"] = {name: head for name, head in (data.get("heads") or {}).items() if name in tasks}
    if data.get("sharing"):
        data["sharing"] = sharing_for_tasks(data["sharing"], tasks)
    training = data.setdefault("training", {})
    epoch = training.get("epoch") or {}
    if epoch.get("task") not in (None, *tasks):
        training["epoch"] = {**epoch, "task": None}
    for section in ("balancing", "sampling"):
        options = (data.get(section) or {}).get("options") or {}
        for key, value in options.items():
            if isinstance(value, dict) and value and set(value) <= names:
                options[key] = {task: v for task, v in value.items() if task in tasks}
    sampling = data.get("sampling") or {}
    if isinstance(sampling.get("tasks_per_step"), int) and sampling["tasks_per_step"] > len(tasks):
        sampling["tasks_per_step"] = "all"
    return data


def plan_runs(base: dict[str, Any], methods: Sequence[str], seeds: Sequence[int], out: Path,
              threads: int, file: str | None = None, architectures: Sequence[str] | None = None) -> list[PlannedRun]:
    """Every run of the comparison, each config validated and its balancer built once (errors before any training).

    With ``architectures``, one row per architecture and method (``row_label``), else one per method.
    """
    from polytask.balancing.registry import available_methods

    known = available_methods()
    groups: list[tuple[str, str, dict[str, Any]]] = []
    for architecture in architectures or [None]:
        shared = base if architecture is None else architecture_config(base, architecture)
        for method in methods:
            label = row_label(architecture, method)
            groups.append((label, label, method_config(shared, method, known[method].kind)))
    groups += [(f"{STL}-{task}", STL, single_task_config(base, task)) for task in base["tasks"]]
    return plan_groups(groups, seeds, out, threads, file)


def plan_groups(groups: Sequence[tuple[str, str, dict[str, Any]]], seeds: Sequence[int], out: Path,
                threads: int, file: str | None = None) -> list[PlannedRun]:
    """One validated run per ``(group, label, config)`` and seed, in ``out/runs/GROUP/seed-S``."""
    runs = []
    for group, label, data in groups:
        for seed in seeds:
            config = copy.deepcopy(data)
            training = config.setdefault("training", {})
            training["seed"] = seed
            if training.get("threads") is None:
                training["threads"] = threads
            config.setdefault("output", {})["dir"] = None
            path = out / RUNS_DIR / group / f"seed-{seed}"
            runs.append(PlannedRun(group, label, seed, _validated(config, label, file), path))
    return runs


def _validated(data: dict[str, Any], label: str, file: str | None) -> dict[str, Any]:
    """The config as the run directory will store it; a method's bad options are caught here, before training."""
    from polytask.balancing.registry import build_balancer
    from polytask.config import validate_config

    config = validate_config(data, file=file)
    balancing = config.balancing
    try:
        build_balancer(balancing.method, list(config.tasks), balancing.options, mode=balancing.mode,
                       update_every=balancing.update_every, shared_params=balancing.shared_params)
    except ConfigError as error:
        raise ConfigError(f"method {label!r}: {error}", file=file) from None
    return config.model_dump(mode="json")


# --------------------------------------------------------------------------------------
# Resuming


def completed_summary(run: PlannedRun) -> dict[str, Any] | None:
    """The run's summary if it finished; a finished run trained with another config is an error."""
    summary_file = run.path / SUMMARY
    if not summary_file.is_file():
        return None
    try:
        summary = json.loads(summary_file.read_text())
        stored = yaml.safe_load((run.path / CONFIG).read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return None  # cut off while writing: train again
    difference = first_difference(_comparable(stored), _comparable(run.config))
    if difference is not None:
        raise PolytaskError(f"{run.path} was trained with a different config ({difference}); "
                            "choose another --out or delete that run directory")
    return summary


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    """A config without what may change between resumed invocations (threads depend on --jobs)."""
    config = copy.deepcopy(config)
    config.get("training", {}).pop("threads", None)
    config.pop("output", None)
    return config


def first_difference(old: Any, new: Any, path: str = "") -> str | None:
    """``"field: old -> new"`` for the first field both values have and where they differ, else None."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [k for k in old if k in new]:  # a field added or removed by a newer polytask is no difference
            found = first_difference(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
            if found:
                return found
        return None
    if old != new:
        return f"{path or 'config'}: {old!r} -> {new!r}"
    return None


# --------------------------------------------------------------------------------------
# Training


def train_planned(config: dict[str, Any], path: str) -> dict[str, Any]:
    """Train one planned run into ``path``, or continue it from its checkpoint; top-level so workers can import it."""
    import torch
    from rich.console import Console

    from polytask.config import validate_config
    from polytask.training.run import resume_run, train_run

    threads = torch.get_num_threads()
    try:
        if (Path(path) / CHECKPOINT).is_file():
            return resume_run(path, progress=False, console=Console(quiet=True))
        return train_run(validate_config(config), path, progress=False, console=Console(quiet=True))
    finally:
        torch.set_num_threads(threads)


def resumable(run: PlannedRun) -> bool:
    """An interrupted run with a checkpoint, trained with the planned config: it continues instead of restarting."""
    if not (run.path / CHECKPOINT).is_file():
        return False
    try:
        stored = yaml.safe_load((run.path / CONFIG).read_text())
    except (OSError, yaml.YAMLError):
        return False
    return first_difference(_comparable(stored), _comparable(run.config)) is None


def train_incomplete(runs: Sequence[PlannedRun], jobs: int = 1,
                     report: Callable[[PlannedRun, dict[str, Any], str], None] | None = None,
                     train: Callable[[dict[str, Any], str], dict[str, Any]] | None = None,
                     backend: Any = None) -> dict[str, dict[str, Any]]:
    """Train every incomplete run (``jobs`` spawn worker processes, or in this process for 1); summaries by run name.

    ``train(config, path)`` trains one run (default ``train_planned``; a top-level function, so
    workers can import it). ``report(run, summary, status)`` is called as each run is found
    complete ("done") or finishes ("trained"). ``backend`` (``backends.RayBackend``) trains the
    incomplete runs on a cluster instead of local processes.
    """
    train = train or train_planned
    summaries: dict[str, dict[str, Any]] = {}
    pending = []
    for run in runs:
        summary = completed_summary(run)
        if summary is None:
            pending.append(run)
        else:
            summaries[run.name] = summary
            if report:
                report(run, summary, "done")
    for run in pending:
        if run.path.exists() and not resumable(run):
            shutil.rmtree(run.path)  # interrupted before its first checkpoint (or another config): start again
        run.path.parent.mkdir(parents=True, exist_ok=True)
    if backend is not None and pending:
        summaries.update(backend.run(train, pending, lambda run, summary: report and report(run, summary, "trained")))
        return summaries
    if jobs <= 1:
        for run in pending:
            summaries[run.name] = train(run.config, str(run.path))
            if report:
                report(run, summaries[run.name], "trained")
        return summaries
    import multiprocessing
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(train, run.config, str(run.path)): run for run in pending}
        remaining = set(futures)
        try:
            while remaining:
                done, remaining = wait(remaining, return_when=FIRST_EXCEPTION)
                for future in done:
                    run = futures[future]
                    try:
                        summaries[run.name] = future.result()  # re-raises a worker's error here
                    except BrokenProcessPool:
                        raise PolytaskError(
                            f"a worker process died while training {run.name} (killed, or out of memory); "
                            "finished runs are kept: rerun the same command to resume") from None
                    if report:
                        report(run, summaries[run.name], "trained")
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return summaries


def available_cpus() -> int:
    """CPUs this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def threads_per_job(jobs: int) -> int:
    return max(1, available_cpus() // max(1, jobs))
