"""The per-task gradient engine and GradientBalancer on a tiny BiLSTM tagger."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from polytask.balancing.aggregation import GradientBalancer, GramianWeighting
from polytask.balancing.balancer import StepContext
from polytask.balancing.engine import (
    EveryKSteps,
    ExactMode,
    RepresentationMode,
    SubsetMode,
    build_engine,
    task_specific_parameters,
)
from polytask.balancing.registry import build_balancer
from polytask.errors import ConfigError

TASKS = {"pos": 7, "chunk": 5, "ner": 3}


class TinyTagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.ModuleDict({"embed": nn.Embedding(40, 6), "lstm": nn.LSTM(6, 5, num_layers=2, bidirectional=True, batch_first=True)})
        self.heads = nn.ModuleDict({task: nn.Linear(10, n) for task, n in TASKS.items()})

    def forward(self, words, labels, tasks=tuple(TASKS)):
        states, _ = self.encoder["lstm"](self.encoder["embed"](words))
        losses = {t: nn.functional.cross_entropy(self.heads[t](states).flatten(0, 1), labels[t].flatten()) for t in tasks}
        return states, losses

    def context(self, states, step=0):
        return StepContext(shared_parameters=dict(self.encoder.named_parameters()), representation=[states], step=step)


@pytest.fixture
def setup():
    torch.manual_seed(0)
    model = TinyTagger()
    words = torch.randint(0, 40, (4, 6))
    labels = {t: torch.randint(0, n, (4, 6)) for t, n in TASKS.items()}
    return model, words, labels


def reference_gradients(model, words, labels, wrt, tasks=tuple(TASKS)):
    """T separate autograd.grad calls, the definition the engine must match."""
    out = {}
    for task in tasks:
        states, losses = model(words, labels, tasks)
        targets = wrt(model, states)
        out[task] = torch.cat([g.flatten() for g in torch.autograd.grad(losses[task], targets)])
    return out


def shared_params(model, states):
    return list(model.encoder.parameters())


def test_each_mode_is_one_object_chosen_by_its_config_name():
    assert type(build_engine("exact")) is ExactMode and type(build_engine("representation")) is RepresentationMode
    assert type(build_engine("subset", shared_params=["lstm"])) is SubsetMode
    every = build_engine("representation", update_every=3)
    assert isinstance(every, EveryKSteps) and type(every.mode) is RepresentationMode and every.k == 3
    for kwargs, field in (({"mode": "layerwise"}, "balancing.mode"), ({"shared_params": ["lstm"]}, "balancing.shared_params"),
                          ({"mode": "subset"}, "balancing.shared_params"), ({"update_every": 0}, "balancing.update_every"),
                          ({"vjp": "vmap"}, "balancing.vjp")):
        with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
            build_engine(**kwargs)


def test_batched_and_looped_products_give_the_same_rows(setup):
    from polytask.balancing.vjp import batched_products, looped_products

    model, words, labels = setup
    states, _ = model(words, labels)
    inputs = [*model.encoder.parameters(), model.heads["pos"].weight]  # the head is not reached from the states
    g = torch.Generator().manual_seed(0)
    cotangents = [[torch.randn(states.shape, generator=g)] for _ in range(3)]
    batched = batched_products([states], cotangents, inputs, retain_graph=True)
    looped = looped_products([states], cotangents, inputs, retain_graph=True)
    assert len(batched) == len(looped) == 3
    for b_row, l_row in zip(batched, looped):
        assert b_row[-1] is None and l_row[-1] is None
        for b, lo in zip(b_row[:-1], l_row[:-1]):
            torch.testing.assert_close(b, lo, atol=1e-6, rtol=1e-5)
    reference = torch.autograd.grad(states, inputs[:-1], cotangents[1][0], retain_graph=True)
    for b, r in zip(batched[1], reference):
        torch.testing.assert_close(b, r, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("vjp", ["batched", "loop"])
def test_jacobian_rows_equal_separate_autograd_calls(setup, vjp):
    model, words, labels = setup
    states, losses = model(words, labels)
    jacobian = build_engine("exact", vjp=vjp).task_jacobian(losses, model.context(states))
    reference = reference_gradients(model, words, labels, shared_params)
    for row, task in zip(jacobian.matrix(), jacobian.tasks):
        torch.testing.assert_close(row, reference[task], atol=1e-6, rtol=1e-5)
    matrix = jacobian.matrix()
    torch.testing.assert_close(jacobian.gramian(), matrix @ matrix.T, atol=1e-6, rtol=1e-5)
    for row in jacobian.rows:
        assert [g.shape for g in row] == [p.shape for p in model.encoder.parameters()]


def test_auto_strategy_probes_vmap_then_keeps_one(setup):
    model, words, labels = setup
    engine = build_engine("exact")
    for _ in range(3):
        states, losses = model(words, labels)
        engine.task_jacobian(losses, model.context(states))
    assert engine.strategy in ("batched", "loop")


def test_representation_mode_differentiates_the_representation(setup):
    model, words, labels = setup
    states, losses = model(words, labels)
    jacobian = build_engine("representation").task_jacobian(losses, model.context(states))
    assert jacobian.targets[0] is states
    reference = reference_gradients(model, words, labels, lambda m, s: [s])
    for row, task in zip(jacobian.matrix(), jacobian.tasks):
        torch.testing.assert_close(row, reference[task], atol=1e-6, rtol=1e-5)


def test_subset_mode_picks_parameters_by_prefix(setup):
    model, words, labels = setup
    states, losses = model(words, labels)
    jacobian = build_engine("subset", shared_params=["lstm.weight_hh_l1", "lstm.bias_hh_l1"]).task_jacobian(losses, model.context(states))
    chosen = [model.encoder["lstm"].weight_hh_l1, model.encoder["lstm"].weight_hh_l1_reverse,
              model.encoder["lstm"].bias_hh_l1, model.encoder["lstm"].bias_hh_l1_reverse]
    assert {id(t) for t in jacobian.targets} == {id(p) for p in chosen}
    with pytest.raises(ConfigError, match="balancing.shared_params"):
        build_engine("subset", shared_params=["decoder."]).task_jacobian(losses, model.context(states))


def test_heads_are_found_from_the_losses(setup):
    model, words, labels = setup
    states, losses = model(words, labels, ("pos", "ner"))
    found = task_specific_parameters(list(losses.values()), dict(model.encoder.named_parameters()), [states])
    expected = list(model.heads["pos"].parameters()) + list(model.heads["ner"].parameters())
    assert {id(p) for p in found} == {id(p) for p in expected}


def run_step(model, words, labels, balancer, tasks=tuple(TASKS), step=0):
    model.zero_grad(set_to_none=True)
    states, losses = model(words, labels, tasks)
    return balancer.backward(losses, model.context(states, step))


def own_head_gradients(model, words, labels, tasks):
    out = {}
    for task in tasks:
        _, losses = model(words, labels, tasks)
        params = list(model.heads[task].parameters())
        out[task] = torch.autograd.grad(losses[task], params)
    return out


class FixedWeights(GramianWeighting):
    def __init__(self, weights):
        self.fixed = weights

    def weights(self, gramian, tasks):
        return torch.tensor([self.fixed[t] for t in tasks], dtype=gramian.dtype)


@pytest.mark.parametrize("mode", ["exact", "representation", "subset"])
@pytest.mark.parametrize("tasks", [tuple(TASKS), ("chunk", "ner")])
def test_balancer_writes_weighted_shared_and_own_head_gradients(setup, mode, tasks):
    model, words, labels = setup
    weights = {"pos": 0.5, "chunk": 2.0, "ner": -1.0}
    balancer = GradientBalancer(FixedWeights(weights), list(TASKS), mode=mode,
                                shared_params=["lstm.weight_ih_l1"] if mode == "subset" else None)
    stats = run_step(model, words, labels, balancer, tasks)
    json.dumps(stats)
    assert set(stats["weights"]) == set(tasks) and set(stats["grad_norms"]) == set(tasks)
    per_task = reference_gradients(model, words, labels, shared_params, tasks)
    expected = sum(weights[t] * per_task[t] for t in tasks)
    got = torch.cat([p.grad.flatten() for p in model.encoder.parameters()])
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    own = own_head_gradients(model, words, labels, tasks)
    for task in TASKS:
        for param, reference in zip(model.heads[task].parameters(), own.get(task, [None, None])):
            if task in tasks:
                torch.testing.assert_close(param.grad, reference)
            else:
                assert param.grad is None


@pytest.mark.parametrize("method", ["mgda", "pcgrad", "gradvac", "cagrad", "nash_mtl", "imtl_g", "aligned_mtl", "upgrad", "dualproj", "graddrop"])
@pytest.mark.parametrize("mode", ["exact", "representation"])
def test_every_method_leaves_a_gradient_on_every_parameter(setup, method, mode):
    model, words, labels = setup
    balancer = build_balancer(method, list(TASKS), mode=mode)
    for step in range(2):
        stats = run_step(model, words, labels, balancer, step=step)
        json.dumps(stats)
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    json.dumps(balancer.state_dict())


def test_update_every_reuses_weights_with_one_backward(setup):
    model, words, labels = setup
    balancer = build_balancer("mgda", list(TASKS), update_every=3)
    first = run_step(model, words, labels, balancer)
    second = run_step(model, words, labels, balancer, step=1)
    assert first["recomputed"] and not second["recomputed"] and second["weights"] == first["weights"]
    per_task = reference_gradients(model, words, labels, shared_params)
    expected = sum(first["weights"][t] * per_task[t] for t in TASKS)
    torch.testing.assert_close(torch.cat([p.grad.flatten() for p in model.encoder.parameters()]), expected, atol=1e-6, rtol=1e-5)
    own = own_head_gradients(model, words, labels, TASKS)
    torch.testing.assert_close(model.heads["pos"].weight.grad, own["pos"][0])
    # a different task subset cannot reuse the cached weights
    assert run_step(model, words, labels, balancer, ("pos", "chunk"), step=2)["recomputed"]
    assert run_step(model, words, labels, balancer, ("pos", "chunk"), step=3)["recomputed"] is False
    assert run_step(model, words, labels, balancer, ("pos", "chunk"), step=4)["recomputed"] is False
    assert run_step(model, words, labels, balancer, ("pos", "chunk"), step=5)["recomputed"]


def test_balancer_state_round_trips(setup):
    model, words, labels = setup
    balancer = build_balancer("nash_mtl", list(TASKS), update_every=2)
    run_step(model, words, labels, balancer)
    state = json.loads(json.dumps(balancer.state_dict()))
    restored = build_balancer("nash_mtl", list(TASKS), update_every=2)
    restored.load_state_dict(state)
    assert restored.state_dict() == balancer.state_dict()


@pytest.mark.parametrize("t", [2, 6])
def test_blockwise_gramian_and_combination_match_the_flat_jacobian(t):
    from polytask.balancing.jacobian import TaskJacobian

    g = torch.Generator().manual_seed(t)
    targets = [torch.zeros(3, 4), torch.zeros(5)]
    rows = [[torch.randn(3, 4, generator=g), torch.randn(5, generator=g)] for _ in range(t)]
    jacobian = TaskJacobian([f"t{i}" for i in range(t)], rows, targets)
    matrix = jacobian.matrix()
    torch.testing.assert_close(jacobian.gramian(), matrix @ matrix.T)
    weights = torch.randn(t, generator=g)
    combined = torch.cat([c.flatten() for c in jacobian.combine(weights)])
    torch.testing.assert_close(combined, weights @ matrix)
