"""Optimizers, parameter groups and learning-rate schedules from ``training``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from polytask.config import TrainingConfig
from polytask.models.multitask import MultiTaskModel


def shared_layer_groups(model: MultiTaskModel) -> list[list[nn.Parameter]]:
    """``model.layer_groups()`` (the encoder's, plus the sharing architecture's shared parts) restricted to
    trainable shared parameters, checked to cover each once.

    A task's own parameters (per-task adapters, gates, own towers) are task-specific, like its head, and
    left out. Why check: a parameter missing from every group would escape layer-wise decay and freezing.
    """
    groups = [[p for p in group if p.requires_grad] for group in model.layer_groups()]
    shared = model.shared_parameters()
    counts = Counter(id(p) for group in groups for p in group)
    names = {id(p): name for name, p in shared.items()}
    repeated = sorted(names.get(i, "?") for i, n in counts.items() if n > 1)
    missing = sorted(name for name, p in shared.items() if id(p) not in counts)
    if repeated or missing:
        raise ValueError(f"{type(model.encoder).__name__}.layer_groups() and {type(model.sharing).__name__}"
                         f".extend_layer_groups() must hold every trainable shared parameter once; "
                         f"missing {missing}, repeated {repeated}")
    return groups


def build_param_groups(model: MultiTaskModel, method_parameters: Iterable[nn.Parameter],
                       config: TrainingConfig) -> list[dict[str, Any]]:
    """The optimizer's groups: task-specific parameters at ``lr``, encoder layer groups at ``encoder_lr`` with decay.

    Encoder group k of L gets ``encoder_lr * layer_decay ** (L - 1 - k)``: discriminative fine-tuning
    (Howard & Ruder 2018, ULMFiT, ACL) / layer-wise learning-rate decay (Clark et al. 2020, ELECTRA,
    ICLR). The ``heads`` group holds every task-specific parameter (heads, and a task's own encoder
    parameters such as per-task adapters); a balancing method's own parameters train at ``lr``
    without weight decay. Every parameter trainable now is included, also those the encoder
    freezer will hold fixed for a while: a frozen parameter has no gradient, so the optimizer
    skips it (no update, no weight decay) and the optimizer, its state and the schedule stay one
    object from the first step to the last.
    """
    layers = shared_layer_groups(model)
    shared = {id(p) for group in layers for p in group}
    heads = [p for p in model.parameters() if p.requires_grad and id(p) not in shared]
    groups: list[dict[str, Any]] = [{"name": "heads", "params": heads, "lr": config.lr}] if heads else []
    encoder_lr = config.encoder_lr if config.encoder_lr is not None else config.lr
    for k, params in enumerate(layers):
        if params:
            lr = encoder_lr * config.layer_decay ** (len(layers) - 1 - k)
            groups.append({"name": f"encoder.{k}", "params": params, "lr": lr})
    method = list(method_parameters)
    if method:
        groups.append({"name": "method", "params": method, "lr": config.lr, "weight_decay": 0.0})
    return groups


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
