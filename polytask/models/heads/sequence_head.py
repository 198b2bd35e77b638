"""A head pooling one encoder layer into a sentence vector (sentence tasks)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from polytask.models.heads.mlp import output_network


class SequenceHead(nn.Module):
    """Per-sentence logits ``[batch, outputs]``: max, mean, first-word or attention pooling."""

    level = "sequence"

    def __init__(self, input_dim: int, outputs: int, hidden: int = 0, dropout: float = 0.0, pooling: str = "max"):
        super().__init__()
        self.pooling = pooling
        self.attention = nn.Linear(input_dim, 1) if pooling == "attention" else None
        self.net = output_network(input_dim, hidden, outputs, dropout)

    def pool(self, states: Tensor, mask: Tensor) -> Tensor:
        keep = mask.unsqueeze(-1)
        if self.pooling == "max":
            return states.masked_fill(~keep, float("-inf")).amax(dim=1).nan_to_num(0.0, neginf=0.0)
        if self.pooling == "mean":
            return (states * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)
        if self.pooling == "first":
            return states[:, 0]
        scores = self.attention(states).masked_fill(~keep, float("-inf"))
        return (torch.softmax(scores, dim=1).nan_to_num(0.0) * states).sum(dim=1)

    def forward(self, states: Tensor, mask: Tensor) -> Tensor:
        return self.net(self.pool(states, mask))
