"""Adding tasks to a trained multi-task model, and measuring what the old tasks keep.

``polytask finetune RUN --add-task TASK.yaml --out NEW`` loads the run, scores every old task
on its dev data, adds a head per new task (the encoder and its vocabulary stay as trained:
new words map to the unknown word), trains, scores the old tasks again and writes a complete
run directory plus ``retention.json``. Forgetting of the old tasks while a new one is learned
is catastrophic interference (McCloskey & Cohen 1989); the levers here are freezing the encoder
and replaying old tasks' data in a share of the steps (rehearsal; Robins 1995).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from polytask.config import (
    ExperimentConfig,
    SharingConfig,
    read_yaml,
    set_fields,
    sharing_with_added_tasks,
    validate_config,
)
from polytask.errors import ConfigError, PolytaskError
from polytask.tasks.base import TaskType

if TYPE_CHECKING:
    from polytask.data.corpus import MultiTaskCorpus
    from polytask.models.multitask import MultiTaskModel
    from polytask.training.setup import Experiment

RETENTION = "retention.json"
TASK_FILE_KEYS = ("tasks", "heads")


def load_task_addition(path: str | Path, run_config: ExperimentConfig) -> ExperimentConfig:
    """Read TASK.yaml: ``tasks:`` (and optional ``heads:``) exactly as in a config, for new task names.

    Validated with the config's own strict models (paths expanded, files checked), so an error
    names the task file and the field; the returned config holds only the new tasks and heads.
    """
    file = str(path)
    data = read_yaml(path, "task file")
    if not isinstance(data, Mapping) or "tasks" not in data:
        raise ConfigError("a task file is a mapping with a 'tasks' section (and optionally 'heads')", file=file)
    unknown = sorted(set(data) - set(TASK_FILE_KEYS))
    if unknown:
        raise ConfigError("unknown field: a task file holds only 'tasks' and 'heads'", field=str(unknown[0]), file=file)
    addition = validate_config({key: data[key] for key in TASK_FILE_KEYS if data.get(key) is not None}, file=file)
    for name in addition.tasks:
        if name in run_config.tasks:
            raise ConfigError(f"the trained model already has a task {name!r}; choose another name",
                              field=f"tasks.{name}", file=file)
    return addition


def finetune_config(run_config: ExperimentConfig, addition: ExperimentConfig, *, freeze_encoder: bool = False,
                    overrides: Sequence[str] = (), file: str | None = None) -> ExperimentConfig:
    """The run's config with the new tasks and heads added, ``--freeze-encoder`` and ``--set`` applied.

    The old run's ``training``, ``encoder`` and ``balancing`` sections carry over; ``sampling`` and
    ``training.epoch`` do not (an epoch becomes one pass over the largest new task, see
    ``finalise_schedule``) unless ``--set`` gives them.
    """
    data = run_config.model_dump(mode="json")
    data["tasks"].update(addition.model_dump(mode="json")["tasks"])
    sharing = sharing_with_added_tasks(data.get("sharing"), addition.tasks)  # each new task: its own gate, tower, group
    data["sharing"] = copy.deepcopy(sharing)
    data["heads"].update({name: head.model_dump(mode="json") for name, head in addition.heads.items()})
    data["sampling"] = {}
    data["training"]["epoch"] = {}
    if freeze_encoder:
        data["training"].update(freeze_encoder=True, unfreeze=None)
    config = validate_config(data, file=file, overrides=set_fields(data, overrides))
    if config.encoder != run_config.encoder:
        raise ConfigError("the trained encoder is kept as it is: drop the encoder overrides", field="--set")
    if config.sharing.model_dump(mode="json") != SharingConfig.model_validate(sharing).model_dump(mode="json"):
        raise ConfigError("the trained sharing architecture is kept as it is (new tasks get their own gate or "
                          "tower): drop the sharing overrides", field="--set")
    for name, task in run_config.tasks.items():
        now = config.tasks[name]
        if (now.type, now.scheme, now.options) != (task.type, task.scheme, task.options) or \
                config.head(name) != run_config.head(name):
            raise ConfigError(f"the trained task {name!r} and its head are kept as they are: drop their overrides "
                              "(its data may change)", field="--set")
    return config


def check_replay(replay: float, overrides: Sequence[str]) -> None:
    """``--replay`` is a share in [0, 1) and, when used, decides the sampling alone."""
    if not 0.0 <= replay < 1.0:
        raise ConfigError(f"must be at least 0 and below 1 (the share of steps that replay old tasks), not {replay}",
                          field="--replay")
    if replay > 0 and any(text.strip().startswith("sampling.") for text in overrides):
        raise ConfigError("--replay decides the sampling (one task per step, weighted); drop the sampling overrides",
                          field="--set")


def replay_weights(old_sizes: Mapping[str, int], new_sizes: Mapping[str, int], replay: float) -> dict[str, float]:
    """Per-task draw probabilities: old tasks share ``replay``, new tasks ``1 - replay``, each by size."""
    weights: dict[str, float] = {}
    for sizes, share in ((old_sizes, replay), (new_sizes, 1.0 - replay)):
        total = sum(sizes.values())
        weights.update({task: share * n / total for task, n in sizes.items()})
    return weights


def finalise_schedule(config: ExperimentConfig, sizes: Mapping[str, int], new: Sequence[str], replay: float) -> None:
    """Fix what needs the data: the epoch (one pass over the largest new task) and the replay sampler."""
    from polytask.config import SamplingConfig

    batch = {t: config.tasks[t].batch_size or config.training.batch_size for t in new}
    if config.training.epoch.steps is None and config.training.epoch.task is None:
        config.training.epoch.task = max(new, key=lambda t: sizes[t] / batch[t])
    if replay > 0:
        old = {t: n for t, n in sizes.items() if t not in new}
        weights = replay_weights(old, {t: sizes[t] for t in new}, replay)
        config.sampling = SamplingConfig(method="weighted", tasks_per_step=1, options={"weights": weights})


def extended_model(trained: Experiment, config: ExperimentConfig, tasks: Mapping[str, TaskType],
                   new: Sequence[str]) -> MultiTaskModel:
    """The trained model with its weights, plus a new head (and own adapter, gate or tower, if any) per new task."""
    import torch

    from polytask.training.setup import build_model

    torch.manual_seed(config.training.seed)
    model = build_model(config, trained.model.encoder, tasks)
    missing, unexpected = model.load_state_dict(trained.model.state_dict(), strict=False)
    fresh = {name for t in new for name in model.task_parameters(t)}  # adapters, gates, towers of the new tasks
    if unexpected or any(not key.startswith(tuple(f"heads.{t}." for t in new)) and key not in fresh for key in missing):
        raise PolytaskError(f"the trained weights do not fit the model (missing {missing}, unexpected {unexpected})")
    return model


def evaluate_groups(model: MultiTaskModel, groups: Sequence[Mapping[str, TaskType]], corpus: MultiTaskCorpus,
                    split: str, batch_size: int) -> dict[str, dict[str, float]]:
    """Metrics of each group of tasks on the ``split`` examples labelled for that group.

    Why: the old tasks are scored on exactly the same examples, batched alike, before and after.
    """
    from polytask.evaluation.scoring import evaluate

    metrics: dict[str, dict[str, float]] = {}
    for tasks in groups:
        examples = [e for e in corpus.examples(split) if any(t in e.labels for t in tasks)]
        metrics.update(evaluate(model, tasks, examples, batch_size))
    return metrics


def retention_record(before: Mapping[str, Mapping[str, float]], after: Mapping[str, Mapping[str, float]],
                     tasks: Mapping[str, TaskType]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{TASK: {METRIC: {"before", "after", "change", "higher_is_better"}}}`` for the old tasks."""
    record: dict[str, dict[str, dict[str, Any]]] = {}
    for task, metrics in before.items():
        record[task] = {}
        for metric, value in metrics.items():
            later = after.get(task, {}).get(metric)
            record[task][metric] = {"before": value, "after": later,
                                    "change": None if later is None else later - value,
                                    "higher_is_better": tasks[task].metric_directions.get(metric, True)}
    return record


