"""Collating examples into tensors: encoder inputs plus, per task, targets and a labelled mask."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from torch import Tensor

from polytask.data.example import Example
from polytask.data.featurizer import Featurizer, LabelCodec


@dataclass
class Batch:
    """A batch: the encoder's inputs and, per task, targets and which examples carry a label."""

    examples: list[Example]
    inputs: dict[str, Tensor]
    targets: dict[str, Tensor] = field(default_factory=dict)
    labelled: dict[str, Tensor] = field(default_factory=dict)

    @property
    def lengths(self) -> list[int]:
        return [len(e.tokens) for e in self.examples]

    @property
    def present_tasks(self) -> list[str]:
        """Tasks with at least one labelled example here (partial labels are normal)."""
        return [task for task, labelled in self.labelled.items() if bool(labelled.any())]

    def to(self, device) -> Batch:
        return Batch(
            self.examples,
            {k: v.to(device) for k, v in self.inputs.items()},
            {k: v.to(device) for k, v in self.targets.items()},
            {k: v.to(device) for k, v in self.labelled.items()},
        )


def collate(examples: Sequence[Example], featurizer: Featurizer, tasks: Mapping[str, LabelCodec]) -> Batch:
    """Featurize the examples and encode the labels of ``tasks`` (missing labels are masked)."""
    examples = list(examples)
    pairs = [e.tokens_pair for e in examples]
    if any(pair is not None for pair in pairs):
        inputs = featurizer([e.tokens for e in examples], pairs)
    else:
        inputs = featurizer([e.tokens for e in examples])
    width = inputs["mask"].shape[1]
    batch = Batch(examples, inputs)
    for name, task in tasks.items():
        targets, labelled = task.encode_targets([e.labels.get(name) for e in examples], width)
        batch.targets[name], batch.labelled[name] = targets, labelled
    return batch
