"""``polytask compare``: every task alone and the multi-task model under several balancing methods, over seeds.

Why: "did multi-task learning help?" needs a single-task baseline trained with the same
budget, several seeds, and statistics that separate a real change from seed noise. The
result gives per task and run the mean ± std of every metric, Δm per method with a 95%
confidence interval (``delta_m``) and a per-task verdict from a paired t-test (``verdict``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from polytask.config import ExperimentConfig, resolve_config
from polytask.dependencies import require
from polytask.errors import PolytaskError
from polytask.evidence.delta_m import PrimaryMetric, confidence_interval, delta_m, finite_or_none
from polytask.evidence.runs import STL, PlannedRun, plan_runs, threads_per_job, train_incomplete
from polytask.evidence.verdict import paired_verdict
from polytask.training.run_dir import SUMMARY, write_json

COMPARE_JSON, COMPARE_MD = "compare.json", "compare.md"


def compare(config: str | Path | ExperimentConfig, methods: Sequence[str] | str, seeds: int = 3,
            out: str | Path = "compare", jobs: int = 1, overrides: Iterable[str] = (), *,
            report: bool = True, console: Console | None = None, backend: Any = None) -> dict[str, Any]:
    """Train the single-task baselines and each method over ``seeds`` seeds into ``out``; return the comparison.

    Writes ``out/compare.json``, ``out/compare.md`` and (``report``) ``out/report.html`` with
    its PNG plots. Runs already complete in ``out/runs`` are reused, so an interrupted
    comparison resumes where it stopped. ``methods`` may be a comma-separated string;
    ``console`` receives one line per run (``comparison_table(result)`` renders the result).
    ``backend`` (``backends.RayBackend``) trains the runs on a Ray cluster instead of local workers.
    """
    console = console or Console(stderr=True, quiet=True)
    started = time.perf_counter()
    methods = parse_methods(methods)
    if not isinstance(seeds, int) or seeds < 1:
        raise PolytaskError(f"--seeds must be at least 1, not {seeds!r}")
    if jobs < 1:
        raise PolytaskError(f"--jobs must be at least 1, not {jobs!r}")
    require("scipy", "polytask compare", "report")  # the statistics and plots come after all the training
    if report:
        require("matplotlib", "polytask compare's report", "report")
    experiment_config = resolve_config(config, overrides)
    file = None if isinstance(config, ExperimentConfig) else str(config)
    base = experiment_config.model_dump(mode="json")
    seed_values = [experiment_config.training.seed + i for i in range(seeds)]
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PolytaskError(f"{out} exists and is not a directory")
    runs = plan_runs(base, methods, seed_values, out, threads_per_job(jobs), file)
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
    result = summarise(primary_metrics(experiment_config), runs, summaries, methods, seed_values)
    result.update({"config": base, "config_file": file, "jobs": jobs,
                   "wall_seconds": round(time.perf_counter() - started, 1)})
    write_json(out / COMPARE_JSON, result)
    (out / COMPARE_MD).write_text(markdown(result), encoding="utf-8")
    if report:
        from polytask.evidence.report import write_report

        path = write_report(out, result)
        console.print(f"report: {path}", highlight=False)
    return result


def parse_methods(methods: Sequence[str] | str) -> list[str]:
    """Method names from a list or ``"ew,uw"``; unknown or repeated names are a one-line error."""
    from polytask.balancing.registry import available_methods

    names = [m.strip() for m in (methods.split(",") if isinstance(methods, str) else methods)]
    names = [m for m in names if m]
    if not names:
        raise PolytaskError("--methods needs at least one balancing method (e.g. ew,uw,pcgrad)")
    known = available_methods()
    unknown = [m for m in names if m not in known]
    if unknown:
        raise PolytaskError(f"unknown method(s) {', '.join(map(repr, unknown))} in --methods; "
                            f"choose from {', '.join(known)}")
    repeated = sorted({m for m in names if names.count(m) > 1})
    if repeated:
        raise PolytaskError(f"--methods names {', '.join(repeated)} more than once")
    return names


def primary_metrics(config: ExperimentConfig) -> dict[str, PrimaryMetric]:
    """Each task's primary metric and direction, as its task type defines them for model selection."""
    from polytask.training.setup import build_tasks

    return {name: PrimaryMetric(task.primary_metric, task.metric_directions[task.primary_metric])
            for name, task in build_tasks(config).items()}


# --------------------------------------------------------------------------------------
# Statistics over the runs