def finetune_run(run: str | Path, add_task: str | Path, out: str | Path, *, freeze_encoder: bool = False,
                 replay: float = 0.0, overrides: Sequence[str] = (), overwrite: bool = False,
                 progress: bool = True, console: Console | None = None) -> dict[str, Any]:
    """Add the tasks of ``add_task`` to the trained run ``run``, train, and write the run ``out``.

    ``replay = 0``: only the new tasks train; the old heads are frozen (they get no loss, and
    this keeps them bit-for-bit as trained). ``replay = f > 0``: every step draws one task, an
    old one with probability f (split among the old tasks by training-set size), a new one with
    probability 1 - f; old heads train on their replayed steps. Returns the retention record
    also written to ``out/retention.json``.

    Under ``torchrun`` it trains data-parallel as ``polytask train`` does (each rank its shard of
    every step, rank 0 alone writes ``out``); restarted by ``torchrun --max-restarts`` after a
    failure, it starts again from the trained run.
    """
    from polytask.data.corpus import load_corpus
    from polytask.training.device import resolve_device
    from polytask.training.distributed import init_process_group, restarted
    from polytask.training.loggers import build_loggers
    from polytask.training.run_dir import CONFIG, RunDirectory, load_run, write_json
    from polytask.training.setup import Experiment, build_tasks
    from polytask.training.trainer import Trainer, build_summary

    run, out = Path(run), Path(out)
    if out.resolve() == run.resolve():
        raise PolytaskError("--out must be a new run directory, not the trained run itself")
    check_replay(replay, overrides)
    overwrite = overwrite or restarted()  # torchrun --max-restarts: the failed attempt's files are replaced
    trained = load_run(run)
    addition = load_task_addition(add_task, trained.config)
    config = finetune_config(trained.config, addition, freeze_encoder=freeze_encoder, overrides=overrides,
                             file=f"{run / CONFIG} + {add_task}")
    resolve_device(config.training.device)  # a device this machine lacks fails before anything is written
    parallel = init_process_group(config.training.device)
    run_dir = RunDirectory(out, overwrite=overwrite) if parallel.main else None
    new, old = list(addition.tasks), list(trained.config.tasks)
    tasks: dict[str, TaskType] = dict(trained.tasks)
    tasks.update({name: task for name, task in build_tasks(config).items() if name in new})
    corpus = load_corpus(config, tasks)
    for name in new:
        tasks[name].fit_labels(corpus.task_examples(name, "train"))
    finalise_schedule(config, {t: len(corpus.task_examples(t, "train")) for t in tasks}, new, replay)

    model = extended_model(trained, config, tasks, new)
    model.to(resolve_device(config.training.device, local_rank=parallel.local_rank))  # evaluated there before training
    groups = [{t: tasks[t] for t in old}, {t: tasks[t] for t in new}]
    before = evaluate_groups(model, groups[:1], corpus, "dev", config.training.eval_batch_size)

    if replay == 0:  # old heads (and old tasks' own adapters, if any) stay as trained
        for task in old:
            for parameter in model.task_parameters(task).values():
                parameter.requires_grad_(False)
    training_tasks = {t: tasks[t] for t in (old + new if replay > 0 else new)}
    loggers = build_loggers(config, out, main=parallel.main)
    trainer = Trainer(Experiment(config, training_tasks, model, corpus), run_dir, progress=progress, console=console,
                      callbacks=loggers, parallel=parallel)
    if run_dir is not None:
        run_dir.create()  # after the trainer is built: a mistake found there leaves no half-made run directory
        run_dir.save_setup(Experiment(config, tasks, model))
    parallel.barrier()
    if run_dir is None:
        trainer.run_dir = RunDirectory.existing(out)  # the other ranks read it; only rank 0 writes
    summary = trainer.fit()

    dev, test = (evaluate_groups(model, groups, corpus, split, config.training.eval_batch_size)
                 for split in ("dev", "test"))
    retention = {
        "source_run": str(run.resolve()),
        "split": "dev",
        "tasks": retention_record(before, dev, tasks),
        "new_tasks": {t: {m: {"dev": v, "test": test.get(t, {}).get(m)} for m, v in dev.get(t, {}).items()}
                      for t in new},
        "freeze_encoder": config.training.freeze_encoder,
        "unfreeze": config.training.unfreeze.model_dump() if config.training.unfreeze else None,
        "replay": replay,
        "best_epoch": summary["best_epoch"],
        "train_seconds": summary["train_seconds"],
    }
    if parallel.main:
        run_dir.save_summary(build_summary(dev, test, summary["best_epoch"], summary["train_seconds"],
                                           summary["steps"], summary["examples_seen"]))
        write_json(out / RETENTION, retention)
    parallel.barrier()
    return retention
