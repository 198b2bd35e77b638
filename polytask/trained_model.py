"""A trained multi-task model as the Python API hands it out: what ``polytask.train`` and ``polytask.load`` return.

Why: a Python user wants what ``nlp(text)`` or a Hugging Face ``pipeline`` gives, a model object
to call on raw text, not a summary dictionary and a directory to reload by hand. Predictions go
through the same ``Predictor`` and records as ``polytask predict`` and ``POST /predict``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polytask.errors import PolytaskError

if TYPE_CHECKING:
    from polytask.config import ExperimentConfig
    from polytask.serving.inputs import RawInput
    from polytask.serving.predictor import Predictor
    from polytask.training.setup import Experiment


class TrainedModel:
    """A trained model with its run: ``predict`` every task on raw inputs, ``evaluate`` a split.

    Attributes: ``run_dir`` (the run directory, or None for a model trained without ``out``),
    ``config`` (the resolved ``ExperimentConfig``), ``summary`` (``summary.json``: per task and
    metric the best epoch's ``dev`` and ``test`` values, ``best_epoch``, ``train_seconds``, ...;
    empty for a run still training), ``predictor`` (the loaded ``Predictor``) and ``tasks``.
    """

    def __init__(self, experiment: Experiment, summary: dict[str, Any], run_dir: str | Path | None = None,
                 batch_size: int | None = None):
        from polytask.serving.predictor import Predictor

        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.config: ExperimentConfig = experiment.config
        self.summary = summary
        self.predictor: Predictor = Predictor(experiment, batch_size or experiment.config.training.eval_batch_size)

    @classmethod
    def load(cls, run: str | Path, device: str | None = None) -> TrainedModel:
        """The model of the run directory ``run`` (``polytask train --out RUN``) on ``device`` (default CPU)."""
        from polytask.export.manifest import is_export_dir
        from polytask.training.run_dir import SUMMARY, load_run, read_json

        if is_export_dir(run):
            raise PolytaskError(f"{run} is an ONNX export, not a run directory: predict from it with polytask "
                                "predict or polytask.serving.onnx_predictor.OnnxPredictor.from_dir")
        experiment = load_run(run, device=device)
        summary = read_json(Path(run) / SUMMARY) if (Path(run) / SUMMARY).is_file() else {}
        return cls(experiment, summary, run)

    @property
    def tasks(self) -> list[str]:
        """The task names, in config order."""
        return self.predictor.task_names

    def describe_tasks(self) -> dict[str, dict[str, Any]]:
        """Per task: type, level and label space (as ``labels.json`` holds it)."""
        return self.predictor.describe_tasks()

    def predict(self, inputs: RawInput | Sequence[RawInput]) -> dict[str, Any] | list[dict[str, Any]]:
        """Every task for ``inputs`` from one encoder pass per batch, as ``polytask predict`` writes them.

        A text or a sentence pair ``(text, text_pair)`` gives one record; a list of texts, token
        lists (``[["New", "York"]]``) or pairs gives a list of records in order. A record holds ``tokens`` (and ``text``) and per task in
        ``tasks``: ``labels`` (token tasks; plus ``spans`` with a scheme) or ``label`` (with
        ``probabilities`` for classification). Texts are split like ``--format text``.
        """
        return self.predictor.predict(inputs)

    __call__ = predict

    def evaluate(self, split: str = "test", overrides: Sequence[str] = ()) -> dict[str, dict[str, float]]:
        """Task -> metric -> value on the run's configured ``split`` (dev or test); writes ``eval-SPLIT.json``."""
        from polytask.training.run import evaluate_run

        if self.run_dir is None:
            raise PolytaskError("this model was trained without a run directory: train with out=... to evaluate it")
        device = str(next(self.predictor.experiment.model.parameters()).device)
        return evaluate_run(self.run_dir, split, overrides, device=device)

    def __repr__(self) -> str:
        run_dir = str(self.run_dir) if self.run_dir is not None else None
        return f"TrainedModel(run_dir={run_dir!r}, tasks={self.tasks}, best_epoch={self.summary.get('best_epoch')})"


def trained(experiment: Experiment, summary: dict[str, Any], run_dir: str | Path | None) -> TrainedModel:
    """The model ``training.run.train_experiment`` returned, its summary as ``summary.json`` holds it (JSON values)."""
    return TrainedModel(experiment, json.loads(json.dumps(summary)), run_dir)
