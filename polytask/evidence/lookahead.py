"""The lookahead step of inter-task affinity: where one task's gradient alone would move the shared parameters.

Why: TAG (Fifty et al. 2021, Efficiently Identifying Task Groupings for Multi-Task Learning,
NeurIPS) takes the lookahead with the training optimizer's own update rule. Under Adam each
coordinate's step is scaled by the optimizer's second-moment estimate, so a task with large raw
gradients (an unnormalised regression) does not dominate the affinities by its scale alone, as
it does under a plain SGD step. The step isolates task i: no momentum, no weight decay, and the
optimizer's state is read, never changed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from polytask.errors import PolytaskError


@dataclass(frozen=True)
class LookaheadStep:
    """θ'_k = θ_k − rate_k · g_k / denominator_k for each shared parameter k (denominator ``None``: 1).

    ``rule`` names the update rule that produced it (``sgd``, ``adam``).
    """

    rule: str
    rates: list[float]
    denominators: list[Tensor | None]

    def moves(self) -> bool:
        return any(self.rates)

    def apply(self, parameters: Sequence[nn.Parameter], gradients: Sequence[Tensor]) -> None:
        """Move ``parameters`` in place along ``gradients`` (one per parameter)."""
        with torch.no_grad():
            for p, g, rate, denominator in zip(parameters, gradients, self.rates, self.denominators):
                if rate:
                    p.sub_(rate * g if denominator is None else rate * g / denominator)


LookaheadRule = Callable[[torch.optim.Optimizer, Sequence[nn.Parameter]], LookaheadStep | None]
"""The lookahead step for ``parameters`` under an optimizer's current state; ``None``: not defined yet (skip)."""


def parameter_rates(optimizer: torch.optim.Optimizer, parameters: Sequence[nn.Parameter]) -> list[float]:
    """Each parameter's current learning rate (its optimizer group's ``lr``; 0 if it is not optimised)."""
    rate = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    return [float(rate.get(id(p), 0.0)) for p in parameters]


def sgd_step(optimizer: torch.optim.Optimizer, parameters: Sequence[nn.Parameter]) -> LookaheadStep:
    """θ' = θ − η·g_i: the SGD lookahead of TAG's approximation (η: each parameter's current learning rate)."""
    return LookaheadStep("sgd", parameter_rates(optimizer, parameters), [None] * len(parameters))


def adam_step(optimizer: torch.optim.Optimizer, parameters: Sequence[nn.Parameter]) -> LookaheadStep | None:
    """θ' = θ − η·g_i / (sqrt(v̂) + ε), v̂ = v / (1 − β2^t): Adam's preconditioner from its current state.

    v is the optimizer's ``exp_avg_sq`` (``max_exp_avg_sq`` with AMSGrad) after its t steps; no
    momentum, no weight decay (Kingma & Ba 2015; AdamW, Loshchilov & Hutter 2019, decays apart).
    A parameter the optimizer has never updated has no v yet and stays put; ``None`` before the
    optimizer's first step, when no parameter has one.
    """
    groups = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    rates: list[float] = []
    denominators: list[Tensor | None] = []
    for p in parameters:
        group, state = groups.get(id(p)), optimizer.state.get(p, {})
        rate = float(group["lr"]) if group is not None else 0.0
        if not rate or "exp_avg_sq" not in state:
            rates.append(0.0)
            denominators.append(None)
            continue
        second = state["max_exp_avg_sq"] if group.get("amsgrad") else state["exp_avg_sq"]
        bias_correction = 1.0 - group["betas"][1] ** float(state["step"])
        rates.append(rate)
        denominators.append((second / bias_correction).sqrt() + group["eps"])
    return LookaheadStep("adam", rates, denominators) if any(d is not None for d in denominators) else None


OPTIMIZER_RULES: dict[type[torch.optim.Optimizer], LookaheadRule] = {
    torch.optim.SGD: sgd_step,
    torch.optim.Adam: adam_step,
    torch.optim.AdamW: adam_step,
}
"""The lookahead rule of each optimizer class (a subclass inherits its parent's); any other optimizer: SGD."""


def optimizer_step(optimizer: torch.optim.Optimizer, parameters: Sequence[nn.Parameter]) -> LookaheadStep | None:
    """The lookahead with ``optimizer``'s own update rule (``OPTIMIZER_RULES``, by class)."""
    rule = next((OPTIMIZER_RULES[cls] for cls in type(optimizer).__mro__ if cls in OPTIMIZER_RULES), sgd_step)
    return rule(optimizer, parameters)


LOOKAHEADS: Mapping[str, LookaheadRule] = {"optimizer": optimizer_step, "sgd": sgd_step}
"""``--lookahead`` choices: the training optimizer's rule (default) or TAG's plain SGD step."""


def lookahead_rule(name: str) -> LookaheadRule:
    """The rule called ``name`` in ``LOOKAHEADS``; a one-line error otherwise."""
    if name not in LOOKAHEADS:
        raise PolytaskError(f"--lookahead must be one of {', '.join(LOOKAHEADS)}, not {name!r}")
    return LOOKAHEADS[name]


def rates_step(lr: float | Sequence[float], n: int) -> LookaheadStep:
    """The SGD step at one rate for all ``n`` parameters, or one rate each."""
    rates = [float(lr)] * n if isinstance(lr, (int, float)) else [float(r) for r in lr]
    if len(rates) != n or any(math.isnan(r) for r in rates):
        raise ValueError(f"need {n} learning rates, got {rates}")
    return LookaheadStep("sgd", rates, [None] * n)
