"""The run directory: resolved config, weights (safetensors), vocabularies, labels, metrics, summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from polytask._version import __version__
from polytask.config import read_yaml, validate_config
from polytask.errors import PolytaskError
from polytask.training.setup import Experiment, build_model, build_tasks

if TYPE_CHECKING:
    import torch

VERSION_COMMENT = "# written by polytask "
"""The first line of a run's config.yaml, before the version that wrote it (a YAML comment: readers skip it)."""

CONFIG, MODEL, LABELS, VOCAB, METRICS, SUMMARY, CHECKPOINT = (
    "config.yaml", "model.safetensors", "labels.json", "vocab.json", "metrics.jsonl", "summary.json", "checkpoint.pt")


class RunDirectory:
    """Creates a run directory, refusing to overwrite an existing run unless asked."""

    def __init__(self, path: str | Path, overwrite: bool = False):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise PolytaskError(f"{self.path} exists and is not a directory")
        if self.path.is_dir() and any(self.path.iterdir()) and not overwrite:
            raise PolytaskError(f"{self.path} already holds files; choose another --out or pass --overwrite")

    @classmethod
    def existing(cls, path: str | Path) -> RunDirectory:
        """An existing run directory, to continue writing into (``polytask resume``)."""
        run = cls.__new__(cls)
        run.path = Path(path)
        return run

    def create(self) -> RunDirectory:
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / METRICS).write_text("")
        return self

    def save_setup(self, experiment: Experiment) -> None:
        """The resolved config (a dataset passed in memory kept beside it), the vocabularies and label spaces."""
        from polytask.data.readers.hf import config_dump

        dump = yaml.safe_dump(config_dump(experiment.config, self.path), sort_keys=False)
        (self.path / CONFIG).write_text(f"{VERSION_COMMENT}{__version__}\n{dump}")
        for name, data in setup_files(experiment).items():
            write_json(self.path / name, data)

    def save_model(self, experiment: Experiment, name: str = MODEL) -> None:
        from safetensors.torch import save_file

        state = {k: v.detach().contiguous() for k, v in experiment.model.state_dict().items()}
        _write_atomically(self.path / name, lambda partial: save_file(state, str(partial)))

    def load_weights(self, model: torch.nn.Module, name: str = MODEL) -> None:
        """Load the weights ``save_model`` wrote into ``model``."""
        from safetensors.torch import load_file

        file = self.path / name
        try:
            state = load_file(str(file))
        except Exception as error:  # truncated, foreign or empty: safetensors raises its own errors
            raise PolytaskError(f"{file}: unreadable weights ({_first_line(error)})") from None
        expected = model.state_dict()
        for key, tensor in state.items():
            if key in expected and tuple(expected[key].shape) != tuple(tensor.shape):
                shapes = f"{key} is {list(tensor.shape)} there, {list(expected[key].shape)} now"
                task = key.split(".")[1] if key.startswith("heads.") else None
                if task is not None:
                    raise PolytaskError(f"{self.path / LABELS}: the label space of task {task!r} no longer fits the "
                                        f"weights in {file} ({shapes}); restore labels.json or train again")
                if key.startswith("encoder."):
                    raise PolytaskError(f"{self.path / VOCAB}: the vocabularies no longer fit the weights in {file} "
                                        f"({shapes}); restore vocab.json or train again")
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            raise PolytaskError(f"{file}: the weights do not fit the model that the run's config, vocab.json and "
                                f"labels.json describe ({_first_line(error)})") from None

    def log(self, record: dict[str, Any]) -> None:
        with (self.path / METRICS).open("a") as stream:
            stream.write(json.dumps(record) + "\n")

    def save_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.path / SUMMARY, summary)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """``state`` plus the length of metrics.jsonl so far, replacing the previous checkpoint atomically."""

        import torch

        state = {**state, "metrics_bytes": (self.path / METRICS).stat().st_size}
        _write_atomically(self.path / CHECKPOINT, lambda partial: torch.save(state, partial))

    def load_checkpoint(self) -> dict[str, Any]:
        """The last checkpoint, with metrics.jsonl cut back to what had been written when it was saved."""
        from polytask.training.device import load_tensors

        file = self.path / CHECKPOINT
        try:
            state = load_tensors(file)  # on CPU whatever device wrote it; tensors and plain values
        except Exception as error:  # truncated or not a checkpoint
            raise PolytaskError(f"{file}: unreadable checkpoint ({_first_line(error)}); train the run again") from None
        if not isinstance(state, dict) or "metrics_bytes" not in state:
            raise PolytaskError(f"{file}: not a polytask checkpoint")
        with (self.path / METRICS).open("r+b") as stream:
            stream.truncate(state["metrics_bytes"])
        return state

    def remove_checkpoint(self) -> None:
        (self.path / CHECKPOINT).unlink(missing_ok=True)


