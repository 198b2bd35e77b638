"""A head pooling one encoder layer into a sentence vector (sentence tasks)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from polytask.models.heads.mlp import output_network


def pool_states(states: Tensor, mask: Tensor, pooling: str, attention: nn.Module | None = None) -> Tensor:
    """``[batch, words, dim]`` states to ``[batch, dim]`` over the words in ``mask``: max, mean, first or attention.

    ``first`` reads the first word in the mask; a row with no word in the mask pools to zeros.
    """
    keep = mask.unsqueeze(-1)
    if pooling == "max":
        return states.masked_fill(~keep, float("-inf")).amax(dim=1).nan_to_num(0.0, neginf=0.0)
    if pooling == "mean":
        return (states * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)
    if pooling == "first":
        first = mask.to(torch.int32).argmax(dim=1)  # the first True (0 for a row without any)
        picked = states.gather(1, first.view(-1, 1, 1).expand(-1, 1, states.shape[-1])).squeeze(1)
        return picked * keep.any(dim=1).to(states.dtype)
    scores = attention(states).masked_fill(~keep, float("-inf"))
    return (torch.softmax(scores, dim=1).nan_to_num(0.0) * states).sum(dim=1)


class SequenceHead(nn.Module):
    """Per-sentence logits ``[batch, outputs]``: max, mean, first-word or attention pooling.

    A jointly encoded sentence pair (a transformer's pair encoding) is pooled over both sentences' words.
    """

    level = "sequence"

    def __init__(self, input_dim: int, outputs: int, hidden: int = 0, dropout: float = 0.0, pooling: str = "max"):
        super().__init__()
        self.pooling = pooling
        self.attention = nn.Linear(input_dim, 1) if pooling == "attention" else None
        self.net = output_network(input_dim, hidden, outputs, dropout)

    def pool(self, states: Tensor, mask: Tensor) -> Tensor:
        return pool_states(states, mask, self.pooling, self.attention)

    def forward(self, states: Tensor, mask: Tensor, segments: Tensor | None = None) -> Tensor:
        return self.net(self.pool(states, mask))
