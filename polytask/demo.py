"""The built-in demo: one multi-task model against every task trained alone, on the synthetic benchmark.

Why: a newcomer should see in one run, with no data files, both what multi-task learning buys
(small tasks built on the same hidden structure borrow from each other) and what it costs (a
task that shares nothing with the others loses encoder capacity to them).

"Same budget" means: every run uses the same encoder, seed, batch size per task and number of
optimisation steps (``training.epoch.steps`` × ``training.epochs``, with dev evaluation and
best-epoch selection after every ``epoch.steps`` steps and no early stopping). A step draws one
micro-batch from every task it trains, so each task sees exactly as many training examples
alone as it does inside the multi-task model; only the shared encoder sees more.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.table import Table

from polytask.config import ExperimentConfig, validate_config
from polytask.errors import ConfigError, PolytaskError

if TYPE_CHECKING:
    from polytask.training.run_dir import RunDirectory

MULTI_TASK_RUN = "multi-task"

_WORLD = {"seed": 0, "classes": 8, "words_per_class": 40, "ambiguity": 0.3, "dev_size": 200, "test_size": 400}

DEMO_CONFIG: dict[str, Any] = {
    "tasks": {
        # Related tasks: every label follows the hidden word classes (relatedness 1), each task
        # has its own sentences and its own amount of them.
        "tag": {"type": "token_classification",
                "data": {"format": "synthetic", "column": "tag",
                         "synthetic": {**_WORLD, "corpus": "tag", "size": 120}}},
        "chunk": {"type": "token_classification", "scheme": "iob2",
                  "data": {"format": "synthetic", "column": "chunk",
                           "synthetic": {**_WORLD, "corpus": "chunk", "size": 80}}},
        "mood": {"type": "sequence_classification",
                 "data": {"format": "synthetic", "column": "mood",
                          "synthetic": {**_WORLD, "corpus": "mood", "size": 400}}},
        # Unnormalised targets in [0, 10]: its squared-error loss starts an order of magnitude
        # above the cross-entropies.
        "score": {"type": "regression", "options": {"normalize": False},
                  "data": {"format": "synthetic", "column": "score",
                           "synthetic": {**_WORLD, "corpus": "score", "size": 300}}},
        # The unrelated task: same words and sentences, labels from an independent hash structure.
        "unrelated": {"type": "token_classification",
                      "data": {"format": "synthetic", "column": "tag",
                               "synthetic": {**_WORLD, "corpus": "unrelated", "size": 1000, "relatedness": 0.0}}},
    },
    "encoder": {"type": "cnn", "word_dim": 32, "chars": False, "hidden": 64, "layers": 2, "kernel_size": 3,
                "dropout": 0.2, "embedding_dropout": 0.1},
    "heads": {"mood": {"pooling": "max"}, "score": {"pooling": "mean"}},
    "training": {"lr": 1e-2, "epochs": 10, "epoch": {"steps": 150}, "batch_size": 16, "eval_batch_size": 256,
                 "seed": 1, "early_stopping": {"patience": None}, "log_every": 25},
}
"""The built-in benchmark, validated by ``polytask.config.validate_config``."""


def demo_config(seed: int | None = None, steps: int | None = None, epochs: int | None = None) -> dict[str, Any]:
    """A copy of ``DEMO_CONFIG``; ``seed`` reseeds both the data world and training, ``steps``/``epochs`` the budget."""
    config = copy.deepcopy(DEMO_CONFIG)
    if seed is not None:
        config["training"]["seed"] = seed
        for task in config["tasks"].values():
            task["data"]["synthetic"]["seed"] = seed
    if steps is not None:
        config["training"]["epoch"]["steps"] = steps
    if epochs is not None:
        config["training"]["epochs"] = epochs
    return config


def single_task_config(config: dict[str, Any], task: str) -> dict[str, Any]:
    """The same experiment with only ``task``: same encoder, data, seed and step budget (and hard sharing)."""
    single = copy.deepcopy(config)
    single["tasks"] = {task: single["tasks"][task]}
    single.pop("sharing", None)
    single["heads"] = {name: head for name, head in single.get("heads", {}).items() if name == task}
    return single


def run_demo(out: Path | None = None, console: Console | None = None, progress: bool = True,
             config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``config`` (default ``DEMO_CONFIG``) jointly and each task alone; print and return the comparison.

    With ``out``, every run is kept in ``out/<run>`` (``multi-task``, ``single-<task>``) and the
    table in ``out/demo.json``.
    """
    from polytask.training.run_dir import write_json

    console = console or Console()
    config = copy.deepcopy(config if config is not None else DEMO_CONFIG)
    runs = {MULTI_TASK_RUN: config} | {f"single-{task}": single_task_config(config, task) for task in config["tasks"]}
    validated = {name: validate_config(data) for name, data in runs.items()}
    if validated[MULTI_TASK_RUN].training.epoch.steps is None:
        raise ConfigError("the demo needs a fixed number of steps per epoch, so every run gets the same budget",
                          field="training.epoch.steps")
    directories = _run_directories(out, list(runs))
    training_console = Console(stderr=True, quiet=not progress)
    started = time.perf_counter()
    summaries = {}
    with _one_thread():
        for name, experiment_config in validated.items():
            tasks = ", ".join(experiment_config.tasks)
            steps = _total_steps(experiment_config)
            console.print(f"[bold]{name}[/]: training {tasks} for {steps} steps", highlight=False)
            summaries[name] = _train(experiment_config, directories.get(name), progress, training_console)
    result = compare_runs(validated[MULTI_TASK_RUN], summaries)
    result["seconds"] = round(time.perf_counter() - started, 1)
    console.print(comparison_table(result))
    console.print(explanation(result), highlight=False)
    if out is not None:
        write_json(Path(out) / "demo.json", result)
        console.print(f"runs and demo.json saved in {out}", highlight=False)
    return result


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one thread for the demo's small model.

    Why: it gains little from a second thread, and on a shared 2-core machine a second thread
    spinning while another process holds the core slowed training more than tenfold.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _total_steps(config: ExperimentConfig) -> int:
    steps = config.training.epochs * (config.training.epoch.steps or 0)
    return min(steps, config.training.max_steps) if config.training.max_steps else steps


