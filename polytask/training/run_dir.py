"""The run directory: resolved config, weights (safetensors), vocabularies, labels, metrics, summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from polytask.config import validate_config
from polytask.errors import PolytaskError
from polytask.training.setup import Experiment, build_model, build_tasks

if TYPE_CHECKING:
    import torch

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
        (self.path / CONFIG).write_text(experiment.config.to_yaml())
        for name, data in setup_files(experiment).items():
            write_json(self.path / name, data)

    def save_model(self, experiment: Experiment, name: str = MODEL) -> None:
        from safetensors.torch import save_file

        state = {k: v.detach().contiguous() for k, v in experiment.model.state_dict().items()}
        save_file(state, str(self.path / name))

    def load_weights(self, model: torch.nn.Module, name: str = MODEL) -> None:
        """Load the weights ``save_model`` wrote into ``model``."""
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(self.path / name)))

    def log(self, record: dict[str, Any]) -> None:
        with (self.path / METRICS).open("a") as stream:
            stream.write(json.dumps(record) + "\n")

    def save_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.path / SUMMARY, summary)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """``state`` plus the length of metrics.jsonl so far, replacing the previous checkpoint atomically."""
        import os

        import torch

        state = {**state, "metrics_bytes": (self.path / METRICS).stat().st_size}
        partial = self.path / (CHECKPOINT + ".partial")
        torch.save(state, partial)
        os.replace(partial, self.path / CHECKPOINT)  # a crash mid-write leaves the previous checkpoint whole

    def load_checkpoint(self) -> dict[str, Any]:
        """The last checkpoint, with metrics.jsonl cut back to what had been written when it was saved."""
        from polytask.training.device import load_tensors

        state = load_tensors(self.path / CHECKPOINT)  # on CPU whatever device wrote it; tensors and plain values
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
    path.write_text(json.dumps(data, indent=2) + "\n")


def load_run(path: str | Path, weights: str = MODEL, device: str | None = None) -> Experiment:
    """Rebuild a trained model from its run directory (no data is read), on ``device`` (default: CPU)."""
    from polytask.models.encoders import build_encoder
    from polytask.training.device import cpu_device, resolve_device

    path = Path(path)
    for name in (CONFIG, LABELS, VOCAB, weights):
        if not (path / name).is_file():
            raise PolytaskError(f"{path} is not a complete run directory: {name} is missing")
    config = validate_config(yaml.safe_load((path / CONFIG).read_text()), file=str(path / CONFIG), check_files=False)
    tasks = build_tasks(config)
    labels = json.loads((path / LABELS).read_text())
    for name, task in tasks.items():
        task.labels_from_json(labels[name]["labels"])
    encoder = build_encoder(config.encoder)
    encoder.featurizer.load_json(json.loads((path / VOCAB).read_text()))
    encoder.build()
    model = build_model(config, encoder, tasks)
    RunDirectory.existing(path).load_weights(model, weights)
    model.to(resolve_device(device, field="--device") if device else cpu_device())
    model.eval()
    return Experiment(config, tasks, model)
