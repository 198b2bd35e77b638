"""The private PyTorch APIs polytask uses still exist and behave as the gradient engine assumes."""

from __future__ import annotations

import warnings
from functools import reduce

import torch

from polytask.balancing import torch_private


def test_every_private_api_still_exists() -> None:
    for name in torch_private.PRIVATE_APIS:
        path = name.split(".")[1:]
        assert callable(reduce(getattr, path, torch)), name


def test_foreach_helpers_compute_what_they_say() -> None:
    a, b = [torch.ones(3), torch.arange(2.0)], [torch.full((3,), 2.0), torch.ones(2)]
    assert all(torch.equal(x, y * 3) for x, y in zip(torch_private.foreach_mul(a, 3.0), a))
    torch_private.foreach_add_(a, b, alpha=0.5)
    assert torch.equal(a[0], torch.full((3,), 2.0)) and torch.equal(a[1], torch.tensor([0.5, 1.5]))
    torch_private.foreach_div_(a, 2.0)
    assert torch.equal(a[0], torch.ones(3))


def test_vmap_fallback_probe_sees_a_slice_by_slice_op_and_restores_the_setting() -> None:
    before = torch._C._debug_only_are_vmap_fallback_warnings_enabled()
    x = torch.randn(3, 4, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch_private.VmapFallbackProbe(active=True) as probe:
            # an op without a vmap batching rule in the backward: vmap runs it slice by slice
            y = torch.linalg.slogdet(x @ x.T + torch.eye(3))[1]
            torch.autograd.grad(y, x, grad_outputs=torch.ones(2), is_grads_batched=True)
    assert isinstance(probe.fell_back, bool)
    assert torch._C._debug_only_are_vmap_fallback_warnings_enabled() == before
    assert torch_private.VmapFallbackProbe(active=False).fell_back is False  # inactive: probes nothing
