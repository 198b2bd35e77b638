"""Loss weightings: each follows its paper on a worked example and keeps the trainer contract."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from polytask.balancing.balancer import StepContext
from polytask.balancing.loss_weightings import (
    FAMO,
    DualBalancing,
    DynamicWeightAverage,
    GeometricLossStrategy,
    GradNorm,
    ImpartialLossWeighting,
    RandomLossWeighting,
    StaticWeighting,
    UncertaintyWeighting,
)
from polytask.balancing.registry import available_methods, build_balancer
from polytask.errors import ConfigError

TASKS = ["a", "b", "c"]
WEIGHTINGS = sorted(name for name, info in available_methods().items() if info.kind == "loss weighting")


# --- a tiny 2-layer model with three heads -------------------------------------------------
class TinyModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh())
        self.heads = nn.ModuleDict({task: nn.Linear(8, 1) for task in TASKS})

    def losses(self, step: int, tasks: list[str]) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(step)
        x = torch.randn(16, 4, generator=generator)
        features = self.shared(x)
        scales = {"a": 1.0, "b": 10.0, "c": 0.1}
        out = {}
        for task in TASKS:
            y = scales[task] * torch.randn(16, 1, generator=generator)
            if task in tasks:
                out[task] = ((self.heads[task](features) - y) ** 2).mean()
        return out


def make_context(shared: dict, step: int = 0, recompute=None, epoch: int | None = None) -> StepContext:
    context = StepContext(shared_parameters=shared, step=step, recompute_losses=recompute)
    context.epoch = epoch  # the trainer's epoch counter (read by DWA's per-epoch window)
    return context


def train_step(balancer, model: TinyModel, optimizer, step: int, tasks: list[str] = TASKS) -> dict:
    optimizer.zero_grad(set_to_none=True)
    losses = model.losses(step, tasks)

    def recompute() -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return model.losses(step, tasks)

    context = make_context(dict(model.shared.named_parameters()), step, recompute, epoch=step // 2)
    stats = balancer.backward(losses, context)
    optimizer.step()
    balancer.after_optimizer_step({task: loss.detach() for task, loss in losses.items()}, context)
    return stats


def setup(method: str, seed: int = 0):
    torch.manual_seed(seed)
    model = TinyModel()
    balancer = build_balancer(method, TASKS)
    optimizer = torch.optim.Adam([*model.parameters(), *balancer.parameters()], lr=1e-2)
    return model, balancer, optimizer


# --- every weighting keeps the trainer contract ---------------------------------------------
@pytest.mark.parametrize("method", WEIGHTINGS)
def test_steps_set_gradients_everywhere(method: str) -> None:
    model, balancer, optimizer = setup(method)
    for step in range(4):
        optimizer.zero_grad(set_to_none=True)
        losses = model.losses(step, TASKS)
        context = make_context(
            dict(model.shared.named_parameters()), step, lambda s=step: model.losses(s, TASKS), epoch=step // 2
        )
        stats = balancer.backward(losses, context)
        for name, parameter in [*model.named_parameters(), *(("balancer", p) for p in balancer.parameters())]:
            assert parameter.grad is not None, name
            assert torch.isfinite(parameter.grad).all(), name
        json.dumps(stats)
        assert set(stats["weights"]) == set(TASKS)
        assert all(math.isfinite(w) for w in stats["weights"].values())
        optimizer.step()
        balancer.after_optimizer_step({t: loss.detach() for t, loss in losses.items()}, context)


@pytest.mark.parametrize("method", WEIGHTINGS)
def test_task_subset(method: str) -> None:
    model, balancer, optimizer = setup(method)
    train_step(balancer, model, optimizer, 0)
    optimizer.zero_grad(set_to_none=True)
    stats = train_step(balancer, model, optimizer, 1, tasks=["a", "c"])
    assert set(stats["weights"]) == {"a", "c"}
    assert model.heads["b"].weight.grad is None
    for name, parameter in [*model.shared.named_parameters(), *model.heads["a"].named_parameters()]:
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    assert set(train_step(balancer, model, optimizer, 2, tasks=["b"])["weights"]) == {"b"}
    assert set(train_step(balancer, model, optimizer, 3)["weights"]) == set(TASKS)


@pytest.mark.parametrize("method", WEIGHTINGS)
def test_state_dict_round_trip_restores_subsequent_weights(method: str) -> None:
    model, balancer, optimizer = setup(method)
    for step, tasks in enumerate([TASKS, TASKS, ["a", "b"], TASKS, TASKS]):
        train_step(balancer, model, optimizer, step, tasks)
    saved_balancer = copy.deepcopy(balancer.state_dict())
    saved_model = copy.deepcopy(model)
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    expected = [train_step(balancer, model, optimizer, step)["weights"] for step in range(5, 9)]

    restored = build_balancer(method, TASKS)
    restored.load_state_dict(saved_balancer)
    optimizer = torch.optim.Adam([*saved_model.parameters(), *restored.parameters()], lr=1e-2)
    optimizer.load_state_dict(saved_optimizer)
    resumed = [train_step(restored, saved_model, optimizer, step)["weights"] for step in range(5, 9)]
    assert resumed == expected


# --- worked examples: each method's update by hand ---------------------------------------------
def leaf_losses(values: dict[str, float]) -> dict[str, torch.Tensor]:
    return {task: torch.tensor(value, requires_grad=True) for task, value in values.items()}


def test_uw_gradient_of_log_variance() -> None:
    uw = UncertaintyWeighting(["a", "b"])
    uw.load_state_dict({"scalars": {"a": torch.tensor(0.5), "b": torch.tensor(-1.0)}})
    losses = leaf_losses({"a": 2.0, "b": 0.3})
    stats = uw.backward(losses, make_context({}))
    # L = Σ exp(-s) L + s  →  ∂L/∂L_t = exp(-s_t),  ∂L/∂s_t = 1 - exp(-s_t) L_t
    assert losses["a"].grad.item() == pytest.approx(math.exp(-0.5))
    assert losses["b"].grad.item() == pytest.approx(math.exp(1.0))
    assert uw.scalars["a"].grad.item() == pytest.approx(1 - math.exp(-0.5) * 2.0)
    assert uw.scalars["b"].grad.item() == pytest.approx(1 - math.exp(1.0) * 0.3)
    assert stats["weights"] == pytest.approx({"a": math.exp(-0.5), "b": math.exp(1.0)})
    assert uw.scalars["a"] is next(iter(uw.parameters()))


def test_imtl_l_gradient_of_log_scale() -> None:
    imtl = ImpartialLossWeighting(["a", "b"], init_log_scale=0.2)
    losses = leaf_losses({"a": 2.0, "b": 0.5})
    imtl.backward(losses, make_context({}))
    # L = Σ exp(s) L - s  →  ∂L/∂s_t = exp(s_t) L_t - 1
    assert losses["a"].grad.item() == pytest.approx(math.exp(0.2))
    assert imtl.scalars["a"].grad.item() == pytest.approx(math.exp(0.2) * 2.0 - 1)
    assert imtl.scalars["b"].grad.item() == pytest.approx(math.exp(0.2) * 0.5 - 1)


def dwa_weights(ratios: list[float], temperature: float = 2.0) -> list[float]:
    exps = [math.exp(r / temperature) for r in ratios]
    return [len(ratios) * e / sum(exps) for e in exps]


def test_dwa_per_step_window() -> None:
    dwa = DynamicWeightAverage(TASKS, window=1)
    history = [{"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 0.5, "b": 1.8, "c": 3.3}, {"a": 0.4, "b": 1.0, "c": 3.0}]
    weights = [dwa.backward(leaf_losses(losses), make_context({}, step))["weights"] for step, losses in enumerate(history)]
    assert weights[0] == weights[1] == {"a": 1.0, "b": 1.0, "c": 1.0}  # equal until two history points
    assert list(weights[2].values()) == pytest.approx(dwa_weights([0.5 / 1.0, 1.8 / 2.0, 3.3 / 3.0]))
    nxt = dwa.backward(leaf_losses({"a": 1.0, "b": 1.0, "c": 1.0}), make_context({}, 3))["weights"]
    assert list(nxt.values()) == pytest.approx(dwa_weights([0.4 / 0.5, 1.0 / 1.8, 3.0 / 3.3]))


def test_dwa_per_epoch_averages_the_epoch_losses() -> None:
    dwa = DynamicWeightAverage(["a", "b"])  # the paper: T = 2, one history point per epoch
    epochs = [[(2.0, 1.0), (4.0, 3.0)], [(1.0, 2.0), (2.0, 2.0)]]
    for epoch, steps in enumerate(epochs):
        for a, b in steps:
            weights = dwa.backward(leaf_losses({"a": a, "b": b}), make_context({}, epoch=epoch))["weights"]
            assert weights == {"a": 1.0, "b": 1.0}
    losses = leaf_losses({"a": 1.0, "b": 1.0})
    weights = dwa.backward(losses, make_context({}, epoch=2))["weights"]
    expected = dwa_weights([1.5 / 3.0, 2.0 / 2.0])
    assert list(weights.values()) == pytest.approx(expected)
    assert [losses["a"].grad.item(), losses["b"].grad.item()] == pytest.approx(expected)


def test_dwa_epoch_window_needs_the_epoch() -> None:
    dwa = DynamicWeightAverage(["a"])
    with pytest.raises(ValueError, match="epoch"):
        dwa.backward(leaf_losses({"a": 1.0}), StepContext(shared_parameters={}))


def test_famo_weights_and_paper_logit_update() -> None:
    famo = FAMO(["a", "b"], w_lr=0.1, gamma=0.5, logit_optimizer="sgd")
    famo.load_state_dict({**famo.state_dict(), "logits": {"a": 0.2, "b": -0.2}})
    before = leaf_losses({"a": 2.0, "b": 1.0})
    stats = famo.backward(before, make_context({}))
    # z = softmax(ξ), c = Σ z/L, effective weight z_t / (c L_t)
    z = [math.exp(0.2) / (math.exp(0.2) + math.exp(-0.2)), math.exp(-0.2) / (math.exp(0.2) + math.exp(-0.2))]
    c = z[0] / 2.0 + z[1] / 1.0
    assert [before["a"].grad.item(), before["b"].grad.item()] == pytest.approx([z[0] / (c * 2.0), z[1] / c])
    assert sum(stats["weights"].values()) == pytest.approx(1.0)

    after = {"a": torch.tensor(1.0), "b": torch.tensor(0.8)}
    famo.after_optimizer_step({t: loss.detach() for t, loss in before.items()}, make_context({}, recompute=lambda: after))
    delta = [math.log(2.0 / 1.0), math.log(1.0 / 0.8)]
    mean = z[0] * delta[0] + z[1] * delta[1]
    d = [z[0] * (delta[0] - mean), z[1] * (delta[1] - mean)]
    # the paper's Algorithm 1: ξ ← ξ - β (d + γ ξ)
    expected = [0.2 - 0.1 * (d[0] + 0.5 * 0.2), -0.2 - 0.1 * (d[1] + 0.5 * -0.2)]
    assert [famo.logits["a"].item(), famo.logits["b"].item()] == pytest.approx(expected)


def test_famo_default_adam_moves_the_faster_task_down() -> None:
    famo = FAMO(["a", "b"])
    before = {"a": torch.tensor(2.0), "b": torch.tensor(1.0)}
    famo.backward({t: v.clone().requires_grad_() for t, v in before.items()}, make_context({}))
    after = {"a": torch.tensor(1.0), "b": torch.tensor(0.8)}
    famo.after_optimizer_step(before, make_context({}, recompute=lambda: after))
    # Adam's first step is -lr · sign(d); "a" improved more (δ larger), so its logit falls
    assert [famo.logits["a"].item(), famo.logits["b"].item()] == pytest.approx([-0.025, 0.025], rel=1e-5)
    with pytest.raises(ValueError, match="recompute_losses"):
        famo.after_optimizer_step(before, make_context({}))


def test_famo_next_batch_takes_the_same_logit_step_one_step_later_without_a_recompute() -> None:
    """update: next_batch reads the losses after step k off step k+1's forward pass: given those
    losses, the logits match same_batch's exactly, and no loss is recomputed."""
    first = {"a": 2.0, "b": 1.0, "c": 3.0}
    second = {"a": 1.0, "b": 0.8}  # "c" has no labels in the next step: its logit waits
    same, delayed = FAMO(["a", "b", "c"], w_lr=0.1), FAMO(["a", "b", "c"], w_lr=0.1, update="next_batch")
    same.backward(leaf_losses(first), make_context({}))
    same.after_optimizer_step({t: torch.tensor(v) for t, v in first.items() if t != "c"},
                              make_context({}, recompute=lambda: {t: torch.tensor(v) for t, v in second.items()}))
    delayed.backward(leaf_losses(first), make_context({}))
    delayed.after_optimizer_step({t: torch.tensor(v) for t, v in first.items()}, make_context({}))  # no recompute
    assert all(p.item() == 0.0 for p in delayed.logits.values())  # nothing known yet about the update's effect
    state = delayed.state_dict()
    resumed = FAMO(["a", "b", "c"], w_lr=0.1, update="next_batch")
    resumed.load_state_dict(state)  # the pending losses survive a checkpoint
    for famo in (delayed, resumed):
        weights = famo.backward(leaf_losses(second), make_context({}))["weights"]
        assert {t: famo.logits[t].item() for t in "abc"} == pytest.approx({t: same.logits[t].item() for t in "abc"})
        assert famo.logits["c"].item() == 0.0 and not famo.pending
        expected = same.backward(leaf_losses(second), make_context({}))["weights"]
        assert {t: float(w) for t, w in weights.items()} == pytest.approx({t: float(w) for t, w in expected.items()})
    with pytest.raises(TypeError, match="update must be"):
        FAMO(["a"], update="later")


