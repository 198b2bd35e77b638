"""A sentence-pair head for encoders that read each sentence alone: [u; v; |u − v|; u ∗ v] of the pooled sentences.

Why: a from-scratch encoder has no cross-sentence attention, so the head must relate the two
sentence vectors itself. The concatenation of both vectors, their absolute difference and their
element-wise product is InferSent's (Conneau et al. 2017, "Supervised Learning of Universal
Sentence Representations from Natural Language Inference Data", EMNLP); the difference and
product make "same / different" relations linear in the features.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from polytask.models.heads.mlp import output_network
from polytask.models.heads.sequence_head import pool_states


def pair_features(u: Tensor, v: Tensor) -> Tensor:
    """``[batch, 4·dim]``: u, v, |u − v| and u ∗ v side by side."""
    return torch.cat([u, v, (u - v).abs(), u * v], dim=-1)


class SentencePairHead(nn.Module):
    """Per-pair logits ``[batch, outputs]``: each sentence pooled alone (its ``segments``), then ``pair_features``.

    A single sentence in the batch (an example of another task) pools its second vector from no
    words, zeros; its logits are never scored for this task.
    """

    level = "sequence"

    def __init__(self, input_dim: int, outputs: int, hidden: int = 0, dropout: float = 0.0, pooling: str = "max"):
        super().__init__()
        self.pooling = pooling
        self.attention = nn.Linear(input_dim, 1) if pooling == "attention" else None
        self.net = output_network(4 * input_dim, hidden, outputs, dropout)

    def pool(self, states: Tensor, mask: Tensor) -> Tensor:
        """One sentence vector per row over the words in ``mask`` (the same pooling for both sentences)."""
        return pool_states(states, mask, self.pooling, self.attention)

    def sentence_vectors(self, states: Tensor, mask: Tensor, segments: Tensor | None) -> tuple[Tensor, Tensor]:
        """The pooled first and second sentence, ``u`` and ``v``, each ``[batch, dim]``."""
        second = segments.to(torch.bool) & mask if segments is not None else torch.zeros_like(mask)
        return self.pool(states, mask & ~second), self.pool(states, second)

    def forward(self, states: Tensor, mask: Tensor, segments: Tensor | None = None) -> Tensor:
        return self.net(pair_features(*self.sentence_vectors(states, mask, segments)))
