"""The ``polytask`` command line: train, evaluate, predict, demo, methods."""

from __future__ import annotations

import functools
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer
from rich.console import Console
from rich.table import Table

from polytask.errors import PolytaskError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="polytask: train one shared-encoder model on several tasks at once.")
console = Console()
errors = Console(stderr=True)


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a user's mistake into one line on stderr and exit code 2 (no traceback)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except PolytaskError as error:
            errors.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            errors.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


Overrides = Annotated[Optional[list[str]], typer.Option("--set", help="override a config field: section.field=value")]


@app.command()
@user_errors
def train(
    config: Annotated[Path, typer.Argument(help="YAML experiment config")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="run directory to create (default: output.dir)")] = None,
    set_: Overrides = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing run directory's files")] = False,
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
) -> None:
    """Train a multi-task model from CONFIG into the run directory OUT."""
    from polytask.config import load_config
    from polytask.training.run import train_run

    experiment_config = load_config(config, set_ or [])
    out = out or (Path(experiment_config.output.dir) if experiment_config.output.dir else None)
    if out is None:
        raise PolytaskError("no run directory: pass --out or set output.dir in the config")
    summary = train_run(experiment_config, out, overwrite=overwrite, progress=not quiet, console=errors)
    console.print(summary_table(summary, f"best epoch {summary['best_epoch']} · {summary['train_seconds']:.0f}s"))
    console.print(f"run saved in {out}")


@app.command()
@user_errors
def evaluate(
    run: Annotated[Path, typer.Argument(help="run directory written by 'polytask train'")],
    split: Annotated[str, typer.Option(help="dev or test")] = "test",
    set_: Overrides = None,
) -> None:
    """Evaluate a trained run on its configured dev or test data; writes RUN/eval-SPLIT.json."""
    from polytask.config import apply_overrides, validate_config
    from polytask.data.corpus import load_corpus
    from polytask.evaluation.evaluate import evaluate as evaluate_model
    from polytask.evaluation.validation import check_known_labels
    from polytask.training.run_dir import CONFIG, load_run, write_json

    if split not in ("dev", "test"):
        raise PolytaskError(f"--split must be dev or test, not {split!r}")
    experiment = load_run(run)
    if set_:
        import yaml

        data = apply_overrides(yaml.safe_load((run / CONFIG).read_text()), set_)
        experiment.config = validate_config(data, file=str(run / CONFIG))
    corpus = load_corpus(experiment.config, experiment.tasks)
    examples = corpus.examples(split)
    if not examples:
        raise PolytaskError(f"the run's config has no {split} data")
    check_known_labels(experiment.tasks, examples)
    results = evaluate_model(experiment.model, experiment.tasks, examples, experiment.config.training.eval_batch_size)
    write_json(run / f"eval-{split}.json", {"split": split, "tasks": results})
    console.print(metrics_table(f"{split} metrics", results))


class InputFormat(str, Enum):
    text = "text"
    conll = "conll"
    jsonl = "jsonl"


@app.command()
@user_errors
def predict(
    run: Annotated[Path, typer.Argument(help="run directory written by 'polytask train'")],
    input: Annotated[Path, typer.Option("--input", "-i", help="input file")],
    format: Annotated[InputFormat, typer.Option("--format", "-f", help="text: one sentence per line; conll: token per line; jsonl: {'text'|'tokens'}")] = InputFormat.text,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="JSONL output file (default stdout)")] = None,
) -> None:
    """Predict every task for every input from one encoder pass; writes JSONL."""
    from polytask.serving.predictor import Predictor, read_inputs

    predictor = Predictor.from_run(run)
    inputs = read_inputs(input, format.value)
    records = predictor.predict(inputs)
    lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    if output is None:
        sys.stdout.write(lines)
    else:
        output.write_text(lines, encoding="utf-8")
        errors.print(f"{len(records)} predictions written to {output}")


@app.command()
@user_errors
def demo(
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="keep the runs in this directory")] = None,
    quiet: Annotated[bool, typer.Option(help="no progress bars")] = False,
) -> None:
    """Train the built-in synthetic benchmark jointly and every task alone; print both side by side."""
    from polytask.demo import run_demo

    run_demo(out, console=console, progress=not quiet)


@app.command()
def methods() -> None:
    """List every registered balancing method: kind, what it needs, paper."""
    from polytask.balancing.registry import available_methods

    table = Table(title="balancing methods (balancing.method)")
    for column in ("name", "kind", "needs", "paper"):
        table.add_column(column)
    for info in available_methods().values():
        table.add_row(info.name, info.kind, info.needs, info.paper)
    console.print(table)


def metrics_table(title: str, results: dict[str, dict[str, float]]) -> Table:
    table = Table(title=title)
    for column in ("task", "metric", "value"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for task, metrics in results.items():
        for metric, value in metrics.items():
            table.add_row(task, metric, f"{value:.2f}")
    return table


def summary_table(summary: dict[str, Any], title: str) -> Table:
    table = Table(title=title)
    for column in ("task", "metric", "dev", "test"):
        table.add_column(column, justify="left" if column in ("task", "metric") else "right")
    for task, metrics in summary["tasks"].items():
        for metric, values in metrics.items():
            table.add_row(task, metric, *(f"{values[s]:.2f}" if values[s] is not None else "–" for s in ("dev", "test")))
    return table


if __name__ == "__main__":
    app()
