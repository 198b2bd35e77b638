"""Helpers of the TorchJD-backed gradient methods: building the TorchJD weighting (its optional solvers
checked at construction) and trace normalisation."""

from __future__ import annotations

from importlib import import_module

from torch import Tensor

from polytask.dependencies import require


def torchjd_weighting(class_name: str, feature: str, *, quadprog: dict | None = None, **kwargs):
    """An instance of ``torchjd.aggregation.<class_name>``; its optional deps are checked here too.

    ``quadprog``: options of TorchJD's quadprog dual-cone projector, for the methods that use it.
    """
    require("torchjd", feature, "balancing")
    if quadprog is not None:
        require("quadprog", feature, "balancing")
        require("qpsolvers", feature, "balancing")
        kwargs["projector"] = import_module("torchjd._linalg").QuadprogProjector(**quadprog)
    aggregation = import_module("torchjd.aggregation")
    return getattr(aggregation, class_name)(**kwargs)


def trace_normalized(gramian: Tensor) -> Tensor:
    """G / tr(G), for scale-invariant weightings whose solvers use absolute tolerances.

    TorchJD's projector zeroes Gramians with trace below its ``norm_eps`` (tiny late-training
    gradients would silently become the plain mean); normalising first keeps the projection.
    """
    trace = float(gramian.diagonal().sum())
    return gramian / trace if trace > 0 else gramian
