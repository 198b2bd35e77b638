"""What the data pipeline needs of an encoder and of a task: a featurizer and a label codec.

Why: data is the bottom layer. Batching turns examples into tensors with the encoder's
featurizer and each task's label codec, so it declares those two small interfaces here and
the encoders (``models``) and task types (``tasks``) implement them; data imports neither.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from torch import Tensor

from polytask.data.example import Example


class Featurizer(ABC):
    """Turns tokenised sentences into the encoder's input tensors (runs at collate time)."""

    @abstractmethod
    def fit(self, examples: Sequence[Example]) -> None:
        """Build vocabularies from training examples (no-op for pretrained tokenizers)."""

    @abstractmethod
    def __call__(self, sentences: Sequence[Sequence[str]],
                 pairs: Sequence[Sequence[str] | None] | None = None) -> dict[str, Tensor]:
        """Input tensors for a batch; must include ``mask`` of shape [batch, words].

        ``pairs[i]``, when given, is the second sentence of example i (None: a single sentence); it
        is passed only if some example is a pair, and only to encoders with a ``pair_encoding``.
        A pair's words are then its first sentence's followed by its second's (in ``mask``), and
        the tensors include ``segments`` [batch, words]: 0 for the first sentence, 1 for the second.
        """

    @abstractmethod
    def to_json(self) -> dict[str, Any]: ...

    @abstractmethod
    def load_json(self, data: dict[str, Any]) -> None: ...

    def export_spec(self, directory: Path) -> dict[str, Any]:
        """What the torch-free ONNX runtime needs to featurize like this (``serving.onnx_predictor.FEATURIZERS[kind]``).

        Files it needs (a tokenizer) are written into ``directory``; the returned JSON names them.
        """
        from polytask.errors import PolytaskError

        raise PolytaskError(f"ONNX export does not support {type(self).__name__} yet: its inputs cannot be "
                            "computed without torch")

    def export_axes(self, sample: dict[str, Tensor]) -> dict[str, dict[int, str]]:
        """Names of the dynamic axes of each input tensor: axis 0 the batch; axis 1 of a tensor shaped
        like ``mask`` the words; any other axis its own."""
        axes: dict[str, dict[int, str]] = {}
        for name, tensor in sample.items():
            axes[name] = {0: "batch"}
            for axis in range(1, tensor.dim()):
                same = axis == 1 and tuple(tensor.shape[:2]) == tuple(sample["mask"].shape)
                axes[name][axis] = "words" if same else f"{name}_{axis}"
        return axes


class LabelCodec(Protocol):
    """A task's labels as data sees them: parsed and checked when read, encoded when batched (``TaskType``)."""

    def parse_label(self, raw: Any, origin: str) -> Any: ...

    def check_label(self, label: Any, tokens: Sequence[str], origin: str) -> None: ...

    def encode_targets(self, labels: Sequence[Any | None], max_length: int) -> tuple[Tensor, Tensor]: ...
