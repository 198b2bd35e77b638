"""Exact resume: a run interrupted at any point and continued with ``polytask resume`` ends bit for bit
as the same run trained without interruption (weights, metrics, summary)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

import polytask
from polytask.balancing.registry import available_methods
from polytask.config import validate_config
from polytask.errors import PolytaskError
from polytask.training.callbacks import Callback
from polytask.training.run import resume_run, train_run
from tests.conftest import tiny_config_dict
from tests.test_cli import polytask as run_cli


class Crash(Callback):
    """Kills training just before step ``at`` (as a power cut would, from the run directory's point of view)."""

    def __init__(self, at: int):
        self.at = at

    def before_step(self, trainer, batch) -> None:
        if trainer.step == self.at:
            raise KeyboardInterrupt(f"simulated crash before step {self.at}")


def stateful_config(**training) -> dict:
    """Dropout, a sampler drawing 2 of 3 tasks, UW's learned log-variances, a linear schedule, early stopping."""
    data = tiny_config_dict()
    data["encoder"].update(dropout=0.3, embedding_dropout=0.2)
    data["sampling"] = {"method": "temperature", "tasks_per_step": 2, "options": {"temperature": 2.0}}
    data["balancing"] = {"method": "uw"}
    # threads pinned: the CLI resume runs in a subprocess, and float sums differ between thread counts
    data["training"].update({"epochs": 3, "epoch": {"steps": 4}, "lr": 0.02, "checkpoint_every": 3, "threads": 1,
                             **training})
    return data


def records(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


def assert_same_run(a: Path, b: Path) -> None:
    first, second = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert first.keys() == second.keys()
    assert all(first[k].equal(second[k]) for k in first)  # bit for bit
    assert records(a) == records(b)
    summaries = [json.loads((run / "summary.json").read_text()) for run in (a, b)]
    for summary in summaries:
        summary.pop("train_seconds")
    assert summaries[0] == summaries[1]
    assert not (b / "checkpoint.pt").exists()  # removed once the run is complete


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("straight") / "run"
    train_run(validate_config(stateful_config()), out, progress=False)
    return out


@pytest.mark.parametrize("crash_at", [5, 8, 11])  # mid-epoch after a step checkpoint; at an epoch's start; late
def test_an_interrupted_run_resumes_exactly(straight: Path, tmp_path: Path, crash_at: int) -> None:
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_run(validate_config(stateful_config()), out, progress=False, callbacks=[Crash(crash_at)])
    assert (out / "checkpoint.pt").is_file() and not (out / "summary.json").exists()
    summary = resume_run(out, progress=False)
    assert summary["steps"] == 12
    assert_same_run(straight, out)


def test_resume_after_the_last_epoch_only_scores_the_test_set(straight: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"

    import polytask.training.trainer as trainer_module

    real = trainer_module.Trainer.evaluate

    def failing(self, split):
        if split == "test":
            raise KeyboardInterrupt("crash while scoring the test set")
        return real(self, split)

    trainer_module.Trainer.evaluate = failing
    try:
        with pytest.raises(KeyboardInterrupt):
            train_run(validate_config(stateful_config()), out, progress=False)
    finally:
        trainer_module.Trainer.evaluate = real
    polytask.resume(str(out), progress=False)
    assert_same_run(straight, out)


def test_early_stopping_state_survives_a_resume(tmp_path: Path) -> None:
    config = stateful_config(early_stopping={"patience": 1}, epochs=6, lr=1e-9)  # nothing improves after epoch 1
    whole = tmp_path / "whole"
    train_run(validate_config(config), whole, progress=False)
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        train_run(validate_config(config), cut, progress=False, callbacks=[Crash(5)])
    resume_run(cut, progress=False)
    assert_same_run(whole, cut)
    assert json.loads((cut / "summary.json").read_text())["steps"] < 24


def test_resume_refuses_what_it_cannot_continue(straight: Path, tmp_path: Path) -> None:
    with pytest.raises(PolytaskError, match="finished training already"):
        resume_run(straight, progress=False)
    early = tmp_path / "early"
    with pytest.raises(KeyboardInterrupt):
        train_run(validate_config(stateful_config()), early, progress=False, callbacks=[Crash(2)])
    with pytest.raises(PolytaskError, match="no checkpoint"):
        resume_run(early, progress=False)
    with pytest.raises(PolytaskError, match="not a run directory"):
        resume_run(tmp_path / "nothing", progress=False)

    changed = tmp_path / "changed"
    with pytest.raises(KeyboardInterrupt):
        train_run(validate_config(stateful_config()), changed, progress=False, callbacks=[Crash(5)])
    config = yaml.safe_load((changed / "config.yaml").read_text())
    config["tasks"]["sentiment"]["data"]["split"]["seed"] = 4  # other training sentences: another vocabulary
    (changed / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(PolytaskError, match=r"config now gives a different (vocab|labels)\.json"):
        resume_run(changed, progress=False)

    result = run_cli("resume", str(straight))
    assert result.returncode == 2 and "finished training already" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_resume(tmp_path: Path, straight: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_run(validate_config(stateful_config()), out, progress=False, callbacks=[Crash(7)])
    result = run_cli("resume", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    assert f"run saved in {out}" in result.stdout
    assert_same_run(straight, out)


@pytest.mark.parametrize("method", list(available_methods()))
def test_every_method_state_round_trips_through_a_safe_checkpoint(method: str, tmp_path: Path) -> None:
    """Checkpoints load with ``weights_only=True`` (no code unpickled) whatever the balancing method."""
    import torch

    from polytask.training.run_dir import RunDirectory
    from polytask.training.setup import build_experiment
    from polytask.training.trainer import Trainer

    data = stateful_config()
    data["balancing"] = {"method": method}
    experiment = build_experiment(validate_config(data))
    run_dir = RunDirectory(tmp_path / "run").create()
    trainer = Trainer(experiment, run_dir, progress=False)
    for step in range(2):
        trainer.train_step(trainer.steps.build(step, trainer.total_steps))
    trainer.save_checkpoint(1.0)
    state = run_dir.load_checkpoint()
    assert state["step"] == 2
    fresh = Trainer(build_experiment(validate_config(data)), run_dir, progress=False)
    fresh.load_checkpoint(state)
    assert json.dumps(fresh.balancer.state_dict(), default=lambda t: t.tolist()) == \
        json.dumps(trainer.balancer.state_dict(), default=lambda t: t.tolist())
    assert all(torch.equal(a, b) for a, b in zip(fresh.model.state_dict().values(), trainer.model.state_dict().values()))
    engine = getattr(trainer.balancer, "engine", None)
    if engine is not None:  # what vjp "auto" chose is state: a resumed process does not probe (and round) anew
        assert engine.strategy is not None and fresh.balancer.engine.strategy == engine.strategy