def summarise(primaries: Mapping[str, PrimaryMetric], runs: Sequence[PlannedRun],
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


# --------------------------------------------------------------------------------------
# Rendering


def run_labels(result: Mapping[str, Any]) -> list[str]:
    return [STL, *result["methods"]]


def format_value(value: float | None, like: float | None = None) -> str:
    """Two decimals, four below 1 (MSE, Pearson); ``like`` picks the precision (a std shown as its mean)."""
    if value is None:
        return "–"
    reference = value if like is None else like
    return f"{value:.2f}" if abs(reference) >= 1 else f"{value:.4f}"


def mean_std_text(cell: Mapping[str, Any]) -> str:
    if cell["mean"] is None:
        return "–"
    return f"{format_value(cell['mean'])} ± {format_value(cell['std'], like=cell['mean'])}"


def delta_m_text(entry: Mapping[str, Any]) -> str:
    if entry["mean"] is None:
        return "–"
    low, high = entry["ci95"]
    return f"{entry['mean']:+.2f}% [{low:+.2f}, {high:+.2f}]"


def setup_line(result: Mapping[str, Any]) -> str:
    seeds = result["seeds"]
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}–{seeds[-1]} ({len(seeds)})"
    splits = sorted({p["split"] for p in result["primary"].values()})
    return f"{seed_text}; {' and '.join(splits)} split; mean ± std over seeds"


_VERDICT_MARKS = {"positive": ("green", "▲"), "negative": ("red", "▼"), "neutral": ("yellow", "·")}


def comparison_table(result: Mapping[str, Any]) -> Table:
    """Each task's primary metric per run (mean ± std), the verdict against single-task, and Δm."""
    table = Table(title=f"single-task (stl) vs multi-task · {setup_line(result)}", box=box.SIMPLE_HEAD,
                  caption="▲ positive, ▼ negative, · neutral: paired t-test over seeds, p < 0.05")
    labels = run_labels(result)
    table.add_column("task")
    table.add_column("metric")
    for label in labels:
        table.add_column(label, justify="right")
    for task, primary in result["primary"].items():
        arrow = "↑" if primary["higher_is_better"] else "↓"
        cells = [mean_std_text(result["tasks"][task][STL][primary["metric"]])]
        for method in result["methods"]:
            style, mark = _VERDICT_MARKS[result["verdicts"][method][task]]
            text = mean_std_text(result["tasks"][task][method][primary["metric"]])
            cells.append(f"[{style}]{text} {mark}[/]")
        table.add_row(task, f"{primary['metric']} {arrow}", *cells)
    table.add_row("Δm", "% [95% CI]", "", *(delta_m_text(result["delta_m"][m]) for m in result["methods"]),
                  end_section=True)
    return table


def markdown(result: Mapping[str, Any]) -> str:
    """compare.md: Δm, verdicts and every metric per task, as Markdown tables."""
    labels = run_labels(result)
    lines = ["# Did multi-task learning help?", "", setup_line(result) + ".", ""]
    lines += ["## Δm (% vs single-task; > 0: multi-task better)", "", "| method | Δm | 95% CI | per seed |",
              "|---|---:|---|---|"]
    for method in result["methods"]:
        entry = result["delta_m"][method]
        interval = "–" if entry["mean"] is None else f"[{entry['ci95'][0]:+.2f}, {entry['ci95'][1]:+.2f}]"
        per_seed = ", ".join("–" if v is None else f"{v:+.2f}" for v in entry["per_seed"])
        mean = "–" if entry["mean"] is None else f"{entry['mean']:+.2f}"
        lines.append(f"| {method} | {mean} | {interval} | {per_seed} |")
    lines += ["", "## Verdicts (paired t-test over seeds on the primary metric, p < 0.05)", "",
              "| task | metric | " + " | ".join(result["methods"]) + " |",
              "|---|---|" + "---|" * len(result["methods"])]
    for task, primary in result["primary"].items():
        cells = []
        for method in result["methods"]:
            test = result["tests"][method][task]
            p = "" if test["p_value"] is None else f", p={test['p_value']:.3g}"
            cells.append(f"{test['verdict']} ({test['mean_difference']:+.3g}{p})")
        arrow = "↑" if primary["higher_is_better"] else "↓"
        lines.append(f"| {task} | {primary['metric']} {arrow} | " + " | ".join(cells) + " |")
    lines += ["", "## Every metric (mean ± std over seeds)", ""]
    for task, runs in result["tasks"].items():
        split = result["primary"][task]["split"]
        lines += [f"### {task} ({split})", "", "| metric | " + " | ".join(labels) + " |",
                  "|---|" + "---:|" * len(labels)]
        for metric in runs[STL]:
            mark = " (primary)" if metric == result["primary"][task]["metric"] else ""
            cells = " | ".join(mean_std_text(runs[label][metric]) for label in labels)
            lines.append(f"| {metric}{mark} | {cells} |")
        lines.append("")
    if result.get("notes"):
        lines += ["## Notes", ""] + [f"- {note}" for note in result["notes"]] + [""]
    return "\n".join(lines)