def _run_directories(out: Path | None, names: list[str]) -> dict[str, RunDirectory]:
    """Check every run directory up front, so a clash is reported before any training."""
    if out is None:
        return {}
    from polytask.training.run_dir import RunDirectory

    out = Path(out)
    if (out / "demo.json").exists():
        raise PolytaskError(f"{out} already holds a demo; choose another --out")
    return {name: RunDirectory(out / name) for name in names}


def _train(config: ExperimentConfig, run_dir: RunDirectory | None, progress: bool, console: Console) -> dict[str, Any]:
    from polytask.training.setup import build_experiment
    from polytask.training.trainer import Trainer

    experiment = build_experiment(config)
    if run_dir is not None:
        run_dir.create()
        run_dir.save_setup(experiment)
    return Trainer(experiment, run_dir, progress=progress, console=console).fit()


# --------------------------------------------------------------------------------------
# The comparison


def compare_runs(config: ExperimentConfig, summaries: dict[str, dict[str, Any]], split: str = "test") -> dict[str, Any]:
    """Per task: primary metric alone vs jointly, Δ signed so positive means multi-task is better."""
    from polytask.training.setup import build_tasks

    tasks = build_tasks(config)
    rows = []
    for name, task in tasks.items():
        metric = task.primary_metric
        single = summaries[f"single-{name}"]["tasks"][name][metric][split]
        multi = summaries[MULTI_TASK_RUN]["tasks"][name][metric][split]
        sign = 1.0 if task.metric_directions[metric] else -1.0
        delta = sign * (multi - single)
        relative = 100.0 * delta / abs(single) if single else 0.0
        relatedness = (config.tasks[name].data.synthetic or {}).get("relatedness", 1.0)
        rows.append({"task": name, "relatedness": relatedness, "metric": metric, "higher_is_better": sign > 0,
                     "single_task": single, "multi_task": multi, "delta": delta, "relative_delta": relative,
                     "verdict": verdict(relative)})
    return {"split": split, "rows": rows,
            "steps": {run: summary["steps"] for run, summary in summaries.items()},
            "examples_seen": {run: summary.get("examples_seen", {}) for run, summary in summaries.items()},
            "train_seconds": {run: summary["train_seconds"] for run, summary in summaries.items()}}


def verdict(relative_delta: float, tolerance: float = 1.0) -> str:
    """``gain``/``loss`` when multi-task changes the metric by more than ``tolerance`` percent, else ``same``."""
    if relative_delta > tolerance:
        return "gain"
    if relative_delta < -tolerance:
        return "loss"
    return "same"


def comparison_table(result: dict[str, Any]) -> Table:
    """The side-by-side table; fits an 80-column terminal."""
    table = Table(title=f"single-task vs multi-task ({result['split']} split; Δ > 0: multi-task is better)",
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for column in ("task", "related", "metric", "single-task", "multi-task", "Δ", "verdict"):
        table.add_column(column, justify="left" if column in ("task", "metric", "verdict") else "right")
    styles = {"gain": "green", "loss": "red", "same": "yellow"}
    for row in result["rows"]:
        arrow = "↑" if row["higher_is_better"] else "↓"
        table.add_row(row["task"], f"{row['relatedness']:g}", f"{row['metric']} {arrow}", f"{row['single_task']:.2f}",
                      f"{row['multi_task']:.2f}", f"{row['delta']:+.2f}",
                      f"[{styles[row['verdict']]}]{row['verdict']} {row['relative_delta']:+.1f}%[/]")
    return table


def explanation(result: dict[str, Any]) -> str:
    """One sentence on what the table shows, true to this run's numbers."""
    related = [r for r in result["rows"] if r["relatedness"] > 0]
    unrelated = [r for r in result["rows"] if r["relatedness"] == 0]
    gained = [r["task"] for r in related if r["verdict"] == "gain"]
    lost = [r["task"] for r in unrelated if r["verdict"] == "loss"]
    parts = []
    if gained:
        parts.append(f"{_names(gained)} {_verb(gained, 'shares', 'share')} the hidden word classes with the other "
                     f"tasks and {_verb(gained, 'gains', 'gain')} from their data")
    if lost:
        parts.append(f"{_names(lost)} {_verb(lost, 'shares', 'share')} nothing with them and "
                     f"{_verb(lost, 'loses', 'lose')}, because the shared encoder (word embeddings included) is "
                     "pulled towards the others' structure")
    if not parts:
        return "In this run multi-task training neither clearly helped the related tasks nor hurt the unrelated one."
    text = "; ".join(parts) + " (every run: same encoder, seed and steps)."
    return text[0].upper() + text[1:]


def _names(names: list[str]) -> str:
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return ("task " if len(names) == 1 else "tasks ") + listed


def _verb(names: list[str], singular: str, plural: str) -> str:
    return singular if len(names) == 1 else plural