def gradnorm_problem(y: tuple[float, float, float]):
    # h = W x with x = (3, 4); L_t = (c_t h - y_t)^2, so ∇_W L_t = 2 (c_t h - y_t) c_t x and
    # ||∇_W L_t|| = |2 (c_t h - y_t) c_t| · 5.
    weight = nn.Parameter(torch.tensor([[1.0, 0.0]]))
    x = torch.tensor([3.0, 4.0])
    heads = [1.0, 2.0, 0.5]
    h = (weight @ x).squeeze()
    losses = {task: (c * h - target) ** 2 for task, c, target in zip(TASKS, heads, y)}
    residual = [c * 3.0 - target for c, target in zip(heads, y)]
    norms = [abs(2 * r * c) * 5 for r, c in zip(residual, heads)]
    return weight, losses, [r * r for r in residual], norms


def gradnorm_weight_grads(w, losses, initial, norms, alpha):
    relative = [loss / first for loss, first in zip(losses, initial)]
    rates = [r / (sum(relative) / len(relative)) for r in relative]
    g = [wi * n for wi, n in zip(w, norms)]
    targets = [sum(g) / len(g) * r**alpha for r in rates]
    return [math.copysign(n, gi - t) for gi, t, n in zip(g, targets, norms)]


def test_gradnorm_weight_gradient_first_step() -> None:
    gradnorm = GradNorm(TASKS, alpha=1.5)
    weight, losses, _values, norms = gradnorm_problem((1.0, 1.0, 1.0))
    stats = gradnorm.backward(losses, make_context({"trunk.weight": weight}))
    assert norms == [20.0, 100.0, 2.5]
    assert list(stats["grad_norms"].values()) == pytest.approx(norms)
    # first step: r_t = 1, target = mean G = 40.83 → sign(G - target) n = (-20, 100, -2.5)
    assert [gradnorm.scalars[t].grad.item() for t in TASKS] == pytest.approx([-20.0, 100.0, -2.5])
    # the model gets exactly Σ w_t ∇L_t (w = 1 at the start)
    residual = [3.0 - 1.0, 6.0 - 1.0, 1.5 - 1.0]
    expected = sum(2 * r * c for r, c in zip(residual, [1.0, 2.0, 0.5])) * torch.tensor([[3.0, 4.0]])
    assert torch.allclose(weight.grad, expected)


