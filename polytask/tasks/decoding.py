"""Decoding a tag chain: the ``TagDecoder`` interface and the linear-chain algorithms in log space.

Why: a token task's loss and its decoding belong together (a CRF trains and decodes with the same
transition scores), so a token task delegates both to its decoder; the decoder is a module the
task's head owns, so its parameters train, checkpoint and move with the model.

Chain scores: ``score(y) = start[y₀] + Σₜ emissions[t, yₜ] + Σₜ transitions[yₜ₋₁, yₜ] + end[y_last]``
over the unmasked positions; a masked position is skipped (the chain joins its neighbours), so
padding never changes a sentence's score. Rows must be unmasked at position 0.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from polytask.tasks.tag_constraints import TransitionConstraints

DISALLOWED = -1e4
"""The score of a disallowed transition: finite (so log-sums of unreachable tags stay finite) and
far below any path through allowed ones."""


class TagDecoder(nn.Module, ABC):
    """A token task's loss over per-token scores (emissions ``[B, T, C]``) and its decoding into tag ids."""

    @abstractmethod
    def loss(self, emissions: Tensor, tags: Tensor) -> Tensor:
        """Mean loss per labelled token; ``tags [B, T]`` holds a negative ignore value where unlabelled."""

    @abstractmethod
    def decode(self, emissions: Tensor, lengths: Sequence[int]) -> list[list[int]]:
        """The best tag ids of each sentence's first ``lengths[i]`` tokens."""

    @abstractmethod
    def marginals(self, emissions: Tensor, lengths: Sequence[int]) -> Tensor:
        """Per token, the probability of every tag ``[B, T, C]`` (for prediction output)."""

    @property
    def constrained(self) -> bool:
        """True when decoding follows the scheme's transition constraints."""
        return False

    def export_spec(self) -> dict:
        """How the torch-free ONNX runtime decodes like this (``serving.onnx_predictor.decode_tokens``):
        ``{"kind": "argmax"}``, or ``{"kind": "viterbi", ...}`` with the chain scores and whether the
        emissions are first turned into log-probabilities."""
        raise NotImplementedError(f"{type(self).__name__} cannot be exported")


def length_mask(lengths: Sequence[int], width: int, device: torch.device | str) -> Tensor:
    """``[B, width]`` bool, True at each sentence's first ``lengths[i]`` positions."""
    return torch.arange(width, device=device)[None, :] < torch.tensor(list(lengths), device=device)[:, None]


def constraint_scores(constraints: TransitionConstraints) -> tuple[Tensor, Tensor, Tensor]:
    """Transition, start and end scores of a chain with only the constraints: 0 allowed, ``DISALLOWED`` not."""
    return tuple(torch.zeros(m.shape).masked_fill(~m, DISALLOWED) for m in
                 (constraints.transitions, constraints.start, constraints.end))  # type: ignore[return-value]


def log_partition(emissions: Tensor, mask: Tensor, transitions: Tensor, start: Tensor, end: Tensor) -> Tensor:
    """log Σ_y exp score(y) per sentence ``[B]``: the forward algorithm (Lafferty et al. 2001)."""
    alpha = start + emissions[:, 0]
    for t in range(1, emissions.shape[1]):
        step = torch.logsumexp(alpha.unsqueeze(2) + transitions, dim=1) + emissions[:, t]
        alpha = torch.where(mask[:, t, None], step, alpha)
    return torch.logsumexp(alpha + end, dim=1)


def path_score(emissions: Tensor, tags: Tensor, mask: Tensor, transitions: Tensor, start: Tensor, end: Tensor) -> Tensor:
    """score(tags) per sentence ``[B]``; tags at masked positions are not read."""
    tags = tags.clamp(min=0)
    width = tags.shape[1]
    positions = torch.arange(width, device=tags.device).expand_as(tags)
    last = torch.where(mask, positions, torch.zeros_like(positions)).cummax(dim=1).values  # latest real position ≤ t
    previous = tags.gather(1, last[:, :-1])  # the tag before each position t ≥ 1 (skipping masked ones)
    steps = transitions[previous, tags[:, 1:]] * mask[:, 1:]
    emitted = emissions.gather(2, tags.unsqueeze(2)).squeeze(2) * mask
    first, final = tags[:, 0], tags.gather(1, last[:, -1:]).squeeze(1)
    return start[first] + end[final] + emitted[:, 0] + (emitted[:, 1:] + steps).sum(dim=1)


def viterbi(emissions: Tensor, mask: Tensor, transitions: Tensor, start: Tensor, end: Tensor) -> Tensor:
    """argmax_y score(y) per sentence ``[B, T]`` (Viterbi 1967); masked positions repeat the next real tag."""
    batch, width, tags = emissions.shape
    score = start + emissions[:, 0]
    identity = torch.arange(tags, device=emissions.device).expand(batch, tags)
    pointers = []
    for t in range(1, width):
        best, index = (score.unsqueeze(2) + transitions).max(dim=1)
        keep = mask[:, t, None]
        score = torch.where(keep, best + emissions[:, t], score)
        pointers.append(torch.where(keep, index, identity))
    last = (score + end).argmax(dim=1)
    path = [last]
    for index in reversed(pointers):
        last = index.gather(1, last[:, None]).squeeze(1)
        path.append(last)
    return torch.stack(path[::-1], dim=1)


def trim(paths: Tensor, lengths: Sequence[int]) -> list[list[int]]:
    return [row[:length] for row, length in zip(paths.tolist(), lengths)]
