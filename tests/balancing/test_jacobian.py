"""Per-coordinate draws keyed by where a coordinate sits in the whole step, and GradDrop on them."""

from __future__ import annotations

import torch

from polytask.balancing.aggregators import GradDrop
from polytask.balancing.balancer import RepresentationRows
from polytask.balancing.jacobian import TaskJacobian, keyed_uniform


def test_a_coordinate_draws_the_same_in_any_tensor_that_holds_it() -> None:
    union = keyed_uniform(11, 2, torch.arange(9), (7, 5))
    shard = keyed_uniform(11, 2, torch.tensor([1, 4, 7]), (4, 5))  # another rank's rows, padded less far
    torch.testing.assert_close(shard, union[1::3, :4], rtol=0, atol=0)
    assert not torch.equal(keyed_uniform(12, 2, torch.arange(9), (7, 5)), union)  # another step
    assert not torch.equal(keyed_uniform(11, 3, torch.arange(9), (7, 5)), union)  # another layer


def test_keyed_draws_are_uniform_and_independent_of_their_neighbours() -> None:
    draws = keyed_uniform(5, 0, torch.arange(400), (25, 16))
    assert draws.dtype == torch.float32 and float(draws.min()) >= 0 and float(draws.max()) < 1
    flat = draws.flatten().double()
    assert abs(float(flat.mean()) - 0.5) < 0.005 and abs(float(flat.var()) - 1 / 12) < 0.002
    counts = torch.histc(flat, bins=20, min=0, max=1)
    expected = flat.numel() / 20
    assert float(((counts - expected) ** 2 / expected).sum()) < 45  # chi-square, 19 degrees of freedom: p ≈ 0.001
    for a, b in ((draws[:, :, :-1], draws[:, :, 1:]), (draws[:, :-1], draws[:, 1:]), (draws[:-1], draws[1:])):
        assert abs(float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])) < 0.01


def representation_jacobian(grads: list[torch.Tensor], examples: torch.Tensor) -> TaskJacobian:
    rows = [[g] for g in grads]
    return TaskJacobian([f"t{i}" for i in range(len(grads))], rows, [torch.zeros_like(grads[0])],
                        representation_rows=[RepresentationRows(0, examples)])


def test_graddrop_on_a_representation_is_the_same_on_any_split_of_the_step() -> None:
    """Two ranks hold examples 0::2 and 1::2 (padded to their own lengths, gradients ×2 as a rank's
    are): each rank's update is the union's at its coordinates (×2), so the ranks' sum is exact."""
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([5, 3, 6, 2, 4, 3])
    union = [torch.randn(6, 6, 4, generator=g) * (torch.arange(6) < lengths[:, None]).unsqueeze(-1) for _ in range(3)]
    torch.manual_seed(3)
    expected = GradDrop().aggregate_jacobian(representation_jacobian(union, torch.arange(6)))[0]
    for rank in range(2):
        mine = torch.arange(rank, 6, 2)
        width = int(lengths[mine].max())
        torch.manual_seed(3)  # every rank's generator is in the same state
        update = GradDrop().aggregate_jacobian(representation_jacobian([2 * u[mine, :width] for u in union], mine))[0]
        torch.testing.assert_close(update, 2 * expected[mine, :width])
    assert expected[0, 5:].abs().sum() == 0 and expected.abs().sum() > 0  # padding: no update


def test_graddrop_on_a_representation_keeps_the_positive_part_with_probability_purity() -> None:
    """4000 examples with the same gradients: each draws its own, so the kept part follows the purity."""
    g = torch.Generator().manual_seed(1)
    grads = [torch.randn(1, 3, 2, generator=g, dtype=torch.float64).expand(4000, 3, 2) for _ in range(3)]
    stacked = torch.stack([u[0] for u in grads])
    positive, negative = stacked.clamp(min=0).sum(0), stacked.clamp(max=0).sum(0)
    purity = 0.5 * (1 + stacked.sum(0) / stacked.abs().sum(0))
    draws = GradDrop().aggregate_jacobian(representation_jacobian(grads, torch.arange(4000)))[0]
    assert bool((torch.isclose(draws, positive) | torch.isclose(draws, negative)).all())
    torch.testing.assert_close(torch.isclose(draws, positive).double().mean(0), purity, atol=0.03, rtol=0)