def test_gradnorm_weight_gradient_with_training_rates() -> None:
    gradnorm = GradNorm(TASKS, alpha=1.5)
    w = [1.5, 1.2, 0.3]
    initial = [8.0, 10.0, 1.0]
    gradnorm.load_state_dict(
        {"scalars": dict(zip(TASKS, map(torch.tensor, w))), "initial_losses": dict(zip(TASKS, initial))}
    )
    weight, losses, values, norms = gradnorm_problem((1.0, 1.0, 1.0))
    gradnorm.backward(losses, make_context({"trunk.weight": weight}))
    expected = gradnorm_weight_grads(w, values, initial, norms, 1.5)
    assert expected == [20.0, -100.0, -2.5]
    assert gradnorm_weight_grads(w, values, initial, norms, 1.0) == [20.0, 100.0, -2.5]  # α matters here
    assert [gradnorm.scalars[t].grad.item() for t in TASKS] == pytest.approx(expected)
    residual = [2.0, 5.0, 0.5]
    model_grad = sum(wi * 2 * r * c for wi, r, c in zip(w, residual, [1.0, 2.0, 0.5])) * torch.tensor([[3.0, 4.0]])
    assert torch.allclose(weight.grad, model_grad)

    torch.optim.SGD(gradnorm.parameters(), lr=0.001).step()
    gradnorm.after_optimizer_step({t: loss.detach() for t, loss in losses.items()}, make_context({}))
    stepped = [wi - 0.001 * g for wi, g in zip(w, expected)]
    renormalised = [3 * s / sum(stepped) for s in stepped]
    assert [gradnorm.scalars[t].item() for t in TASKS] == pytest.approx(renormalised)


