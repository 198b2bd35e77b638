"""One training run end to end: validate, read data, create the run directory, train."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from polytask.config import ExperimentConfig
from polytask.training.callbacks import Callback
from polytask.training.run_dir import RunDirectory
from polytask.training.setup import build_experiment
from polytask.training.trainer import Trainer


def train_run(config: ExperimentConfig, out: str | Path | None = None, *, overwrite: bool = False,
              progress: bool = True, console: Console | None = None,
              callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """Train ``config``; the run directory is created only after the data has been read without error."""
    run_dir = RunDirectory(out, overwrite=overwrite) if out is not None else None
    experiment = build_experiment(config)
    if run_dir is not None:
        run_dir.create()
        run_dir.save_setup(experiment)
    return Trainer(experiment, run_dir, progress=progress, console=console, callbacks=callbacks).fit()
