"""The private PyTorch APIs polytask relies on, in one place.

Why: a private API can change in any PyTorch release; with every use here,
``tests/balancing/test_torch_private.py`` fails on the release that removes one, instead of a
training run failing somewhere in the gradient engine.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import Tensor

#: every private name used below (the test checks that each still exists)
PRIVATE_APIS = ("torch._foreach_mul", "torch._foreach_add_", "torch._foreach_div_",
                "torch._C._debug_only_are_vmap_fallback_warnings_enabled",
                "torch._C._debug_only_display_vmap_fallback_warnings")


def foreach_mul(tensors: Sequence[Tensor], scalar: float) -> list[Tensor]:
    """``[t * scalar for t in tensors]`` in one fused kernel launch per device and dtype."""
    return list(torch._foreach_mul(list(tensors), scalar))


def foreach_add_(tensors: Sequence[Tensor], others: Sequence[Tensor], alpha: float = 1.0) -> None:
    """``t += alpha * o`` for each pair, in place."""
    torch._foreach_add_(list(tensors), list(others), alpha=alpha)


def foreach_div_(tensors: Sequence[Tensor], scalar: float) -> None:
    """``t /= scalar`` for each tensor, in place."""
    torch._foreach_div_(list(tensors), scalar)


class VmapFallbackProbe:
    """Records whether vmap ran an op slice by slice (its "performance drop" warning) inside the block."""

    def __init__(self, active: bool):
        self.active, self.fell_back = active, False

    def __enter__(self) -> VmapFallbackProbe:
        if self.active:
            self._previous = torch._C._debug_only_are_vmap_fallback_warnings_enabled()
            torch._C._debug_only_display_vmap_fallback_warnings(True)
            self._catcher = warnings.catch_warnings(record=True)
            self._caught = self._catcher.__enter__()
            warnings.simplefilter("always")
        return self

    def __exit__(self, *exc) -> None:
        if self.active:
            self._catcher.__exit__(*exc)
            torch._C._debug_only_display_vmap_fallback_warnings(self._previous)
            self.fell_back = any("performance drop" in str(w.message) for w in self._caught)
            for w in self._caught:
                if "performance drop" not in str(w.message):
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


__all__ = ["PRIVATE_APIS", "VmapFallbackProbe", "foreach_add_", "foreach_div_", "foreach_mul"]