def test_gradnorm_chooses_shared_parameters() -> None:
    model = TinyModel()
    shared = dict(model.shared.named_parameters())
    assert GradNorm(TASKS).select_parameters(shared) == [shared["2.weight"]]
    assert GradNorm(TASKS, shared_params=["0."]).select_parameters(shared) == [shared["0.weight"], shared["0.bias"]]
    with pytest.raises(ValueError, match="no shared parameter"):
        GradNorm(TASKS, shared_params=["encoder."]).select_parameters(shared)


def test_db_mtl_first_step_balances_log_loss_gradients() -> None:
    torch.manual_seed(0)
    model = TinyModel()
    shared = dict(model.shared.named_parameters())
    per_task = {}
    for task in TASKS:
        loss = torch.log(model.losses(0, [task])[task] + 1e-8)
        per_task[task] = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(shared.values()))])
    buffers = {task: 0.1 * g for task, g in per_task.items()}  # β = 0.9 on a zero-initialised average
    largest = max(b.norm() for b in buffers.values())
    expected = sum(largest / (b.norm() + 1e-8) * b for b in buffers.values())
    head_expected = torch.autograd.grad(torch.log(model.losses(0, ["b"])["b"] + 1e-8), model.heads["b"].weight)[0]

    balancer = DualBalancing(TASKS)
    balancer.backward(model.losses(0, TASKS), make_context(shared))
    got = torch.cat([p.grad.reshape(-1) for p in shared.values()])
    assert torch.allclose(got, expected, atol=1e-6)
    assert torch.allclose(model.heads["b"].weight.grad, head_expected)


