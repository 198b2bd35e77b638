"""Properties the gradient aggregators promise, over seeded random and crafted gradient matrices."""

from __future__ import annotations

import itertools
import math
import sys

import numpy as np
import pytest
import torch

from polytask.balancing.aggregation import Aggregator, GramianWeighting
from polytask.balancing.aggregators import (
    IMTLG,
    MGDA,
    AlignedMTL,
    CAGrad,
    DualProj,
    GradDrop,
    GradVac,
    NashMTL,
    PCGrad,
    UPGrad,
)
from polytask.balancing.registry import available_methods, build_balancer
from polytask.errors import ConfigError, MissingDependencyError

AGGREGATOR_NAMES = ["mgda", "pcgrad", "gradvac", "cagrad", "nash_mtl", "imtl_g", "aligned_mtl", "upgrad", "dualproj", "graddrop"]


def update_of(method, jacobian: torch.Tensor, tasks: list[str]) -> torch.Tensor:
    jacobian = jacobian.double()
    if isinstance(method, GramianWeighting):
        return method(jacobian @ jacobian.T, tasks) @ jacobian
    return method(jacobian, tasks)


def random_jacobian(seed: int, t: int, p: int = 9) -> torch.Tensor:
    return torch.randn(t, p, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def tasks_of(t: int) -> list[str]:
    return [f"task{i}" for i in range(t)]


def test_every_aggregator_is_registered_with_its_paper():
    methods = available_methods()
    for name in AGGREGATOR_NAMES:
        info = methods[name]
        assert info.kind == "gradient aggregator" and info.needs in ("gradients", "gramian")
        assert any(str(year) in info.paper for year in range(2017, 2025)), info.paper


# The documented scale of each method's update when all task gradients equal g (T tasks).
IDENTICAL_SCALE = {
    "mgda": lambda t, g: g,
    "upgrad": lambda t, g: g,
    "dualproj": lambda t, g: g,
    "imtl_g": lambda t, g: g,
    "aligned_mtl": lambda t, g: g,
    "pcgrad": lambda t, g: t * g,
    "gradvac": lambda t, g: t * g,
    "graddrop": lambda t, g: t * g,
    "cagrad": lambda t, g: (1 + 0.4) / (1 + 0.4**2) * g,
    "nash_mtl": lambda t, g: math.sqrt(t) * g / g.norm(),  # with max_norm=0 (no cap)
}


@pytest.mark.parametrize("name", AGGREGATOR_NAMES)
@pytest.mark.parametrize("t", [1, 2, 3, 5])
def test_identical_gradients_give_that_gradient_up_to_the_documented_scale(name, t):
    torch.manual_seed(0)
    options = {"max_norm": 0.0} if name == "nash_mtl" else {}
    method = available_methods()[name].factory(**options)
    g = random_jacobian(t, 1, 11)[0] * 3.0
    update = update_of(method, g.expand(t, -1).clone(), tasks_of(t))
    torch.testing.assert_close(update, IDENTICAL_SCALE[name](t, g), atol=1e-4, rtol=1e-3)


def test_nash_mtl_identical_gradients_with_default_cap_give_unit_direction():
    g = random_jacobian(1, 1)[0] * 5
    update = update_of(NashMTL(), g.expand(3, -1).clone(), tasks_of(3))
    torch.testing.assert_close(update, g / g.norm(), atol=1e-6, rtol=1e-5)


def brute_force_min_norm(jacobian: torch.Tensor, steps: int) -> float:
    t = jacobian.shape[0]
    grid = np.linspace(0, 1, steps + 1)
    best = math.inf
    j = jacobian.numpy()
    for point in itertools.product(grid, repeat=t - 1):
        if sum(point) <= 1 + 1e-12:
            w = np.array([*point, 1 - sum(point)])
            best = min(best, float(np.linalg.norm(w @ j)))
    return best


@pytest.mark.parametrize("t,steps", [(2, 4000), (3, 300)])
@pytest.mark.parametrize("seed", range(4))
def test_mgda_returns_the_min_norm_point_of_the_convex_hull(t, steps, seed):
    jacobian = random_jacobian(seed, t, 4)  # few dimensions: the hull often misses the origin
    w = MGDA()(jacobian @ jacobian.T, tasks_of(t))
    assert torch.all(w >= -1e-9) and abs(float(w.sum()) - 1) < 1e-9
    ours = float((w @ jacobian).norm())
    brute = brute_force_min_norm(jacobian, steps)
    assert ours <= brute + 1e-9
    assert brute - ours < 5e-3 * max(1.0, brute)


def test_mgda_min_norm_point_is_orthogonal_to_its_active_gradients():
    jacobian = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    w = MGDA()(jacobian @ jacobian.T, tasks_of(2))
    torch.testing.assert_close(w, torch.tensor([0.8, 0.2], dtype=torch.float64), atol=1e-6, rtol=0)


def test_mgda_matches_torchjd_frank_wolfe_weights():
    from torchjd.aggregation import MGDAWeighting

    for seed in range(5):
        jacobian = random_jacobian(seed, 3)
        gramian = jacobian @ jacobian.T
        ours = MGDA()(gramian, tasks_of(3))
        theirs = MGDAWeighting(epsilon=1e-9, max_iters=20000)(gramian)
        assert float((ours @ jacobian).norm()) <= float((theirs @ jacobian).norm()) + 1e-8
        torch.testing.assert_close(ours @ jacobian, theirs @ jacobian, atol=2e-3, rtol=0)


@pytest.mark.parametrize("seed", range(20))
def test_pcgrad_update_conflicts_with_neither_task_for_two_tasks(seed):
    torch.manual_seed(seed)
    jacobian = random_jacobian(seed, 2, 5)
    update = update_of(PCGrad(), jacobian, tasks_of(2))
    assert torch.all(jacobian @ update >= -1e-9)


def explicit_pcgrad(jacobian: torch.Tensor) -> torch.Tensor:
    """Algorithm 1 of Yu et al. 2020 in gradient space, with TorchJD's order of random draws."""
    t = jacobian.shape[0]
    projected = []
    for i in range(t):
        g = jacobian[i].clone()
        for j in torch.randperm(t).tolist():
            if j != i and g @ jacobian[j] < 0:
                g = g - (g @ jacobian[j]) / (jacobian[j] @ jacobian[j]) * jacobian[j]
        projected.append(g)
    return torch.stack(projected).sum(0)


def test_pcgrad_on_the_gramian_equals_gradient_space_surgery():
    for seed in range(5):
        jacobian = random_jacobian(seed, 4)
        torch.manual_seed(seed)
        ours = update_of(PCGrad(), jacobian, tasks_of(4))
        torch.manual_seed(seed)
        torch.testing.assert_close(ours, explicit_pcgrad(jacobian))


@pytest.mark.parametrize("method", [UPGrad, DualProj], ids=["upgrad", "dualproj"])
@pytest.mark.parametrize("t", [2, 3, 6])
def test_dual_cone_methods_conflict_with_no_task(method, t):
    for seed in range(6):
        jacobian = random_jacobian(seed, t, 7)
        jacobian = jacobian / jacobian.norm()
        update = update_of(method(), jacobian, tasks_of(t))
        assert torch.all(jacobian @ update >= -1e-6)


INVARIANT = {"mgda": MGDA, "upgrad": UPGrad, "dualproj": DualProj, "imtl_g": IMTLG, "aligned_mtl": AlignedMTL,
             "cagrad": CAGrad, "nash_mtl": NashMTL}


@pytest.mark.parametrize("name", sorted(INVARIANT))
def test_permuting_tasks_permutes_weights(name):
    for seed in range(3):
        jacobian = random_jacobian(seed, 4, 6)
        gramian = jacobian @ jacobian.T
        permutation = torch.randperm(4, generator=torch.Generator().manual_seed(seed))
        weights = INVARIANT[name]()(gramian, tasks_of(4))
        permuted = INVARIANT[name]()(gramian[permutation][:, permutation], [tasks_of(4)[i] for i in permutation])
        torch.testing.assert_close(permuted, weights[permutation], atol=2e-4, rtol=2e-3)


def test_cagrad_matches_torchjd_without_rescaling():
    from torchjd.aggregation import CAGradWeighting

    for seed in range(4):
        jacobian = random_jacobian(seed, 3)
        gramian = jacobian @ jacobian.T
        ours = CAGrad(c=0.5, rescale=0)(gramian, tasks_of(3))
        theirs = CAGradWeighting(c=0.5)(gramian)
        torch.testing.assert_close(ours @ jacobian, theirs @ jacobian, atol=2e-3, rtol=2e-3)


def test_cagrad_with_c_zero_is_the_mean_gradient():
    jacobian = random_jacobian(0, 3)
    torch.testing.assert_close(CAGrad(c=0.0)(jacobian @ jacobian.T, tasks_of(3)), torch.full((3,), 1 / 3, dtype=torch.float64))


def test_nash_mtl_solves_the_bargaining_equation():
    method = NashMTL(max_norm=0.0)
    for seed in range(5):
        jacobian = random_jacobian(seed, 3, 8) * (seed + 1)
        gramian = jacobian @ jacobian.T
        alpha = method(gramian, tasks_of(3))
        assert torch.all(alpha > 0)
        torch.testing.assert_close(alpha * (gramian @ alpha), torch.ones(3, dtype=torch.float64), atol=1e-6, rtol=1e-6)


def test_nash_mtl_caps_the_update_norm_and_keeps_state_per_task():
    method = NashMTL(max_norm=0.5, update_weights_every=2)
    jacobian = random_jacobian(0, 3) * 10
    gramian = jacobian @ jacobian.T
    alpha = method(gramian, ["a", "b", "c"])
    assert float((alpha @ jacobian).norm()) <= 0.5 + 1e-9
    state = method.state_dict()
    assert set(state["alpha"]) == {"a", "b", "c"}
    restored = NashMTL(max_norm=0.5, update_weights_every=2)
    restored.load_state_dict(state)
    # the second call reuses the stored weights in both objects
    torch.testing.assert_close(restored(gramian * 4, ["a", "b", "c"]), method(gramian * 4, ["a", "b", "c"]))
    sub = jacobian[:2] @ jacobian[:2].T
    assert method(sub, ["a", "b"]).shape == (2,)


def test_gradvac_matches_torchjd_on_the_same_gramians_and_random_draws():
    from torchjd.aggregation import GradVacWeighting

    ours, theirs = GradVac(beta=0.3), GradVacWeighting(beta=0.3)
    for seed in range(6):
        jacobian = random_jacobian(seed, 3)
        gramian = jacobian @ jacobian.T
        torch.manual_seed(seed)
        w_ours = ours(gramian, tasks_of(3))
        torch.manual_seed(seed)
        w_theirs = theirs(gramian)
        torch.testing.assert_close(w_ours, w_theirs)


def test_gradvac_targets_follow_task_names_across_subsets():
    method = GradVac(beta=1.0)
    jacobian = random_jacobian(3, 3)
    method(jacobian @ jacobian.T, ["a", "b", "c"])
    cosine_ac = float(jacobian[0] @ jacobian[2] / (jacobian[0].norm() * jacobian[2].norm()))
    sub = jacobian[[0, 2]]
    method(sub @ sub.T, ["a", "c"])  # b absent: its targets stay, a|c updates
    state = method.state_dict()["targets"]
    assert ("a|b" in state and abs(state["a|c"] - cosine_ac) < 1e-6) or state["a|c"] > cosine_ac
    restored = GradVac(beta=1.0)
    restored.load_state_dict(method.state_dict())
    assert restored.state_dict() == method.state_dict()


def test_graddrop_keeps_one_sign_per_coordinate():
    torch.manual_seed(0)
    jacobian = random_jacobian(0, 4, 500)
    update = GradDrop()(jacobian, tasks_of(4))
    positive = jacobian.clamp(min=0).sum(0)
    negative = jacobian.clamp(max=0).sum(0)
    chosen = torch.isclose(update, positive) | torch.isclose(update, negative)
    assert bool(chosen.all())
    # coordinates where all tasks agree keep everything
    agree = (jacobian > 0).all(0)
    torch.testing.assert_close(update[agree], jacobian.sum(0)[agree])


def test_graddrop_full_leak_is_the_sum():
    jacobian = random_jacobian(1, 3)
    torch.testing.assert_close(GradDrop(leak=1.0)(jacobian, tasks_of(3)), jacobian.sum(0))


def test_methods_have_the_declared_interface():
    for name in AGGREGATOR_NAMES:
        method = available_methods()[name].factory()
        needs = available_methods()[name].needs
        assert isinstance(method, GramianWeighting if needs == "gramian" else Aggregator)


# ---------------------------------------------------------------- registry / configuration errors
def test_build_balancer_reports_user_mistakes_by_field():
    with pytest.raises(ConfigError, match="balancing.method"):
        build_balancer("nope", ["a"])
    with pytest.raises(ConfigError, match="balancing.options"):
        build_balancer("cagrad", ["a"], {"cc": 1})
    with pytest.raises(ConfigError, match="balancing.options"):
        build_balancer("cagrad", ["a"], {"c": -1})
    with pytest.raises(ConfigError, match="balancing.mode"):
        build_balancer("upgrad", ["a"], mode="sometimes")
    with pytest.raises(ConfigError, match="balancing.mode"):
        build_balancer("graddrop", ["a"], mode="subset", shared_params=["enc"])
    with pytest.raises(ConfigError, match="balancing.shared_params"):
        build_balancer("upgrad", ["a"], mode="subset")
    with pytest.raises(ConfigError, match="balancing.update_every"):
        build_balancer("upgrad", ["a"], update_every=0)
    with pytest.raises(ConfigError, match="balancing.update_every"):
        build_balancer("graddrop", ["a"], update_every=3)
    with pytest.raises(ConfigError, match="balancing.mode"):
        build_balancer("ew", ["a"], mode="representation")


def test_build_balancer_passes_method_options():
    balancer = build_balancer("cagrad", ["a", "b"], {"c": 0.2}, mode="representation", update_every=4)
    assert balancer.method.c == 0.2 and balancer.mode == "representation" and balancer.update_every == 4


def test_missing_solver_is_reported_at_construction(monkeypatch):
    monkeypatch.setitem(sys.modules, "quadprog", None)  # importing it now fails as if it were not installed
    with pytest.raises(MissingDependencyError, match="quadprog"):
        build_balancer("upgrad", ["a"])
    with pytest.raises(MissingDependencyError, match="quadprog"):
        build_balancer("mgda", ["a"])


def test_graddrop_blockwise_keeps_one_sign_per_coordinate_with_the_purity_as_probability():
    """The engine's block-by-block path: each coordinate is the sum of the positive parts (with
    probability P = (1 + S/M)/2) or of the negative parts; over many draws the mean matches."""
    from polytask.balancing.jacobian import TaskJacobian

    torch.manual_seed(0)
    jacobian = random_jacobian(3, 3, 12)
    targets = [torch.zeros(2, 3), torch.zeros(6)]
    rows = [[g[:6].view(2, 3), g[6:]] for g in jacobian]
    blocks = TaskJacobian(tasks_of(3), rows, targets)
    positive, negative = jacobian.clamp(min=0).sum(0), jacobian.clamp(max=0).sum(0)
    purity = 0.5 * (1 + jacobian.sum(0) / jacobian.abs().sum(0))
    draws = torch.stack([torch.cat([u.flatten() for u in GradDrop().aggregate_jacobian(blocks)]) for _ in range(4000)])
    assert bool((torch.isclose(draws, positive) | torch.isclose(draws, negative)).all())
    kept_positive = torch.isclose(draws, positive).double().mean(0)
    torch.testing.assert_close(kept_positive, purity.double(), atol=0.03, rtol=0)
    leaky = torch.cat([u.flatten() for u in GradDrop(leak=1.0).aggregate_jacobian(blocks)])
    torch.testing.assert_close(leaky, jacobian.sum(0))


def test_graddrop_arithmetic_form_equals_the_masked_definition_under_the_same_draw(monkeypatch):
    """The update is computed without masks; it must equal the paper's masked sum for the same U,
    including ties P = U (neither part kept), zero-magnitude coordinates and a partial leak."""
    torch.manual_seed(4)
    jacobian = random_jacobian(5, 3, 40)
    jacobian[:, :4] = 0  # M = 0: P = ½, nothing to keep
    total, magnitude = jacobian.sum(0), jacobian.abs().sum(0)
    purity = 0.5 * (1 + torch.where(magnitude > 0, total / magnitude.clamp(min=1e-30), 0))
    draw = torch.rand_like(purity)
    draw[4:8] = purity[4:8]  # exact ties
    monkeypatch.setattr(torch, "rand_like", lambda like: draw.clone())
    positive, negative = jacobian.clamp(min=0).sum(0), jacobian.clamp(max=0).sum(0)
    masked = torch.where(purity > draw, positive, 0) + torch.where(purity < draw, negative, 0)
    torch.testing.assert_close(GradDrop()(jacobian, tasks_of(3)), masked)
    assert bool((GradDrop()(jacobian, tasks_of(3))[:8] == 0).all())
    torch.testing.assert_close(GradDrop(leak=0.25)(jacobian, tasks_of(3)), 0.25 * total + 0.75 * masked)
