"""Lookahead affinity: known signs, exact restore, training unchanged, `polytask affinity` end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

import polytask
from polytask.config import validate_config
from polytask.demo import demo_config
from polytask.errors import PolytaskError
from polytask.evaluation.grouping import grouping_score
from polytask.evidence.lookahead import (
    LOOKAHEADS,
    adam_step,
    optimizer_step,
    parameter_rates,
    sgd_step,
)
from polytask.evidence.lookahead_affinity import AffinityMeter, measure_affinity
from polytask.training.callbacks import Callback
from polytask.training.setup import build_experiment
from polytask.training.trainer import Trainer
from tests.conftest import tiny_config_dict
from tests.test_cli import polytask as run_cli

# --------------------------------------------------------------------------------------
# The measurement on hand-built losses over one shared scalar w (w = 0, lr = 0.1)


def scalar_losses(*targets: float, w: nn.Parameter):
    return lambda: {f"t{k}": (w - target) ** 2 for k, target in enumerate(targets)}


def test_tasks_with_identical_losses_help_each_other() -> None:
    w = nn.Parameter(torch.zeros(()))
    m = measure_affinity([w], scalar_losses(2.0, 2.0, w=w), 0.1)
    # gradient -4, w' = 0.4, L = 2.56 instead of 4
    assert m.affinity == [[pytest.approx(0.36)] * 2] * 2
    assert m.cosine == [[pytest.approx(1.0)] * 2] * 2


def test_tasks_pulling_a_shared_scalar_apart_hurt_each_other() -> None:
    w = nn.Parameter(torch.zeros(()))
    m = measure_affinity([w], scalar_losses(2.0, -2.0, w=w), 0.1)
    assert m.affinity[0][0] == pytest.approx(0.36) and m.affinity[1][1] == pytest.approx(0.36)
    assert m.affinity[0][1] == pytest.approx(1 - 5.76 / 4) and m.affinity[1][0] == pytest.approx(1 - 5.76 / 4)
    assert m.affinity[0][1] < 0 and m.cosine[0][1] == pytest.approx(-1.0)


def test_a_negated_loss_has_negative_affinity() -> None:
    w = nn.Parameter(torch.zeros(()))
    m = measure_affinity([w], lambda: {"a": (w - 2) ** 2, "b": 10 - (w - 2) ** 2}, 0.1)
    assert m.affinity[0][1] == pytest.approx(1 - 7.44 / 6)
    assert m.affinity[0][1] < 0 and m.affinity[1][0] < 0


def test_parameters_are_restored_exactly_also_on_error() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(7, 3)
    x = torch.randn(5, 7)
    before = [p.detach().clone() for p in layer.parameters()]
    losses = lambda: {"a": layer(x).pow(2).mean(), "b": (layer(x) - 1).abs().mean()}
    measure_affinity(list(layer.parameters()), losses, 0.37)
    assert all(torch.equal(p, q) for p, q in zip(layer.parameters(), before))
    assert all(p.grad is None for p in layer.parameters())

    calls = []

    def failing():
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("boom")
        return losses()

    with pytest.raises(RuntimeError):
        measure_affinity(list(layer.parameters()), failing, 0.37)
    assert all(torch.equal(p, q) for p, q in zip(layer.parameters(), before))


def test_only_the_given_parameters_move_at_their_own_rates() -> None:
    shared, frozen = nn.Parameter(torch.zeros(())), nn.Parameter(torch.zeros(()))
    losses = lambda: {"a": (shared + frozen - 2) ** 2, "b": (shared + frozen - 2) ** 2}
    # a zero rate is no step at all: no loss changes
    assert measure_affinity([shared], losses, [0.0]).affinity == [[0.0, 0.0], [0.0, 0.0]]
    # moving only `shared` by 0.1·4: same numbers as the one-parameter case
    assert measure_affinity([shared], losses, [0.1]).affinity[0][1] == pytest.approx(0.36)


def test_parameter_rates_follow_the_optimizer_groups() -> None:
    a, b, c = (nn.Parameter(torch.zeros(1)) for _ in range(3))
    optimizer = torch.optim.SGD([{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.01}], lr=1.0)
    assert parameter_rates(optimizer, [a, b, c]) == [0.1, 0.01, 0.0]


# --------------------------------------------------------------------------------------
# The lookahead rule: the optimizer's own preconditioner (Adam) or plain SGD


def adam_after_steps(optimizer_class, **options):
    """A two-parameter model after three real steps of ``optimizer_class``, so its state is nontrivial."""
    torch.manual_seed(0)
    a, b = nn.Parameter(torch.randn(3, 2)), nn.Parameter(torch.randn(2))
    optimizer = optimizer_class([{"params": [a], "lr": 0.05}, {"params": [b], "lr": 0.2, "betas": (0.8, 0.9),
                                                                "eps": 1e-3}], **options)
    x = torch.randn(4, 3)
    for _ in range(3):
        optimizer.zero_grad()
        ((x @ a + b).tanh() - 1).pow(2).mean().backward()
        optimizer.step()
    return optimizer, [a, b], x


@pytest.mark.parametrize("optimizer_class", [torch.optim.Adam, torch.optim.AdamW])
def test_adam_lookahead_is_the_gradient_preconditioned_by_the_second_moments(optimizer_class) -> None:
    optimizer, (a, b), x = adam_after_steps(optimizer_class, weight_decay=0.1)
    state_before = {id(p): {k: v.clone() for k, v in optimizer.state[p].items()} for p in (a, b)}
    losses = lambda: {"u": (x @ a + b).sum(), "v": ((x @ a + b) - 2).pow(2).mean()}
    step = optimizer_step(optimizer, [a, b])
    assert step.rule == "adam" and step.rates == [0.05, 0.2]
    gradient = [torch.autograd.grad(losses()["v"], p)[0] for p in (a, b)]
    expected = []
    for p, lr, beta2, eps in ((a, 0.05, 0.999, 1e-8), (b, 0.2, 0.9, 1e-3)):
        state = optimizer.state[p]
        v_hat = state["exp_avg_sq"] / (1 - beta2 ** float(state["step"]))
        expected.append(p.detach() - lr * gradient[len(expected)] / (v_hat.sqrt() + eps))
    a0, b0 = a.detach().clone(), b.detach().clone()
    step.apply([a, b], gradient)
    assert torch.allclose(a, expected[0], rtol=1e-6, atol=0) and torch.allclose(b, expected[1], rtol=1e-6, atol=0)
    # no momentum, no weight decay: not the optimizer's own next step
    assert not torch.allclose(a, a0 - 0.05 * gradient[0]), "the preconditioner must change the step"
    with torch.no_grad():
        a.copy_(a0), b.copy_(b0)
    # the affinity of v's step onto v is computed at exactly those parameters; the optimizer state is untouched
    m = measure_affinity([a, b], losses, step)
    with torch.no_grad():
        before = float(losses()["v"])
        a.copy_(expected[0]), b.copy_(expected[1])
        after = float(losses()["v"])
        a.copy_(a0), b.copy_(b0)
    assert m.affinity[1][1] == pytest.approx(1 - after / before, rel=1e-5)
    assert all(torch.equal(optimizer.state[p][k], v) for p in (a, b) for k, v in state_before[id(p)].items())


def test_amsgrad_uses_the_running_maximum_of_the_second_moments() -> None:
    optimizer, (a, _), _ = adam_after_steps(torch.optim.Adam, amsgrad=True)
    step = adam_step(optimizer, [a])
    state = optimizer.state[a]
    expected = (state["max_exp_avg_sq"] / (1 - 0.999 ** float(state["step"]))).sqrt() + 1e-8
    assert torch.allclose(step.denominators[0], expected)


def test_adam_lookahead_waits_for_the_optimizers_first_step() -> None:
    a, b = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(2))
    optimizer = torch.optim.AdamW([a, b], lr=0.1)
    assert optimizer_step(optimizer, [a, b]) is None  # no second moments yet: the meter skips the step
    optimizer.zero_grad()
    a.sum().backward()  # b takes no part: the optimizer never updates it
    optimizer.step()
    step = optimizer_step(optimizer, [a, b])
    assert step is not None and step.rates == [0.1, 0.0] and step.denominators[1] is None  # b stays put


def test_sgd_and_unknown_optimizers_take_the_plain_step() -> None:
    a = nn.Parameter(torch.ones(2))
    for optimizer in (torch.optim.SGD([a], lr=0.3, momentum=0.9), torch.optim.Adagrad([a], lr=0.3)):
        step = optimizer_step(optimizer, [a])
        assert step.rule == "sgd" and step.rates == [0.3] and step.denominators == [None]
    adam = torch.optim.Adam([a], lr=0.3)
    a.sum().backward()
    adam.step()
    assert sgd_step(adam, [a]).rule == "sgd" and LOOKAHEADS["sgd"] is sgd_step  # --lookahead sgd under Adam


def test_meter_averages_only_over_steps_where_both_tasks_were_present() -> None:
    from polytask.evidence.lookahead_affinity import Measurement

    meter = AffinityMeter(["x", "y", "z"], every=1)
    meter.add(Measurement(["x", "y"], [[1.0, 0.2], [0.4, 1.0]], [[1.0, 0.5], [0.5, 1.0]]))
    meter.add(Measurement(["x", "z"], [[1.0, -0.6], [0.0, 1.0]], [[1.0, -1.0], [-1.0, 1.0]]))
    meter.add(Measurement(["x", "y"], [[1.0, 0.4], [math.nan, 1.0]], [[1.0, 0.1], [0.1, 1.0]]))
    mean = meter.mean()
    assert mean[0][1] == pytest.approx(0.3) and mean[1][0] == pytest.approx(0.4) and mean[0][2] == -0.6
    assert math.isnan(mean[1][2]) and meter.measurements == 3
    assert meter.mean("cosine")[0][1] == pytest.approx(0.3)
    with pytest.raises(PolytaskError, match="--every"):
        AffinityMeter(["x"], every=0)
    with pytest.raises(PolytaskError, match="--lookahead must be one of optimizer, sgd"):
        AffinityMeter(["x"], lookahead="adam")


# --------------------------------------------------------------------------------------
# In the trainer: the measurement does not change training


class Recorder(Callback):
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def before_step(self, trainer, batch) -> None:
        self.calls.append(("before", trainer.step))

    def after_step(self, trainer, batch, record) -> None:
        assert set(record["losses"]) == set(batch.present_tasks)
        self.calls.append(("after", trainer.step))


class RandomDraw(Callback):
    """A careless callback: draws from the global RNG, which shifts dropout masks."""

    def before_step(self, trainer, batch) -> None:
        torch.rand(1)


def train_tiny(*callbacks: Callback, steps: int = 4) -> dict[str, torch.Tensor]:
    data = tiny_config_dict()
    data["encoder"].update(dropout=0.5, embedding_dropout=0.3)  # training draws random masks
    data["training"].update(max_steps=steps, epochs=steps)  # the tiny corpus is one step per epoch
    trainer = Trainer(build_experiment(validate_config(data)), progress=False, callbacks=list(callbacks))
    for step in range(steps):
        trainer.train_step(trainer.steps.build(step, steps))
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def test_callbacks_are_called_around_every_step() -> None:
    recorder = Recorder()
    train_tiny(recorder, steps=2)
    assert recorder.calls == [("before", 0), ("after", 1), ("before", 1), ("after", 2)]


def test_affinity_measurement_leaves_training_unchanged() -> None:
    plain = train_tiny()
    meter = AffinityMeter(["pos", "chunk", "sentiment"], every=1)
    measured = train_tiny(meter)
    assert meter.lookahead == "optimizer" and meter.rules == {"adam"}  # the tiny config trains with AdamW
    assert meter.measurements == 3  # step 0 comes before Adam's first second-moment estimate
    assert plain.keys() == measured.keys()
    assert all(torch.equal(plain[k], measured[k]) for k in plain)
    assert any(math.isfinite(x) and x != 0 for row in meter.mean() for x in row)
    # the comparison is sensitive: one stray random draw per step changes the weights
    disturbed = train_tiny(RandomDraw())
    assert not all(torch.equal(plain[k], disturbed[k]) for k in plain)


def test_steps_with_a_frozen_encoder_are_skipped() -> None:
    data = tiny_config_dict()
    data["training"].update(max_steps=1, epochs=1)
    trainer = Trainer(build_experiment(validate_config(data)), progress=False)
    for p in trainer.model.encoder.parameters():
        p.requires_grad_(False)
    meter = AffinityMeter(list(trainer.tasks), every=1, lookahead="sgd")  # SGD's step needs no optimizer state
    meter.before_step(trainer, trainer.steps.build(0, 1))
    assert meter.measurements == 0


# --------------------------------------------------------------------------------------
# End to end on the synthetic benchmark (short budget: structure only)


def short_demo_config(path: Path) -> Path:
    data = demo_config(steps=10, epochs=1)
    for task in data["tasks"].values():
        task["data"]["synthetic"].update(dev_size=40, test_size=40)
    data["training"]["threads"] = 1
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_affinity_command_writes_matrices_grouping_heatmaps_and_run(tmp_path: Path) -> None:
    config = short_demo_config(tmp_path / "demo.yaml")
    out = tmp_path / "affinity"
    result = run_cli("affinity", str(config), "--out", str(out), "--every", "3", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "affinity Z(i→j)" in result.stdout and "task groupings" in result.stdout
    data = json.loads((out / "affinity.json").read_text())
    tasks = ["tag", "chunk", "mood", "score", "unrelated"]
    assert data["tasks"] == tasks
    # steps 3, 6, 9: step 0 comes before AdamW's first second-moment estimate
    assert data["measurements"] == 3 and data["every"] == 3 and data["steps"] == 10
    assert data["lookahead"] == "optimizer" and data["lookahead_rules"] == ["adam"]
    for kind in ("affinity", "cosine"):
        assert len(data[kind]) == 5 and all(len(row) == 5 for row in data[kind])
        assert all(isinstance(x, float) and math.isfinite(x) for row in data[kind] for x in row)
    assert all(data["cosine"][i][i] == pytest.approx(1.0, abs=1e-5) for i in range(5))  # float32 sums
    assert all(data["cosine"][i][j] == pytest.approx(data["cosine"][j][i]) for i in range(5) for j in range(5))
    assert 1 <= len(data["groups"]) <= 2 and sorted(t for g in data["groups"] for t in g) == sorted(tasks)
    index = {t: i for i, t in enumerate(tasks)}
    blocks = [[index[t] for t in group] for group in data["groups"]]
    assert data["score"] == pytest.approx(grouping_score(data["affinity"], blocks))
    assert data["all_groupings"][0] == {"groups": data["groups"], "score": data["score"]}
    assert [g["score"] for g in data["all_groupings"]] == sorted((g["score"] for g in data["all_groupings"]),
                                                                 reverse=True)
    for name in ("affinity.png", "cosine.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "run" / "model.safetensors").is_file() and (out / "run" / "summary.json").is_file()

    again = run_cli("affinity", str(config), "--out", str(out), "--quiet")
    assert again.returncode == 2 and "already holds affinity.json" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


def test_affinity_api_and_user_errors(tmp_path: Path) -> None:
    config = short_demo_config(tmp_path / "demo.yaml")
    result = polytask.affinity(str(config), every=5, groups=1, progress=False, lookahead="sgd",
                               overrides=["training.epoch.steps=5"])
    assert result["measurements"] == 1 and result["steps"] == 5  # the SGD step needs no optimizer state: step 0
    assert result["lookahead"] == "sgd" and result["lookahead_rules"] == ["sgd"]
    assert result["groups"] == [result["tasks"]] and len(result["all_groupings"]) == 1
    bad = run_cli("affinity", str(config), "--out", str(tmp_path / "x"), "--groups", "0")
    assert bad.returncode == 2 and "--groups must be at least 1" in bad.stderr
    assert not (tmp_path / "x").exists()  # refused before any training
    bad = run_cli("affinity", str(config), "--out", str(tmp_path / "x"), "--lookahead", "adam")
    assert bad.returncode == 2 and "--lookahead" in bad.stderr and not (tmp_path / "x").exists()
    with pytest.raises(PolytaskError, match="--lookahead must be one of"):
        polytask.affinity(str(config), lookahead="adam", progress=False)
