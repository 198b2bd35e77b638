"""A task's learned mix of encoder layers (Peters et al. 2018, Deep Contextualized Word Representations, NAACL).

``heads.TASK.layer: mix`` lets each task pick its own blend of the encoder's layers:
γ · Σₖ softmax(w)ₖ hₖ, with w and γ learned per head (ELMo's scalar mix). Low-level tasks tend
to weight lower layers, high-level tasks upper ones, without choosing a layer by hand.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class ScalarMix(nn.Module):
    """Softmax-normalised layer weights and a scale; starts as the plain mean of the layers."""

    def __init__(self, layers: int):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(layers))
        self.scale = nn.Parameter(torch.ones(()))

    @property
    def weights(self) -> Tensor:
        return torch.softmax(self.logits, dim=0)

    def forward(self, layers: Sequence[Tensor]) -> Tensor:
        weights = self.weights
        return self.scale * sum(w * h for w, h in zip(weights.unbind(0), layers))


class MixedLayersHead(nn.Module):
    """A head reading a ``ScalarMix`` of several layers instead of one layer."""

    def __init__(self, layers: int, head: nn.Module):
        super().__init__()
        self.mix = ScalarMix(layers)
        self.head = head
        self.level = getattr(head, "level", None)

    def forward(self, layers: Sequence[Tensor], mask: Tensor, segments: Tensor | None = None) -> Tensor:
        return self.head(self.mix(layers), mask, segments)
