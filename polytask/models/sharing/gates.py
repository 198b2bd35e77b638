"""Per-token softmax gates over experts, for text: the gate reads each token's state, so any length works.

Why: MMoE's and PLE's gates (Ma et al. 2018; Tang et al. 2020) read one fixed-size input vector per
example; a sentence has one state per token and some padding. Here every token gets its own mixture,
computed from that token's state alone, so padding positions cannot change a real token's gate.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class TokenGate(nn.Module):
    """``softmax(W x + b)`` over ``experts`` for every token state x; starts as the uniform mixture (W = 0, b = 0)."""

    def __init__(self, dim: int, experts: int):
        super().__init__()
        self.logits = nn.Linear(dim, experts)
        nn.init.zeros_(self.logits.weight)
        nn.init.zeros_(self.logits.bias)

    def forward(self, states: Tensor) -> Tensor:
        """``[batch, words, experts]`` mixture weights, each row summing to one."""
        return torch.softmax(self.logits(states), dim=-1)


def mix(weights: Tensor, experts: Sequence[Tensor]) -> Tensor:
    """Σₑ weights[..., e] · experts[e], per token (``experts``: same-shape ``[batch, words, dim]`` states)."""
    return (weights.unsqueeze(-1).to(experts[0].dtype) * torch.stack(list(experts), dim=-2)).sum(dim=-2)