def setup_files(experiment: Experiment) -> dict[str, Any]:
    """The JSON files that pin a run's input spaces: the vocabularies and every task's labels."""
    return {
        VOCAB: experiment.model.encoder.featurizer.to_json(),
        LABELS: {name: {"type": task.type_name, "labels": task.labels_to_json()} for name, task in experiment.tasks.items()},
    }


def write_json(path: Path, data: Any) -> None:
    _write_atomically(path, lambda partial: partial.write_text(json.dumps(data, indent=2) + "\n"))


def read_json(path: Path) -> Any:
    """A run file's JSON; a missing, truncated or non-UTF-8 file is a one-line error naming it."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolytaskError(f"{path} is missing") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise PolytaskError(f"{path}: not valid JSON ({_first_line(error)})") from None


def _write_atomically(path: Path, write: Any) -> None:
    """``write(partial)`` then rename over ``path``: a failed write (a full disk) leaves the previous file whole."""
    import os

    partial = path.with_name(path.name + ".partial")
    try:
        write(partial)
        os.replace(partial, path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise PolytaskError(f"could not write {path} ({error.strerror or error}); the previous version, if any, "
                            "is intact") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def load_run(path: str | Path, weights: str = MODEL, device: str | None = None) -> Experiment:
    """Rebuild a trained model from its run directory (no data is read), on ``device`` (default: CPU).

    Returns the ``Experiment``: ``config`` (the run's resolved config), ``tasks`` (name -> TaskType
    with its label space from labels.json), ``model`` (the MultiTaskModel with the run's weights, in
    eval mode) and ``corpus`` None. ``polytask.load`` wraps it in a ``TrainedModel``.
    """
    from polytask.models.encoders import build_encoder
    from polytask.training.device import cpu_device, resolve_device

    path = Path(path)
    if path.is_file():
        raise PolytaskError(f"{path} is a file, not a run directory")
    for name in (CONFIG, LABELS, VOCAB, weights):
        if not (path / name).is_file():
            raise PolytaskError(f"{path} is not a complete run directory: {name} is missing")
    config = validate_config(read_yaml(path / CONFIG, "run config"), file=str(path / CONFIG), check_files=False)
    tasks = build_tasks(config)
    labels = read_json(path / LABELS)
    for name, task in tasks.items():
        entry = labels.get(name) if isinstance(labels, dict) else None
        if not isinstance(entry, dict) or not isinstance(entry.get("labels"), dict):
            raise PolytaskError(f"{path / LABELS}: no valid label space for task {name!r}")
        if entry.get("type") != task.type_name:
            raise PolytaskError(f"{path / LABELS}: task {name!r} is a {entry.get('type')} task there but a "
                                f"{task.type_name} task in {CONFIG}")
        try:
            task.labels_from_json(entry["labels"])
        except (KeyError, TypeError, ValueError) as error:
            detail = f"{error} is missing" if isinstance(error, KeyError) else _first_line(error)
            raise PolytaskError(f"{path / LABELS}: no valid label space for task {name!r} ({detail})") from None
    encoder = build_encoder(config.encoder)
    try:
        encoder.featurizer.load_json(read_json(path / VOCAB))
    except (KeyError, TypeError, ValueError):
        raise PolytaskError(f"{path / VOCAB}: not the vocabularies of a {config.encoder.type} encoder") from None
    encoder.build()
    model = build_model(config, encoder, tasks)
    RunDirectory.existing(path).load_weights(model, weights)
    model.to(resolve_device(device, field="--device") if device else cpu_device())
    model.eval()
    return Experiment(config, tasks, model)
