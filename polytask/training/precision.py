"""Mixed precision: autocast for the forward pass, a gradient scaler for fp16, skipped non-finite steps.

Why: bf16/fp16 forward passes are what makes large encoders fit and run fast on accelerators.
``training.precision: fp32 | bf16 | fp16``; bf16 also runs on CPUs. Parameters and optimizer state
stay fp32 (autocast, Micikevicius et al. 2018, "Mixed Precision Training", ICLR). fp16 multiplies
every backward pass by ``torch.amp.GradScaler``'s dynamic loss scale, which the balancer's reduce
hook takes out of every per-task gradient before a Gramian, weights or projection is computed.
A step whose gradients hold inf or NaN is not applied, in every precision, and is counted.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch

PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """The forward pass's autocast context and the optimizer step under a loss scale."""

    def __init__(self, name: str, device: torch.device):
        if name not in PRECISIONS:
            from polytask.errors import ConfigError

            raise ConfigError(f"unknown precision {name!r}; choose one of {', '.join(PRECISIONS)}",
                              field="training.precision")
        self.name, self.device = name, device
        self.dtype = _DTYPES[name]
        self.scaler = torch.amp.GradScaler(device.type, enabled=name == "fp16")

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    @property
    def scale(self) -> float:
        """The loss scale of this step's backward passes (1 unless fp16)."""
        if not self.scaler.is_enabled():
            return 1.0
        return float(self.scaler.scale(torch.ones((), device=self.device)))  # (also creates the scale tensor)

    def step(self, optimizer: torch.optim.Optimizer, parameters: Iterable[torch.nn.Parameter],
             clip_norm: float | None) -> bool:
        """Unscale, clip ``parameters`` to ``clip_norm`` and step; ``False`` if the gradients were not finite."""
        parameters = list(parameters)
        if self.scaler.is_enabled():
            self.scaler.unscale_(optimizer)
        if clip_norm:
            norm = torch.nn.utils.clip_grad_norm_(parameters, clip_norm)
        else:
            norm = torch.nn.utils.get_total_norm([p.grad for p in parameters if p.grad is not None])
        finite = math.isfinite(float(norm))
        if self.scaler.is_enabled():
            self.scaler.step(optimizer)  # skips the step itself when it found inf/NaN
            self.scaler.update()
        elif finite:
            optimizer.step()
        return finite

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(dict(state["scaler"]))


__all__ = ["PRECISIONS", "Precision"]
