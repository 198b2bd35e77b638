"""The ``polytask`` command line: train, resume, finetune, evaluate, predict, serve, demo, affinity, compare, report, methods."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from polytask._version import __version__
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


def print_version(value: bool) -> None:
    if value:
        console.print(f"polytask {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=print_version, is_eager=True,
                                          help="print polytask's version and exit")] = False,
) -> None:
    """polytask: train one shared-encoder model on several tasks at once."""


MODELS, EVIDENCE, REFERENCE = "Train and use a model", "Evidence", "Reference and demo"  # --help panels

Overrides = Annotated[Optional[list[str]],
                      typer.Option("--set", help="override a config field, section.field=value (repeatable)")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="replace an existing run directory's files")]
Quiet = Annotated[bool, typer.Option("--quiet", help="no progress bar and no per-epoch lines")]
Backend = Annotated[str, typer.Option("--backend", help="local: worker processes (--jobs); ray: a Ray cluster, "
                                                    "each run with its own CPUs (the 'cluster' extra)")]
Address = Annotated[Optional[str], typer.Option("--address", help="--backend ray: the cluster (ray://HOST:10001, auto); "
                                                                  "default: start a local Ray instance")]
GpusPerRun = Annotated[float, typer.Option("--gpus-per-run", help="--backend ray: GPUs each run asks for")]
Device = Annotated[Optional[str], typer.Option("--device", help="auto | cpu | cuda | cuda:N | mps (default: training.device; "
                                                               "evaluate/predict/serve: cpu)")]


def with_device(overrides: Optional[list[str]], device: Optional[str]) -> list[str]:
    """``--set`` overrides plus ``training.device=DEVICE`` when --device is given (its name checked here, as --device)."""
    from polytask.config import check_device_name

    return list(overrides or []) + ([f"training.device={check_device_name(device, '--device')}"] if device else [])


@app.command(rich_help_panel=MODELS)
@user_errors
def train(
    config: Annotated[Path, typer.Argument(help="YAML experiment config")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="run directory to create (default: output.dir)")] = None,
    set_: Overrides = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    device: Device = None,
) -> None:
    """Train a multi-task model from CONFIG into a run directory (--out, or output.dir in the config)."""
    from polytask.config import load_config
    from polytask.rendering import summary_table
    from polytask.training.run import train_run

    experiment_config = load_config(config, with_device(set_, device))
    out = out or (Path(experiment_config.output.dir) if experiment_config.output.dir else None)
    if out is None:
        raise PolytaskError("no run directory: pass --out or set output.dir in the config")
    summary = train_run(experiment_config, out, overwrite=overwrite, progress=not quiet, console=errors)
    console.print(summary_table(summary, f"best epoch {summary['best_epoch']} · {summary['train_seconds']:.0f}s"))
    console.print(f"run saved in {out}")


@app.command(rich_help_panel=MODELS)
@user_errors
def resume(
    run: Annotated[Path, typer.Argument(help="run directory of an interrupted 'polytask train'")],
    quiet: Quiet = False,
    device: Device = None,
) -> None:
    """Continue an interrupted training run from its last checkpoint, exactly as if it had not stopped."""
    from polytask.rendering import summary_table
    from polytask.training.run import resume_run

    summary = resume_run(run, progress=not quiet, console=errors, device=device)
    console.print(summary_table(summary, f"best epoch {summary['best_epoch']} · {summary['train_seconds']:.0f}s"))
    console.print(f"run saved in {run}")


@app.command(rich_help_panel=MODELS)
@user_errors
def finetune(
    run: Annotated[Path, typer.Argument(help="run directory written by 'polytask train'")],
    add_task: Annotated[Path, typer.Option("--add-task", help="YAML with the new task(s): 'tasks:' and optional 'heads:'")],
    out: Annotated[Path, typer.Option("--out", "-o", help="new run directory to create")],
    freeze_encoder: Annotated[bool, typer.Option("--freeze-encoder", help="keep the trained encoder fixed: only the new heads train")] = False,
    replay: Annotated[float, typer.Option(help="share of steps that train an old task (0: only the new tasks train)")] = 0.0,
    set_: Overrides = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    device: Device = None,
) -> None:
    """Add the tasks in --add-task to the trained RUN, train them, and report what the old tasks retain."""
    from polytask.rendering import retention_table, summary_table
    from polytask.training.finetune import finetune_run

    retention = finetune_run(run, add_task, out, freeze_encoder=freeze_encoder, replay=replay, overrides=with_device(set_, device),
                             overwrite=overwrite, progress=not quiet, console=errors)
    console.print(retention_table(retention))
    console.print(summary_table({"tasks": retention["new_tasks"]}, "new tasks"))
    console.print(f"run saved in {out} (retention in {out / 'retention.json'})")


class Split(str, Enum):
    dev = "dev"
    test = "test"


@app.command(rich_help_panel=MODELS)
@user_errors
def evaluate(
    run: Annotated[Path, typer.Argument(help="run directory written by 'polytask train'")],
    split: Annotated[Split, typer.Option(help="the split of the run's configured data to score")] = Split.test,
    set_: Overrides = None,
    device: Device = None,
) -> None:
    """Evaluate a trained run on its configured dev or test data; writes RUN/eval-SPLIT.json."""
    from polytask.rendering import metrics_table
    from polytask.training.run import evaluate_run

    results = evaluate_run(run, split.value, set_ or [], device=device)
    console.print(metrics_table(f"{split.value} metrics", results))


class InputFormat(str, Enum):
    text = "text"
    conll = "conll"
    jsonl = "jsonl"


@app.command(rich_help_panel=MODELS)
@user_errors
def predict(
    run: Annotated[Path, typer.Argument(help="run directory ('polytask train') or ONNX export ('polytask export')")],
    input: Annotated[Path, typer.Option("--input", "-i", help="input file ('-': standard input)")],
    format: Annotated[InputFormat, typer.Option("--format", "-f", help="text: one sentence per line; conll: token per line; jsonl: {'text'|'tokens'} (+ 'text_pair'|'tokens_pair' for a sentence pair)")] = InputFormat.text,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="JSONL output file (default stdout)")] = None,
    device: Device = None,
) -> None:
    """Predict every task for every input from one encoder pass; writes JSONL (an export needs no torch)."""
    from polytask.serving.loading import load_predictor
    from polytask.serving.predictor import read_inputs

    inputs = read_inputs(input, format.value)  # checked against --format before the model loads
    predictor = load_predictor(run, device)
    records = predictor.predict(inputs)
    lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    if output is None:
        sys.stdout.write(lines)
    else:
        output.write_text(lines, encoding="utf-8")
        errors.print(f"{len(records)} predictions written to {output}")


class ExportFormat(str, Enum):
    onnx = "onnx"


@app.command(rich_help_panel=MODELS)
@user_errors
def export(
    run: Annotated[Path, typer.Argument(help="run directory written by 'polytask train'")],
    out: Annotated[Path, typer.Option("--out", "-o", help="export directory to create")],
    format: Annotated[ExportFormat, typer.Option("--format", "-f", help="onnx: one graph for every task")] = ExportFormat.onnx,
    overwrite: Overwrite = False,
) -> None:
    """Export RUN for deployment: one ONNX graph (every task) plus its manifest; predict and serve read it without torch."""
    from polytask.export.onnx_export import export_run

    path = export_run(run, out, format=format.value, overwrite=overwrite)
    console.print(f"exported {run} to {path} (model.onnx, manifest.json)", highlight=False)


@app.command(rich_help_panel=MODELS)
@user_errors
def serve(
    run: Annotated[Path, typer.Argument(help="run directory ('polytask train') or ONNX export ('polytask export')")],
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    max_inputs: Annotated[int, typer.Option(help="most inputs one request may hold (413 above)")] = 256,
    max_chars: Annotated[int, typer.Option(help="most characters per text (422 above)")] = 10_000,
    max_words: Annotated[int, typer.Option(help="most words per input (422 above)")] = 512,
    max_body_bytes: Annotated[int, typer.Option(help="largest request body (413 above)")] = 1 << 20,
    max_batch: Annotated[int, typer.Option(help="most inputs per model batch, gathered across concurrent requests")] = 64,
    max_wait_ms: Annotated[float, typer.Option(help="how long a request waits for others to share its batch")] = 5.0,
    device: Device = None,
) -> None:
    """Serve RUN over HTTP: POST /predict answers every task; requests are batched across clients."""
    from polytask.serving.http import ServingLimits
    from polytask.serving.http import serve as serve_run

    try:
        limits = ServingLimits(max_inputs=max_inputs, max_chars=max_chars, max_words=max_words,
                               max_body_bytes=max_body_bytes, max_batch=max_batch, max_wait_ms=max_wait_ms)
    except ValueError as error:
        raise PolytaskError(str(error)) from None
    serve_run(str(run), host=host, port=port, limits=limits, device=device)


class Lookahead(str, Enum):
    optimizer = "optimizer"
    sgd = "sgd"


class AffinityMeasure(str, Enum):
    lookahead = "lookahead"
    pairs = "pairs"


@app.command(rich_help_panel=EVIDENCE)
@user_errors
def affinity(
    config: Annotated[Path, typer.Argument(help="YAML experiment config")],
    out: Annotated[Path, typer.Option("--out", "-o", help="directory for affinity.json, the heatmaps and the run(s)")],
    measure: Annotated[AffinityMeasure, typer.Option(help="lookahead: TAG affinity during one joint run (Fifty et al. 2021); pairs: train every task alone and every pair, compare dev metrics (Standley et al. 2020)")] = AffinityMeasure.lookahead,
    every: Annotated[int, typer.Option(help="lookahead: measure every K training steps")] = 10,
    groups: Annotated[int, typer.Option(help="recommend a grouping into at most G models")] = 2,
    lookahead: Annotated[Lookahead, typer.Option(help="lookahead step: the training optimizer's update rule (Adam: preconditioned by its second moments) or plain SGD")] = Lookahead.optimizer,
    seeds: Annotated[int, typer.Option(help="pairs: seeds per run, training.seed + 0..N-1")] = 1,
    jobs: Annotated[int, typer.Option(help="pairs: runs trained in parallel worker processes (rerun to resume)")] = 1,
    set_: Overrides = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an earlier measurement in OUT")] = False,
    quiet: Quiet = False,
    device: Device = None,
    backend: Backend = "local",
    address: Address = None,
    gpus_per_run: GpusPerRun = 0.0,
) -> None:
    """Measure which tasks help which (lookahead in one run, or trained pairs); recommend task groups."""
    from polytask.evidence.affinity import affinity as measure_affinity
    from polytask.evidence.backends import build_backend
    from polytask.rendering import grouping_table, matrix_table

    result = measure_affinity(config, out, measure=measure.value, every=every, groups=groups,
                              lookahead=lookahead.value, seeds=seeds, jobs=jobs, overrides=with_device(set_, device),
                              overwrite=overwrite, progress=not quiet, console=errors,
                              backend=build_backend(backend, address, gpus_per_run))
    n = len(result["seeds"]) if measure is AffinityMeasure.pairs else result["measurements"]
    if measure is AffinityMeasure.pairs:
        console.print(matrix_table(result["tasks"], result["affinity"],
                                   f"pairwise transfer (%), mean of {n} seed(s): change of column j's dev "
                                   "metric when trained beside row i, vs alone"))
        console.print(grouping_table(result))
        console.print(f"affinity.json, transfer.png and the runs saved in {out}", highlight=False)
        return
    console.print(matrix_table(result["tasks"], result["affinity"],
                               f"affinity Z(i→j), mean of {n} steps (row i's step helps column j when > 0)"))
    console.print(matrix_table(result["tasks"], result["cosine"], f"gradient cosine, mean of {n} steps"))
    console.print(grouping_table(result))
    console.print(f"affinity.json, affinity.png, cosine.png and the trained run saved in {out}", highlight=False)


@app.command(rich_help_panel=EVIDENCE)
@user_errors
def compare(
    config: Annotated[Path, typer.Argument(help="YAML experiment config")],
    methods: Annotated[str, typer.Option("--methods", "-m", help="comma-separated balancing methods, e.g. ew,uw,pcgrad,upgrad")],
    out: Annotated[Path, typer.Option("--out", "-o", help="comparison directory (rerun to resume)")],
    seeds: Annotated[int, typer.Option(help="seeds per run: training.seed + 0..N-1")] = 3,
    jobs: Annotated[int, typer.Option(help="runs trained in parallel worker processes")] = 1,
    architectures: Annotated[Optional[str], typer.Option(
        "--architectures", "-a", help="comma-separated sharing architectures, e.g. hard,mmoe,ple: one row per "
                                      "architecture and method (ARCHITECTURE-METHOD)")] = None,
    set_: Overrides = None,
    device: Device = None,
    backend: Backend = "local",
    address: Address = None,
    gpus_per_run: GpusPerRun = 0.0,
) -> None:
    """Train every task alone and CONFIG with each method (and architecture) over seeds; print Δm and verdicts."""
    from polytask.evidence.backends import build_backend
    from polytask.evidence.compare import compare as run_compare
    from polytask.rendering import comparison_table

    result = run_compare(config, methods, seeds=seeds, out=out, jobs=jobs, overrides=with_device(set_, device),
                         architectures=architectures, console=errors,
                         backend=build_backend(backend, address, gpus_per_run))
    console.print(comparison_table(result))
    console.print(f"compare.json, compare.md and report.html saved in {out}", highlight=False)


@app.command(rich_help_panel=EVIDENCE)
@user_errors
def report(
    out: Annotated[Path, typer.Argument(help="directory written by 'polytask compare'")],
) -> None:
    """Re-render OUT/report.html (and its PNG plots) from an existing comparison."""
    from polytask.evidence.compare import rerender_report

    console.print(f"report: {rerender_report(out)}", highlight=False)


@app.command(rich_help_panel=REFERENCE)
def methods() -> None:
    """List every registered balancing method: kind, what it needs, paper."""
    from polytask.balancing.registry import available_methods

    table = Table(title="balancing methods (balancing.method)")
    for column in ("name", "kind", "needs", "paper"):
        table.add_column(column)
    for info in available_methods().values():
        table.add_row(info.name, info.kind, info.needs, info.paper)
    console.print(table)


@app.command(rich_help_panel=REFERENCE)
@user_errors
def demo(
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="keep the runs in this directory")] = None,
    quiet: Quiet = False,
) -> None:
    """Train the built-in synthetic benchmark jointly and every task alone; print both side by side."""
    from polytask.demo import run_demo

    run_demo(out, console=console, progress=not quiet)


if __name__ == "__main__":
    app()
