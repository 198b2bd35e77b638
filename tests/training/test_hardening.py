"""Training and run files under bad conditions: non-finite steps, a diverging run, corrupt files, a full disk."""

from __future__ import annotations

import errno
import json
import math
from pathlib import Path

import pytest
import torch

from polytask.config import validate_config
from polytask.errors import PolytaskError
from polytask.training.callbacks import Callback
from polytask.training.run_dir import RunDirectory, load_run
from polytask.training.setup import build_experiment
from polytask.training.trainer import Trainer, TrainingDiverged
from tests.conftest import tiny_config_dict
from tests.test_cli import polytask as run_cli


def config(**training) -> dict:
    data = tiny_config_dict()
    data["training"].update({"epochs": 2, "epoch": {"steps": 5}, **training})
    return data


def poison(experiment, task: str, steps: set[int] | None, trainer_ref: list) -> None:
    """Make ``task``'s loss NaN at ``steps`` (all steps if None): a numerically broken batch."""
    real = experiment.tasks[task].loss

    def loss(*args, **kwargs):
        value = real(*args, **kwargs)
        step = trainer_ref[0].step
        return value * math.nan if steps is None or step in steps else value

    experiment.tasks[task].loss = loss


class Weights(Callback):
    """Every step's shared weights after it ran."""

    def __init__(self):
        self.after: dict[int, torch.Tensor] = {}

    def after_step(self, trainer, batch, record) -> None:
        self.after[trainer.step] = trainer.model.encoder.embed.words.weight.detach().clone()


def test_a_non_finite_step_is_skipped_counted_and_logged_and_training_goes_on(tmp_path: Path) -> None:
    experiment = build_experiment(validate_config(config()))
    run_dir = RunDirectory(tmp_path / "run").create()
    run_dir.save_setup(experiment)
    weights = Weights()
    trainer = Trainer(experiment, run_dir, progress=False, callbacks=[weights])
    poison(experiment, "pos", {3, 4}, [trainer])
    summary = trainer.fit()
    assert summary["skipped_steps"] == 2 and summary["steps"] == 10
    assert torch.equal(weights.after[4], weights.after[3]) and torch.equal(weights.after[5], weights.after[3])
    assert not torch.equal(weights.after[6], weights.after[5])  # training went on
    assert all(torch.isfinite(p).all() for p in experiment.model.parameters())
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r.get("skipped")] == [4, 5]  # steps 3 and 4 (0-based) logged as 1-based


def test_too_many_bad_steps_in_a_row_stop_with_one_line_and_keep_the_last_good_checkpoint(tmp_path: Path) -> None:
    experiment = build_experiment(validate_config(config(max_bad_steps=3, checkpoint_every=2)))
    run_dir = RunDirectory(tmp_path / "run").create()
    run_dir.save_setup(experiment)
    trainer = Trainer(experiment, run_dir, progress=False)
    poison(experiment, "chunk", set(range(5, 100)), [trainer])
    with pytest.raises(TrainingDiverged) as stopped:
        trainer.fit()
    message = str(stopped.value)
    assert "\n" not in message and "3 steps in a row" in message and "training.max_bad_steps=3" in message
    state = run_dir.load_checkpoint()
    assert state["step"] == 6 and all(torch.isfinite(v).all() for v in state["model"].values())


def test_max_bad_steps_null_never_stops(tmp_path: Path) -> None:
    experiment = build_experiment(validate_config(config(max_bad_steps=None)))
    trainer = Trainer(experiment, None, progress=False)
    poison(experiment, "pos", None, [trainer])
    assert trainer.fit()["skipped_steps"] == 10


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    import polytask

    run = tmp_path_factory.mktemp("hardening") / "run"
    polytask.train(validate_config(config(epochs=1)), str(run), progress=False)
    return run


def copy_run(run: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(run, target)
    return target


@pytest.mark.parametrize(("name", "damage", "message"), [
    ("model.safetensors", lambda b: b[: len(b) // 2], "model.safetensors: unreadable weights"),
    ("labels.json", lambda b: b[:-20], "labels.json: not valid JSON"),
    ("vocab.json", lambda b: b"\xff\xfe" + b, "vocab.json: not valid JSON"),
    ("config.yaml", lambda b: b + b"\n  - : ]", "config.yaml"),
])
def test_a_corrupt_run_file_is_one_line_naming_it(trained: Path, tmp_path: Path, name, damage, message) -> None:
    run = copy_run(trained, tmp_path / "run")
    (run / name).write_bytes(damage((run / name).read_bytes()))
    inputs = tmp_path / "in.txt"
    inputs.write_text("Prices rose .\n")
    result = run_cli("predict", str(run), "--input", str(inputs))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_labels_that_no_longer_match_the_weights_are_one_line(trained: Path, tmp_path: Path) -> None:
    run = copy_run(trained, tmp_path / "run")
    labels = json.loads((run / "labels.json").read_text())
    labels["pos"]["labels"]["labels"] = labels["pos"]["labels"]["labels"][:-2]
    (run / "labels.json").write_text(json.dumps(labels))
    with pytest.raises(PolytaskError, match=r"labels.json: the label space of task .pos. no longer fits the weights"):
        load_run(run)


def test_a_truncated_checkpoint_is_one_line_on_resume(tmp_path: Path) -> None:
    from polytask.training.run import resume_run

    experiment = build_experiment(validate_config(config(checkpoint_every=2)))
    run_dir = RunDirectory(tmp_path / "run").create()
    run_dir.save_setup(experiment)
    trainer = Trainer(experiment, run_dir, progress=False)
    for _ in range(2):
        trainer.train_step(trainer.build_step())
    trainer.save_checkpoint(0.0)
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    with pytest.raises(PolytaskError, match="checkpoint.pt: unreadable checkpoint"):
        resume_run(tmp_path / "run", progress=False)


def test_a_failed_checkpoint_write_leaves_the_previous_one_intact(tmp_path: Path, monkeypatch) -> None:
    experiment = build_experiment(validate_config(config()))
    run_dir = RunDirectory(tmp_path / "run").create()
    run_dir.save_setup(experiment)
    trainer = Trainer(experiment, run_dir, progress=False)
    trainer.train_step(trainer.build_step())
    trainer.save_checkpoint(0.0)
    trainer.train_step(trainer.build_step())
    real_save = torch.save

    def disk_full(obj, path, *args, **kwargs):
        Path(path).write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(PolytaskError, match="could not write .*checkpoint.pt \\(No space left on device\\)"):
        trainer.save_checkpoint(0.0)
    monkeypatch.setattr(torch, "save", real_save)
    assert run_dir.load_checkpoint()["step"] == 1  # the previous checkpoint, whole
    assert not (tmp_path / "run" / "checkpoint.pt.partial").exists()


def test_a_task_without_dev_examples_is_a_one_line_error_before_training() -> None:
    from polytask.errors import ConfigError

    data = config()
    data["tasks"]["sentiment"]["data"]["split"] = {"dev": 0.01, "seed": 3}  # 1% of a few lines: an empty dev split
    with pytest.raises(ConfigError) as error:
        Trainer(build_experiment(validate_config(data)), None, progress=False)
    assert "tasks.sentiment.data" in str(error.value) and "no labelled dev examples" in str(error.value)
    assert "\n" not in str(error.value)
