"""The encoder interface: any ``nn.Module`` with a featurizer and per-layer word states.

An encoder turns a batch of tokenised sentences into one tensor per layer, each of shape
``[batch, words, dim]`` and aligned to the input words, plus a word mask. Heads read
any layer by index (``layers[0]`` is the input embedding, ``layers[-1]`` the top), so a
low-level task can be supervised below a high-level one (Søgaard & Goldberg 2016).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

from polytask.data.featurizer import Featurizer

__all__ = ["Encoder", "EncoderOutput", "Featurizer"]


@dataclass
class EncoderOutput:
    """Word-aligned states of every layer and the mask of real (non-padding) words.

    A sentence pair's words are its first sentence's, then its second's; ``segments`` [batch, words]
    says which (0 or 1) when the batch holds a pair, and is None otherwise.
    """

    layers: list[Tensor]
    mask: Tensor
    segments: Tensor | None = None


class Encoder(nn.Module, ABC):
    """A shared encoder. Subclasses set ``featurizer`` and implement ``forward`` and ``layer_dims``.

    ``forward(**inputs)`` receives the featurizer's tensors and returns an ``EncoderOutput``.
    ``build()`` is called once the featurizer is fitted (vocabulary sizes known) and must
    create the parameters.
    """

    featurizer: Featurizer
    pair_encoding: Literal["joint", "separate"] | None = None
    """How the encoder reads sentence pairs: ``joint`` encodes both sentences as one input (a
    transformer's pair encoding, the heads pool its states), ``separate`` encodes each sentence alone
    and pair heads combine the two pooled vectors; None: it cannot read pairs. The featurizer then
    takes ``featurizer(sentences, pairs)`` and sets ``segments``."""
    task_conditioned: bool = False
    """True when ``forward(**inputs, task=NAME)`` encodes differently per task (per-task adapters):
    the model then encodes once per task instead of once for all."""

    def add_task(self, task: str) -> None:
        """Create ``task``'s own encoder parameters, if the encoder has any (called once per head)."""

    def task_parameters(self, task: str) -> dict[str, nn.Parameter]:
        """Encoder parameters only ``task`` uses, by name inside the encoder; none for a shared encoder."""
        return {}

    @abstractmethod
    def build(self) -> None:
        """Create parameters that depend on the fitted featurizer."""

    def initialise_from_pretrained(self) -> None:
        """Copy outside weights (pretrained word vectors) into the built parameters.

        Called once when training starts, after ``build()``; never when a run's weights are loaded.
        """

    @property
    @abstractmethod
    def layer_dims(self) -> list[int]:
        """Output size of every layer, index-aligned with ``EncoderOutput.layers``."""

    @abstractmethod
    def forward(self, **inputs: Tensor) -> EncoderOutput: ...

    def layer_stack(self) -> list[nn.Module] | None:
        """The modules of the input representation (index 0) and of every layer above it, or None.

        Why: sharing architectures (``models/sharing``) that share the bottom layers and copy the
        upper ones (branched, MMoE, PLE, cross-stitch) need the encoder as a stack they can run
        layer by layer: ``run_input(stack[0], **inputs)``, then ``run_layer(i, stack[i], states,
        mask)`` for i = 1..L, with the encoder's own module or a copy of it. An encoder that cannot
        be split (a pretrained transformer) returns None; the architectures then add blocks on top.
        The modules must be the encoder's own (not new containers of them) or containers whose
        parameters are the encoder's, so that ``forward`` equals running the stack.
        """
        return None

    def run_input(self, module: nn.Module, **inputs: Tensor) -> Tensor:
        """Layer 0's states from the featurizer's tensors, computed by ``module`` (``layer_stack()[0]`` or a copy)."""
        raise NotImplementedError(f"{type(self).__name__} has no layer stack")

    def run_layer(self, index: int, module: nn.Module, states: Tensor, mask: Tensor) -> Tensor:
        """Layer ``index``'s states from the states below it, computed by ``module`` (``layer_stack()[index]`` or a copy)."""
        raise NotImplementedError(f"{type(self).__name__} has no layer stack")

    def export_module(self) -> nn.Module:
        """A module computing this encoder's ``forward`` that ``torch.export`` can trace (for ONNX); default: itself."""
        return self

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """The encoder's parameters in depth order: group 0 the input embeddings, the last group the top.

        Why: discriminative fine-tuning (Howard & Ruder 2018, "Universal Language Model
        Fine-tuning for Text Classification", ACL; Clark et al. 2020, ELECTRA, ICLR) gives
        lower groups smaller learning rates, and gradual unfreezing unfreezes the groups top
        down. Every trainable parameter must be in exactly one group (parameters frozen for
        good, e.g. under adapters, may be left out). The default is one group of everything:
        layer-wise decay is then a no-op and unfreezing releases the whole encoder at once.
        """
        return [list(self.parameters())]
