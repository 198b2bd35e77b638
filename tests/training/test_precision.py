"""training.precision: bf16 autocast trains (on CPU too), fp16's loss scale never reaches a method's
statistics, inf/NaN steps are skipped and counted, and the scaler's state resumes exactly."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import pytest
import torch

from polytask.balancing.registry import available_methods
from polytask.config import load_config, validate_config
from polytask.training.run import resume_run, train_run
from polytask.training.setup import build_experiment
from polytask.training.trainer import Trainer
from tests.conftest import requires_data, tiny_config_dict
from tests.training.test_resume import Crash, assert_same_run, stateful_config

EXAMPLES = Path(__file__).parent.parent.parent / "examples"
METHODS = available_methods()
# the loss weightings and gradient aggregators issue 12 names, in every mode each supports
CHECKED = ["ew", "uw", "dwa", "famo", "gradnorm", "db_mtl", "mgda", "pcgrad", "upgrad", "cagrad", "nash_mtl", "graddrop"]


def settings() -> list[tuple[str, str]]:
    out = []
    for method in CHECKED:
        modes = ["exact", "representation"] if METHODS[method].kind == "gradient aggregator" else ["exact"]
        out += [(method, mode) for mode in modes]
    return out


def trainer_for(method: str, mode: str = "exact", **training) -> Trainer:
    data = tiny_config_dict()
    data["encoder"].update(dropout=0.0, embedding_dropout=0.0)
    data["heads"] = {t: {"layer": 1 if t == "pos" else -1, "dropout": 0.0} for t in ("pos", "chunk", "sentiment")}
    data["balancing"] = {"method": method, "mode": mode}
    data["training"].update(max_steps=3, epochs=1, **training)
    return Trainer(build_experiment(validate_config(data)), progress=False)


def test_every_method_trains_under_bf16() -> None:
    for method, mode in settings():
        trainer = trainer_for(method, mode, precision="bf16")
        before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
        for step in range(3):
            record = trainer.train_step(trainer.steps.build(step, 3))
            assert all(math.isfinite(v) for v in record["losses"].values()), (method, mode)
        assert trainer.skipped == 0
        assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # autocast: fp32 master weights
        assert any(not torch.equal(p, before[n]) for n, p in trainer.model.named_parameters()), (method, mode)


@pytest.mark.parametrize("method,mode", settings())
def test_the_fp16_loss_scale_is_taken_out_of_every_method(method: str, mode: str) -> None:
    """fp32 arithmetic with fp16's 65536 loss scale gives the fp32 update: no method sees scaled gradients."""
    plain = trainer_for(method, mode)
    for step in range(3):
        plain.train_step(plain.steps.build(step, 3))
    scaled = trainer_for(method, mode, precision="fp16")  # seeds the global RNG again (PCGrad, GradDrop draw)
    scaled.precision.autocast = contextlib.nullcontext  # keep the scaler, drop fp16 arithmetic
    assert scaled.precision.scale == 65536.0
    for step in range(3):
        scaled.train_step(scaled.steps.build(step, 3))
    assert scaled.skipped == 0
    for (name, a), b in zip(plain.model.named_parameters(), scaled.model.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=f"{method} {mode}: {name}")
    for a, b in zip(plain.balancer.parameters(), scaled.balancer.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", ["ew", "uw", "upgrad", "db_mtl"])
def test_a_step_with_nonfinite_gradients_is_skipped_and_counted(method: str) -> None:
    trainer = trainer_for(method)
    trainer.train_step(trainer.steps.build(0, 3))
    pos = trainer.tasks["pos"]
    real = pos.loss
    pos.loss = lambda *args: real(*args) * math.inf
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    record = trainer.train_step(trainer.steps.build(1, 3))
    pos.loss = real
    assert record["skipped"] and trainer.skipped == 1
    assert all(torch.equal(p, before[n]) for n, p in trainer.model.named_parameters())
    record = trainer.train_step(trainer.steps.build(2, 3))
    assert "skipped" not in record and trainer.skipped == 1
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_fp16_overflow_is_skipped_and_the_scale_backs_off() -> None:
    trainer = trainer_for("upgrad", precision="fp16")
    trainer.precision.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**100)
    record = trainer.train_step(trainer.steps.build(0, 3))
    assert record.get("skipped") and trainer.skipped == 1
    assert trainer.precision.scale == 2.0**99


def test_an_fp16_run_resumes_exactly(tmp_path: Path) -> None:
    config = validate_config(stateful_config(precision="fp16"))
    straight = tmp_path / "straight"
    summary = train_run(config, straight, progress=False)
    assert summary["skipped_steps"] == 0
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        train_run(config, cut, progress=False, callbacks=[Crash(5)])
    resume_run(cut, progress=False)
    assert_same_run(straight, cut)


@requires_data
def test_bf16_trains_a_conll2000_slice_within_a_point_of_fp32() -> None:
    results = {}
    for precision in ("fp32", "bf16"):
        config = load_config(EXAMPLES / "conll2000-pos-chunk.yaml", [
            "tasks.pos.data.max_train=600", "tasks.chunk.data.max_train=600",
            "tasks.pos.data.max_eval=300", "tasks.chunk.data.max_eval=300", "encoder.hidden=48",
            "training.epochs=3", "training.batch_size=16", "training.lr=0.005", f"training.precision={precision}",
        ])
        results[precision] = Trainer(build_experiment(config), progress=False).fit()["tasks"]
    for task, metric in (("pos", "accuracy"), ("chunk", "f1")):
        fp32, bf16 = results["fp32"][task][metric]["test"], results["bf16"][task][metric]["test"]
        assert abs(bf16 - fp32) <= 1.0, (task, fp32, bf16)
