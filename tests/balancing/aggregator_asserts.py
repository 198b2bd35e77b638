"""Property assertions for gradient aggregators, written once and applied to every registered method.

In the style of TorchJD's ``tests/unit/aggregation/_asserts.py``: each function states one
promise over a family of seeded random Jacobians. Random methods (GradDrop's draws, PCGrad's
order) are reseeded before every call, so two calls see the same draws.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from polytask.balancing.aggregation import GradientMethod, GramianWeighting

SEEDS = range(8)
TASK_COUNTS = (1, 2, 3, 5)
WIDTH = 7


def tasks_of(t: int) -> list[str]:
    return [f"task{i}" for i in range(t)]


def jacobians(t_values=TASK_COUNTS):
    """(seed, J) over seeded random T×P float64 matrices."""
    for seed in SEEDS:
        for t in t_values:
            yield seed, torch.randn(t, WIDTH, generator=torch.Generator().manual_seed(1000 * t + seed),
                                    dtype=torch.float64)


def update_of(factory: Callable[[], GradientMethod], jacobian: Tensor, tasks: list[str]) -> Tensor:
    """The update of a fresh method on ``jacobian`` (a Gramian weighting sees only J Jᵀ)."""
    method = factory()
    torch.manual_seed(0)
    if isinstance(method, GramianWeighting):
        weights = method(jacobian @ jacobian.T, tasks)
        assert weights.shape == (len(tasks),) and torch.isfinite(weights).all()
        return weights @ jacobian
    return method(jacobian, tasks)


def assert_expected_structure(factory) -> None:
    """One finite update of P coordinates for any number of tasks, one task included."""
    for _, jacobian in jacobians():
        update = update_of(factory, jacobian, tasks_of(len(jacobian)))
        assert update.shape == (WIDTH,) and torch.isfinite(update).all()


def assert_identical_gradients_keep_their_direction(factory) -> None:
    """When every task's gradient is g, the update is a·g with a > 0: nothing to balance, nothing turned."""
    for _, jacobian in jacobians():
        g = jacobian[0]
        update = update_of(factory, g.repeat(len(jacobian), 1), tasks_of(len(jacobian)))
        scale = (update @ g) / (g @ g)
        assert scale > 0 and torch.allclose(update, scale * g, atol=1e-6), (scale, update, g)


def assert_non_conflicting(factory) -> None:
    """⟨update, gᵢ⟩ ≥ 0 for every task (cosine tolerance 1e-4: the solvers' ridge)."""
    for _, jacobian in jacobians((2, 3, 5, 8)):
        update = update_of(factory, jacobian, tasks_of(len(jacobian)))
        cosines = (jacobian @ update) / (jacobian.norm(dim=1) * update.norm().clamp_min(1e-12))
        assert cosines.min() >= -1e-4, cosines


def assert_permutation_invariant(factory) -> None:
    """Reordering the tasks (with their names) leaves the update unchanged."""
    for seed, jacobian in jacobians((2, 3, 5)):
        tasks = tasks_of(len(jacobian))
        order = torch.randperm(len(jacobian), generator=torch.Generator().manual_seed(seed)).tolist()
        permuted = update_of(factory, jacobian[order], [tasks[i] for i in order])
        assert torch.allclose(update_of(factory, jacobian, tasks), permuted, atol=1e-6)


def assert_positively_homogeneous(factory) -> None:
    """Gradients scaled by λ > 0 give the update scaled by λ (the method reads directions, not units)."""
    for _, jacobian in jacobians((2, 3, 5)):
        tasks = tasks_of(len(jacobian))
        for scale in (0.01, 3.0):
            assert torch.allclose(update_of(factory, scale * jacobian, tasks),
                                  scale * update_of(factory, jacobian, tasks), rtol=1e-4, atol=1e-8)
