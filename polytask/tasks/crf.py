"""A linear-chain conditional random field over the head's per-token scores.

``heads.TASK.decoder: crf``: the task loss is the negative log-likelihood of the gold tag
sequence (forward algorithm in log space, batched), decoding is batched Viterbi, and the learned
transition, start and end scores are the task's own parameters (Lample et al. 2016, "Neural
Architectures for Named Entity Recognition", NAACL; Lafferty et al. 2001, ICML). With the task's
scheme the transitions it disallows score ``DISALLOWED`` and are never trained, so decoded chunks
are always well formed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from polytask.tasks.decoding import (
    DISALLOWED,
    TagDecoder,
    length_mask,
    log_partition,
    path_score,
    trim,
    viterbi,
)
from polytask.tasks.tag_constraints import TransitionConstraints


class CRFDecoder(TagDecoder):
    """Learned transitions ``[C, C]`` (row tag → column tag), start and end scores; zeros at first."""

    def __init__(self, tags: int, constraints: TransitionConstraints | None = None):
        super().__init__()
        self.transitions = nn.Parameter(torch.zeros(tags, tags))
        self.start = nn.Parameter(torch.zeros(tags))
        self.end = nn.Parameter(torch.zeros(tags))
        self._constrained = constraints is not None
        constraints = constraints if constraints is not None else TransitionConstraints.none(tags)
        self.register_buffer("allowed", constraints.transitions, persistent=False)  # rebuilt from the label space
        self.register_buffer("allowed_start", constraints.start, persistent=False)
        self.register_buffer("allowed_end", constraints.end, persistent=False)

    @property
    def constrained(self) -> bool:
        return self._constrained

    def scores(self) -> tuple[Tensor, Tensor, Tensor]:
        """Transition, start and end scores with the disallowed ones at ``DISALLOWED`` (no gradient there)."""
        return (self.transitions.float().masked_fill(~self.allowed, DISALLOWED),
                self.start.float().masked_fill(~self.allowed_start, DISALLOWED),
                self.end.float().masked_fill(~self.allowed_end, DISALLOWED))

    def export_spec(self) -> dict:
        transitions, start, end = (t.detach().cpu() for t in self.scores())
        return {"kind": "viterbi", "log_softmax": False, "transitions": transitions.tolist(), "start": start.tolist(),
                "end": end.tolist()}

    def loss(self, emissions: Tensor, tags: Tensor) -> Tensor:
        """Σ over labelled sentences of −log p(gold | sentence), divided by the labelled tokens."""
        mask = tags >= 0
        rows = mask[:, 0]
        emissions, tags, mask = emissions[rows].float(), tags[rows], mask[rows]
        scores = self.scores()
        nll = log_partition(emissions, mask, *scores) - path_score(emissions, tags, mask, *scores)
        return nll.sum() / mask.sum().clamp(min=1)

    def decode(self, emissions: Tensor, lengths: Sequence[int]) -> list[list[int]]:
        mask = length_mask(lengths, emissions.shape[1], emissions.device)
        return trim(viterbi(emissions.float(), mask, *self.scores()), lengths)

    def marginals(self, emissions: Tensor, lengths: Sequence[int]) -> Tensor:
        """p(yₜ = c | sentence): the gradient of the log-partition with respect to the emissions."""
        mask = length_mask(lengths, emissions.shape[1], emissions.device)
        with torch.enable_grad():
            emissions = emissions.detach().float().requires_grad_(True)
            scores = [s.detach() for s in self.scores()]
            (grad,) = torch.autograd.grad(log_partition(emissions, mask, *scores).sum(), emissions)
        return grad
