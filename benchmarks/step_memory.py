"""Memory of one training step, shared by the benchmarks: persistent bytes and the step's allocation peak.

Why one copy: ``balancing_overhead.py`` and ``architectures.py`` report peak memory as a ratio
to a baseline row of the same run, so both must count the same bytes the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def persistent_bytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """The model's parameters and the optimizer's tensor state, in bytes."""
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    state = sum(v.numel() * v.element_size() for s in optimizer.state.values() for v in s.values()
                if isinstance(v, Tensor))
    return params + state


def step_peak_bytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: Callable[[], None]) -> int:
    """Persistent bytes + the peak of tensor bytes allocated while ``step()`` runs (the CPU profiler's memory events).

    The gradients are freed before profiling: frees of blocks the profiler never saw allocated
    would otherwise lower the running total. ``step`` must not zero them again.
    """
    from torch.profiler import ProfilerActivity, profile

    optimizer.zero_grad(set_to_none=True)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return persistent_bytes(model, optimizer) + peak
