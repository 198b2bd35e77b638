"""What a run directory goes through: trained end to end, resumed from its checkpoint, evaluated on a split."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from polytask.config import ExperimentConfig
from polytask.training.callbacks import Callback
from polytask.training.loggers import build_loggers
from polytask.training.run_dir import RunDirectory
from polytask.training.setup import Experiment, build_experiment
from polytask.training.trainer import Trainer


def train_run(config: ExperimentConfig, out: str | Path | None = None, *, overwrite: bool = False,
              progress: bool = True, console: Console | None = None,
              callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """Train ``config``; return the summary (``train_experiment`` also returns the trained model)."""
    return train_experiment(config, out, overwrite=overwrite, progress=progress, console=console,
                            callbacks=callbacks)[1]


def train_experiment(config: ExperimentConfig, out: str | Path | None = None, *, overwrite: bool = False,
                     progress: bool = True, console: Console | None = None,
                     callbacks: Sequence[Callback] = ()) -> tuple[Experiment, dict[str, Any]]:
    """Train ``config``: the experiment (its model holding the best epoch's weights, in eval mode) and the summary.

    The run directory is created only once the data is read and the trainer built without
    error, so a mistake found there (a bad method option, a task without dev data) leaves no
    half-made run directory behind to block the corrected rerun.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every rank trains its shard of each step; rank 0 alone
    creates and writes the run directory. Restarted by ``torchrun --max-restarts`` after a failure,
    it continues from the run's last checkpoint.
    """
    from polytask.training.device import resolve_device
    from polytask.training.distributed import init_process_group, restarted

    resolve_device(config.training.device)  # a device this machine lacks fails before anything is written
    if out is not None and restarted():
        # torchrun --max-restarts started this process again after a rank failed: continue the run
        from polytask.training.run_dir import CHECKPOINT, load_run

        if (Path(out) / CHECKPOINT).is_file():
            summary = resume_run(out, progress=progress, console=console)
            return load_run(out, device=config.training.device), summary
        overwrite = True  # it failed before its first checkpoint: train it again
    parallel = init_process_group(config.training.device)
    run_dir = RunDirectory(out, overwrite=overwrite) if out is not None and parallel.main else None
    loggers = build_loggers(config, out, main=parallel.main)  # names, options and extras checked before any write
    experiment = build_experiment(config)
    trainer = Trainer(experiment, run_dir, progress=progress, console=console, callbacks=[*callbacks, *loggers],
                      parallel=parallel)
    if run_dir is not None:
        run_dir.create()
        run_dir.save_setup(experiment)
    parallel.barrier()
    if out is not None and not parallel.main:
        trainer.run_dir = RunDirectory.existing(out)
    summary = trainer.fit()
    experiment.model.eval()
    return Experiment(experiment.config, experiment.tasks, experiment.model), summary


def resume_run(path: str | Path, *, progress: bool = True, console: Console | None = None,
               device: str | None = None) -> dict[str, Any]:
    """Continue the interrupted ``polytask train`` run in ``path`` from its last checkpoint, exactly.

    The experiment is rebuilt from the run's ``config.yaml`` (its data read again) and must give
    the same vocabularies and label spaces as when the run started; metrics written after the
    checkpoint are dropped and written again. ``device`` replaces the run's ``training.device``
    (a checkpoint written on one device resumes on another).
    """
    import json

    from polytask.config import read_yaml, validate_config
    from polytask.errors import PolytaskError
    from polytask.training.device import check_device_name, load_tensors
    from polytask.training.distributed import init_process_group
    from polytask.training.run_dir import CHECKPOINT, CONFIG, SUMMARY, read_json, setup_files

    run = Path(path)
    if not (run / CHECKPOINT).is_file():
        if (run / SUMMARY).is_file():
            raise PolytaskError(f"{run} finished training already (summary.json is there); nothing to resume")
        if not (run / CONFIG).is_file():
            raise PolytaskError(f"{run} is not a run directory: {CONFIG} is missing")
        raise PolytaskError(f"{run} has no checkpoint: it stopped before the end of its first epoch "
                            "(or training.checkpoint_every steps); train it again")
    config = validate_config(read_yaml(run / CONFIG, "run config"), file=str(run / CONFIG))
    if device is not None:
        config.training.device = check_device_name(device, field="--device")
    experiment = build_experiment(config)
    for name, rebuilt in setup_files(experiment).items():
        if read_json(run / name) != json.loads(json.dumps(rebuilt)):  # as written to the file
            raise PolytaskError(f"cannot resume {run}: its config now gives a different {name} (the data changed "
                                "since the run started, or the run was not made by polytask train)")
    parallel = init_process_group(config.training.device)
    run_dir = RunDirectory.existing(run)
    trainer = Trainer(experiment, run_dir, progress=progress, console=console, parallel=parallel,
                      callbacks=build_loggers(config, run, main=parallel.main))
    # rank 0 also cuts metrics.jsonl back to the checkpoint; the other ranks only read it
    trainer.load_checkpoint(run_dir.load_checkpoint() if parallel.main else load_tensors(run / CHECKPOINT))
    return trainer.fit()


def evaluate_run(path: str | Path, split: str = "test", overrides: Sequence[str] = (),
                 device: str | None = None) -> dict[str, dict[str, float]]:
    """Score the trained run in ``path`` on its configured ``split`` (dev or test); writes ``eval-SPLIT.json``.

    ``overrides`` change the run's config before its data is read (e.g. another test file:
    ``tasks.ner.data.test=other.txt``); a label the model never saw in training is a DataError
    naming file:line. ``device`` (auto | cpu | cuda | cuda:N | mps) is where the model runs (default CPU).
    Returns task -> metric -> value.
    """
    from polytask.config import load_config
    from polytask.data.corpus import load_corpus
    from polytask.errors import PolytaskError
    from polytask.evaluation.scoring import evaluate
    from polytask.evaluation.validation import check_known_labels
    from polytask.training.run_dir import CONFIG, load_run, write_json

    if split not in ("dev", "test"):
        raise PolytaskError(f"unknown split {split!r}; choose dev or test")
    run = Path(path)
    experiment = load_run(run, device=device)
    if overrides:
        experiment.config = load_config(run / CONFIG, list(overrides))
    corpus = load_corpus(experiment.config, experiment.tasks)
    examples = corpus.examples(split)
    if not examples:
        raise PolytaskError(f"the run's config has no {split} data")
    check_known_labels(experiment.tasks, examples)
    results = evaluate(experiment.model, experiment.tasks, examples, experiment.config.training.eval_batch_size)
    write_json(run / f"eval-{split}.json", {"split": split, "tasks": results})
    return results
