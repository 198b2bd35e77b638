"""Vector-Jacobian products of several cotangents through one graph, batched (vmap) or looped.

Why: every mode of the gradient engine needs T products cᵢᵀ ∂roots/∂inputs. Batching them (one
``torch.autograd.grad`` call with ``is_grads_batched=True``: vmap over the backward graph) wins
where every backward op has a vmap batching rule (linear layers, convolutions, the native LSTM
cell); looping (T calls sharing one retained graph) wins where one does not (oneDNN's fused LSTM
backward on CPU, which vmap runs slice by slice). ``auto`` batches the first time and keeps
batching unless vmap reported such a fallback, then loops.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from polytask.balancing import torch_private
from polytask.errors import ConfigError

VjpStrategy = Literal["auto", "batched", "loop"]
VJP_STRATEGIES: tuple[str, ...] = ("auto", "batched", "loop")


class VectorJacobianProducts:
    """``products(roots, cotangents, inputs)``: one row of input gradients per cotangent, by the chosen strategy."""

    def __init__(self, strategy: VjpStrategy = "auto"):
        if strategy not in VJP_STRATEGIES:
            raise ConfigError(f"unknown vjp strategy {strategy!r}; choose one of {', '.join(VJP_STRATEGIES)}",
                              field="balancing.vjp")
        self.requested = strategy
        self._batched_ok: bool | None = None  # auto: what the first batched call's probe found

    @property
    def strategy(self) -> str | None:
        """The strategy in use (``None`` while ``auto`` has not probed yet)."""
        if self.requested != "auto":
            return self.requested
        if self._batched_ok is None:
            return None
        return "batched" if self._batched_ok else "loop"

    def state_dict(self) -> dict[str, bool | None]:
        """What ``auto`` found, so a resumed run keeps the strategy (batched and looped sums differ in rounding)."""
        return {"batched_ok": self._batched_ok}

    def load_state_dict(self, state: dict[str, bool | None]) -> None:
        if "batched_ok" in state:
            self._batched_ok = None if state["batched_ok"] is None else bool(state["batched_ok"])

    def products(self, roots: Sequence[Tensor], cotangents: Sequence[Sequence[Tensor]], inputs: Sequence[Tensor],
                 *, retain_graph: bool) -> list[list[Tensor | None]]:
        """``rows[i][k] = cotangents[i]ᵀ ∂roots/∂inputs[k]`` by this strategy (see ``batched_products``)."""
        if (self.strategy or "batched") == "loop":
            return looped_products(roots, cotangents, inputs, retain_graph=retain_graph)
        with torch_private.VmapFallbackProbe(active=self._batched_ok is None) as probe:
            rows = batched_products(roots, cotangents, inputs, retain_graph=retain_graph)
        if self._batched_ok is None:
            self._batched_ok = not probe.fell_back
        return rows


def batched_products(roots: Sequence[Tensor], cotangents: Sequence[Sequence[Tensor]], inputs: Sequence[Tensor],
                     *, retain_graph: bool) -> list[list[Tensor | None]]:
    """``rows[i][k] = cotangents[i]ᵀ ∂roots/∂inputs[k]`` (``cotangents[i][j]`` goes with ``roots[j]``), one vmapped call.

    ``None`` where ``inputs[k]`` is not reached from the roots; ``retain_graph`` keeps the graph afterwards.
    """
    stacked = [torch.stack([c[j] for c in cotangents]) for j in range(len(roots))]
    grads = torch.autograd.grad(list(roots), list(inputs), grad_outputs=stacked, is_grads_batched=True,
                                retain_graph=retain_graph, allow_unused=True)
    return [[g[i] if g is not None else None for g in grads] for i in range(len(cotangents))]


def looped_products(roots: Sequence[Tensor], cotangents: Sequence[Sequence[Tensor]], inputs: Sequence[Tensor],
                    *, retain_graph: bool) -> list[list[Tensor | None]]:
    """What ``batched_products`` returns, by one backward call per cotangent through the retained graph."""
    return [list(torch.autograd.grad(list(roots), list(inputs), grad_outputs=list(cotangent),
                                     retain_graph=retain_graph or i < len(cotangents) - 1, allow_unused=True))
            for i, cotangent in enumerate(cotangents)]


__all__ = ["VJP_STRATEGIES", "VectorJacobianProducts", "VjpStrategy", "batched_products", "looped_products"]
