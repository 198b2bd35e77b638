"""Optimizers and learning-rate schedules from ``training``."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from polytask.config import TrainingConfig


def build_optimizer(parameters: Iterable[nn.Parameter] | list[dict], config: TrainingConfig) -> torch.optim.Optimizer:
    """AdamW (default), Adam or SGD with momentum over the given parameters or groups."""
    if config.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(parameters, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainingConfig, total_steps: int) -> LambdaLR:
    """Linear warm-up over ``warmup`` of the steps, then linear decay to zero (or constant)."""
    warmup = int(config.warmup * total_steps)

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if config.schedule == "constant":
            return 1.0
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return LambdaLR(optimizer, factor)
