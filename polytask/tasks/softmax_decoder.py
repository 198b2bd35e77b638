"""Independent per-token softmax: cross-entropy training, argmax or constrained Viterbi decoding.

``heads.TASK.decoder: softmax`` (the default). With ``constrained: true`` decoding is the most
probable tag sequence under the per-token probabilities among those the scheme allows (Viterbi
over log-probabilities with only the constraint transitions), so decoded chunks are well formed
without training anything extra.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from polytask.tasks.decoding import TagDecoder, constraint_scores, length_mask, trim, viterbi
from polytask.tasks.sequence_classification import masked_cross_entropy
from polytask.tasks.tag_constraints import TransitionConstraints


class SoftmaxDecoder(TagDecoder):
    """Per-token cross-entropy; decoding by argmax, or by Viterbi under ``constraints`` when given."""

    def __init__(self, tags: int, constraints: TransitionConstraints | None = None):
        super().__init__()
        self._constrained = constraints is not None
        if constraints is not None:
            for name, scores in zip(("transitions", "start", "end"), constraint_scores(constraints)):
                self.register_buffer(name, scores, persistent=False)  # rebuilt from the label space

    @property
    def constrained(self) -> bool:
        return self._constrained

    def export_spec(self) -> dict:
        if not self._constrained:
            return {"kind": "argmax"}
        return {"kind": "viterbi", "log_softmax": True, "transitions": self.transitions.tolist(),
                "start": self.start.tolist(), "end": self.end.tolist()}

    def loss(self, emissions: Tensor, tags: Tensor) -> Tensor:
        return masked_cross_entropy(emissions.reshape(-1, emissions.shape[-1]), tags.reshape(-1))

    def decode(self, emissions: Tensor, lengths: Sequence[int]) -> list[list[int]]:
        if not self._constrained:
            return trim(emissions.argmax(dim=-1), lengths)
        mask = length_mask(lengths, emissions.shape[1], emissions.device)
        log_probs = emissions.float().log_softmax(dim=-1)
        return trim(viterbi(log_probs, mask, self.transitions, self.start, self.end), lengths)

    def marginals(self, emissions: Tensor, lengths: Sequence[int]) -> Tensor:
        return emissions.float().softmax(dim=-1)
