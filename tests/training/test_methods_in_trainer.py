"""Every registered balancing method trains a few steps through the real trainer on tiny data."""

from __future__ import annotations

import math

import pytest
import torch

from polytask.balancing.registry import available_methods
from polytask.config import validate_config
from polytask.training.setup import build_experiment
from polytask.training.trainer import Trainer
from tests.conftest import tiny_config_dict

METHODS = sorted(available_methods())


def trainer_for(method: str, **balancing) -> Trainer:
    data = tiny_config_dict()
    data["balancing"] = {"method": method, **balancing}
    data["training"].update(max_steps=3, epochs=1)
    return Trainer(build_experiment(validate_config(data)), progress=False)


@pytest.mark.parametrize("method", METHODS)
def test_method_trains_and_updates_shared_and_task_parameters(method: str) -> None:
    trainer = trainer_for(method)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    for step in range(3):
        record = trainer.train_step(trainer.steps.build(step, 3))
        assert all(math.isfinite(v) for v in record["losses"].values())
        assert set(record["weights"]) == set(record["losses"])
    changed = {n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])}
    assert any(n.startswith("encoder.lstms") for n in changed), method
    for task in ("pos", "chunk", "sentiment"):
        assert any(n.startswith(f"heads.{task}.") for n in changed), (method, task)


@pytest.mark.parametrize("method", ["upgrad", "mgda", "pcgrad"])
@pytest.mark.parametrize("mode", ["representation", "subset"])
def test_cheap_modes_train(method: str, mode: str) -> None:
    if method not in METHODS:
        pytest.skip(f"{method} not registered")
    options = {"shared_params": ["encoder.lstms.1"]} if mode == "subset" else {}
    trainer = trainer_for(method, mode=mode, **options)
    record = trainer.train_step(trainer.steps.build(0, 3))
    assert all(math.isfinite(v) for v in record["losses"].values())


def test_partial_step_with_one_task_absent() -> None:
    data = tiny_config_dict()
    data["sampling"] = {"tasks_per_step": 1, "method": "round_robin"}
    data["balancing"] = {"method": "upgrad" if "upgrad" in METHODS else "ew"}
    data["training"].update(max_steps=3, epochs=1)
    trainer = Trainer(build_experiment(validate_config(data)), progress=False)
    seen = []
    for step in range(3):
        batch = trainer.steps.build(step, 3)
        seen.append(tuple(batch.present_tasks))
        trainer.train_step(batch)
    assert all(len(tasks) == 1 for tasks in seen) and len(set(seen)) == 3
