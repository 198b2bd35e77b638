"""The comparison of single-task and multi-task runs from their summaries: metrics, Δm and verdicts.

Why: "did multi-task learning help?" is answered by pure arithmetic over the runs' results —
mean ± std of every metric per run group, Δm per method with a 95% interval (``delta_m``) and a
per-task paired t-test (``verdict``) — kept apart from the runners so it can be tested on
crafted numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from polytask.evaluation.delta_m import (
    PrimaryMetric,
    confidence_interval,
    delta_m,
    finite_or_none,
)
from polytask.evaluation.verdict import paired_verdict

STL = "stl"
"""The run label of the single-task baselines."""


class RunRecord(Protocol):
    """What the comparison reads of a planned run (``evidence.runs.PlannedRun``)."""

    group: str
    label: str
    seed: int
    path: Path

    @property
    def name(self) -> str: ...


def summarise(primaries: Mapping[str, PrimaryMetric], runs: Sequence[RunRecord],
              summaries: Mapping[str, dict[str, Any]], methods: Sequence[str], seeds: Sequence[int]) -> dict[str, Any]:
    """The comparison from the runs' summaries (see ``compare``); pure, so it can be tested on crafted numbers."""
    by_label: dict[str, dict[int, dict[str, Any]]] = {label: {s: {} for s in seeds} for label in [STL, *methods]}
    directories: dict[str, dict[str, str]] = {}
    train_seconds: dict[str, float] = {}
    for run in runs:
        summary = summaries[run.name]
        by_label[run.label][run.seed].update(summary["tasks"])  # an STL run adds its one task
        directories.setdefault(run.group, {})[str(run.seed)] = str(Path(*run.path.parts[-3:]))
        train_seconds[run.group] = round(train_seconds.get(run.group, 0.0) + summary.get("train_seconds", 0.0), 1)
    labels = [STL, *methods]
    splits = {task: _split(by_label, labels, seeds, task, primary.name) for task, primary in primaries.items()}

    def values(label: str, task: str, metric: str) -> list[float]:
        return [_number(by_label[label][seed].get(task, {}).get(metric, {}).get(splits[task])) for seed in seeds]

    tables: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for task in primaries:
        metrics = sorted({m for label in labels for seed in seeds for m in by_label[label][seed].get(task, {})})
        tables[task] = {label: {m: _mean_std(values(label, task, m)) for m in metrics} for label in labels}

    directions = {task: p.higher_is_better for task, p in primaries.items()}
    delta: dict[str, Any] = {}
    verdicts: dict[str, dict[str, str]] = {}
    tests: dict[str, dict[str, Any]] = {}
    for method in methods:
        per_seed = []
        for i in range(len(seeds)):
            multi = {t: values(method, t, p.name)[i] for t, p in primaries.items()}
            single = {t: values(STL, t, p.name)[i] for t, p in primaries.items()}
            per_seed.append(delta_m(multi, single, directions))
        delta[method] = {**confidence_interval(per_seed).to_json(), "per_seed": [finite_or_none(v) for v in per_seed]}
        tests[method] = {t: paired_verdict(values(method, t, p.name), values(STL, t, p.name),
                                           p.higher_is_better).to_json()
                         for t, p in primaries.items()}
        verdicts[method] = {t: test["verdict"] for t, test in tests[method].items()}
    notes = []
    if len(seeds) == 1:
        notes.append("one seed: Δm's 95% interval is [mean, mean] and every verdict is neutral; "
                     "use --seeds 2 or more for intervals and tests")
    for method, entry in delta.items():
        undefined = [seed for seed, value in zip(seeds, entry["per_seed"]) if value is None]
        if undefined:
            zero = sorted({t for t, p in primaries.items() for v in values(STL, t, p.name) if v == 0 or math.isnan(v)})
            notes.append(f"Δm of {method} is undefined for seed(s) {', '.join(map(str, undefined))}: "
                         f"the single-task {', '.join(zero) or 'metric'} scored 0 or is missing")
    dev_only = sorted(t for t, s in splits.items() if s == "dev")
    if dev_only:
        notes.append(f"no test data for {', '.join(dev_only)}: its dev metrics are compared instead")
    return {
        "version": 1,
        "methods": list(methods),
        "seeds": list(seeds),
        "primary": {t: {"metric": p.name, "higher_is_better": p.higher_is_better, "split": splits[t]}
                    for t, p in primaries.items()},
        "tasks": tables,
        "delta_m": delta,
        "verdicts": verdicts,
        "tests": tests,
        "runs": directories,
        "train_seconds": train_seconds,
        "notes": notes,
    }


def _split(by_label: Mapping[str, Mapping[int, dict]], labels: Sequence[str], seeds: Sequence[int], task: str,
           metric: str) -> str:
    """"test" when every run has a test value for the task's primary metric, else "dev"."""
    present = all(by_label[label][seed].get(task, {}).get(metric, {}).get("test") is not None
                  for label in labels for seed in seeds)
    return "test" if present else "dev"


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _mean_std(values: Sequence[float]) -> dict[str, Any]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": finite_or_none(mean), "std": finite_or_none(std), "values": [finite_or_none(v) for v in values]}




def row_costs(runs: Sequence[RunRecord], summaries: Mapping[str, dict[str, Any]],
              rows: Mapping[str, tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """Per run label: its architecture and method, parameter count and training seconds per step (means over
    seeds), and the time per step as a ratio to hard sharing's row with the same method (None without one).

    ``rows[label] = (architecture, method)``. ``stl``'s parameters are those of all its single-task models
    together (one model per task). A step's seconds are the run's ``train_seconds`` (dev evaluations and
    checkpoints included) over its steps. Summaries without ``parameters`` (older runs) give None.
    """
    per_label: dict[str, dict[int, dict[str, float]]] = {}
    for run in runs:
        summary = summaries[run.name]
        seed = per_label.setdefault(run.label, {}).setdefault(run.seed, {"parameters": 0.0, "seconds": 0.0, "steps": 0.0})
        parameters = summary.get("parameters")
        seed["parameters"] = math.nan if parameters is None else seed["parameters"] + parameters
        seed["seconds"] += float(summary.get("train_seconds", 0.0))
        seed["steps"] += float(summary.get("steps") or 0)

    def mean(values: Sequence[float]) -> float | None:
        return finite_or_none(sum(values) / len(values)) if values else None

    costs: dict[str, dict[str, Any]] = {}
    for label, seeds in per_label.items():
        architecture, method = rows.get(label, (None, None))
        step = [s["seconds"] / s["steps"] for s in seeds.values() if s["steps"]]
        parameters = mean([s["parameters"] for s in seeds.values()])
        costs[label] = {"architecture": architecture, "method": method,
                        "parameters": None if parameters is None else round(parameters),
                        "seconds_per_step": mean(step)}
    hard = {method: label for label, (architecture, method) in rows.items() if architecture == "hard"}
    for label, cost in costs.items():
        reference = costs.get(hard.get(cost["method"], ""), {}).get("seconds_per_step")
        mine = cost["seconds_per_step"]
        cost["time_ratio_to_hard"] = mine / reference if label != STL and mine is not None and reference else None
    return costs
