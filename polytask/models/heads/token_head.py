"""A head scoring every word of a layer (tagging tasks)."""

from __future__ import annotations

from torch import Tensor, nn

from polytask.models.heads.mlp import output_network


class TokenHead(nn.Module):
    """Per-word logits ``[batch, words, outputs]`` from one encoder layer."""

    level = "token"

    def __init__(self, input_dim: int, outputs: int, hidden: int = 0, dropout: float = 0.0, **_: object):
        super().__init__()
        self.net = output_network(input_dim, hidden, outputs, dropout)

    def forward(self, states: Tensor, mask: Tensor, segments: Tensor | None = None) -> Tensor:
        return self.net(states)