def test_rlw_is_reproducible_per_step() -> None:
    first, second = RandomLossWeighting(TASKS, seed=3), RandomLossWeighting(TASKS, seed=3)
    losses = {"a": 1.0, "b": 2.0, "c": 3.0}
    w3 = first.backward(leaf_losses(losses), make_context({}, 3))["weights"]
    assert second.backward(leaf_losses(losses), make_context({}, 3))["weights"] == w3
    assert first.backward(leaf_losses(losses), make_context({}, 4))["weights"] != w3
    z = np.random.default_rng([3, 3]).standard_normal(3)
    assert list(w3.values()) == pytest.approx((np.exp(z) / np.exp(z).sum()).tolist())
    subset = first.backward(leaf_losses({"a": 1.0, "c": 3.0}), make_context({}, 3))["weights"]
    assert list(subset.values()) == pytest.approx((np.exp(z[[0, 2]]) / np.exp(z[[0, 2]]).sum()).tolist())


def test_static_weights_are_applied_exactly() -> None:
    static = StaticWeighting(TASKS, weights={"a": 2.0, "c": 0.25})
    losses = leaf_losses({"a": 1.0, "b": 1.0, "c": 1.0})
    stats = static.backward(losses, make_context({}))
    assert [losses[t].grad.item() for t in TASKS] == [2.0, 1.0, 0.25]
    assert stats["weights"] == {"a": 2.0, "b": 1.0, "c": 0.25}


def test_gls_weights_are_the_geometric_mean_gradient() -> None:
    losses = leaf_losses({"a": 1.0, "b": 4.0, "c": 2.0})
    stats = GeometricLossStrategy(TASKS).backward(losses, make_context({}))
    mean = 8.0 ** (1 / 3)
    expected = [mean / (3 * 1.0), mean / (3 * 4.0), mean / (3 * 2.0)]
    assert [losses[t].grad.item() for t in TASKS] == pytest.approx(expected)
    assert list(stats["weights"].values()) == pytest.approx(expected)
    with pytest.raises(ValueError, match="positive"):
        GeometricLossStrategy(TASKS).backward(leaf_losses({"a": 0.0}), make_context({}))


@pytest.mark.parametrize(
    "method, options",
    [
        ("static", {"weights": {"z": 1.0}}),
        ("static", {"weight": 1.0}),
        ("dwa", {"temperature": 0}),
        ("dwa", {"window": "batch"}),
        ("famo", {"logit_optimizer": "rmsprop"}),
        ("famo", {"min_losses": {"z": 0.0}}),
        ("gradnorm", {"shared_params": "encoder"}),
        ("db_mtl", {"beta": 1.5}),
        ("rlw", {"seed": -1}),
    ],
)
def test_bad_options_are_config_errors(method: str, options: dict) -> None:
    with pytest.raises(ConfigError):
        build_balancer(method, TASKS, options)


def test_unknown_task_in_losses_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown tasks"):
        UncertaintyWeighting(["a"]).backward(leaf_losses({"b": 1.0}), make_context({}))
