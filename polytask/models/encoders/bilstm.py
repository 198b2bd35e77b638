"""A stacked bidirectional LSTM over word + character representations, trained from scratch.

Each layer runs on the padded sentences: the forward direction reads them as they are, the backward
direction each sentence reversed within its own length, so padding never enters a state (the result
of ``pack_padded_sequence``, 1.26× slower forward + backward on CPU: ``benchmarks/bilstm_step.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call

from polytask.models.encoders.base import EncoderOutput
from polytask.models.encoders.words import WordLevelEncoder


class BiLSTMEncoder(WordLevelEncoder):
    """BiLSTM tagger encoder (Lample et al. 2016; Plank et al. 2016) exposing every layer."""

    def build(self) -> None:
        c = self.config
        self.embed = self.build_input()
        dims = [self.embed.output_dim] + [2 * c.hidden] * c.layers
        self.lstms = nn.ModuleList(
            PaddedBiLSTM(dims[i], c.hidden) for i in range(c.layers)
        )
        self.dropout = nn.Dropout(c.dropout)
        self._dims = dims

    @property
    def layer_dims(self) -> list[int]:
        return list(self._dims)

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """Word + character input (group 0), then each BiLSTM layer."""
        return [list(self.embed.parameters())] + [list(lstm.parameters()) for lstm in self.lstms]

    def layer_stack(self) -> list[nn.Module]:
        """The word + character input, then each BiLSTM layer."""
        return [self.embed, *self.lstms]

    def run_input(self, module: nn.Module, word_ids: Tensor, mask: Tensor, char_ids: Tensor | None = None,
                  shape_ids: Tensor | None = None, affix_ids: Tensor | None = None) -> Tensor:
        return module(word_ids, char_ids, shape_ids, affix_ids)

    def run_layer(self, index: int, module: nn.Module, states: Tensor, mask: Tensor) -> Tensor:
        """One BiLSTM layer (a ``PaddedBiLSTM``: padding never enters a state), then dropout."""
        return self.dropout(module(states, mask))

    def encode_rows(self, word_ids: Tensor, mask: Tensor, char_ids: Tensor | None = None,
                    shape_ids: Tensor | None = None, affix_ids: Tensor | None = None) -> list[Tensor]:
        states = self.run_input(self.embed, word_ids, mask, char_ids, shape_ids, affix_ids)
        layers = [states]
        for index, lstm in enumerate(self.lstms, start=1):
            states = self.run_layer(index, lstm, states, mask)
            layers.append(states)
        return layers

    def export_module(self) -> nn.Module:
        """The same encoder without packed sequences (which ``torch.export`` cannot trace), in eval mode."""
        return PaddedBiLSTMEncoder(self).eval()


class PaddedBiLSTM(nn.LSTM):
    """One bidirectional LSTM layer over padded sentences ``[rows, words, dim]`` and their mask.

    The forward direction reads each row as it is, the backward one each sentence reversed within its
    own length, so padding never enters a state: the result of ``pack_padded_sequence`` (to float
    rounding), with oneDNN's fused kernels instead of the packed LSTM's step-by-step CPU backward.
    Its parameters, their initialisation and its state dict are those of
    ``nn.LSTM(input_size, hidden_size, batch_first=True, bidirectional=True)``; padding comes out 0.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size, batch_first=True, bidirectional=True)

    def forward(self, states: Tensor, mask: Tensor) -> Tensor:  # type: ignore[override]
        kind = states.device.type
        if states.is_cpu and torch.is_autocast_enabled(kind) and torch.get_autocast_dtype(kind) == torch.float16:
            with torch.autocast(kind, enabled=False):  # oneDNN, torch's CPU LSTM, has no float16 LSTM
                return self.forward(states.float(), mask)
        return both_directions(states, mask, lambda x: self._direction("", x), lambda x: self._direction("_reverse", x))

    def _direction(self, suffix: str, states: Tensor) -> Tensor:
        """The forward (``""``) or backward (``"_reverse"``) direction's weights over ``states`` read left to right."""
        weights = {f"{name}_l0": getattr(self, f"{name}_l0{suffix}") for name in _LSTM_WEIGHTS}
        return functional_call(self._one_way(), weights, (states,))[0]

    def _one_way(self) -> nn.LSTM:
        """A one-way LSTM of this layer's sizes whose weights ``_direction`` swaps in (not a submodule: no state).

        Made inside ``fork_rng``, so its (unused) initialisation draws nothing from the stream that dropout reads.
        """
        template = self.__dict__.get("_one_way_template")
        if template is None:
            with torch.random.fork_rng(devices=[]):
                template = nn.LSTM(self.input_size, self.hidden_size, batch_first=True)
            self.__dict__["_one_way_template"] = template
        return template


class PaddedBiLSTMEncoder(nn.Module):
    """``BiLSTMEncoder.forward`` on padded tensors: each direction a one-way LSTM, the backward one run on
    every sentence reversed within its own length, so padding never enters a state (as with packing)."""

    def __init__(self, encoder: BiLSTMEncoder):
        super().__init__()
        self.embed = encoder.embed
        self.directions = nn.ModuleList(nn.ModuleList([_one_direction(lstm, ""), _one_direction(lstm, "_reverse")])
                                        for lstm in encoder.lstms)

    def forward(self, word_ids: Tensor, mask: Tensor, char_ids: Tensor | None = None,
                shape_ids: Tensor | None = None, affix_ids: Tensor | None = None) -> EncoderOutput:
        states = self.embed(word_ids, char_ids, shape_ids, affix_ids)
        layers = [states]
        for forward_lstm, backward_lstm in self.directions:
            states = both_directions(states, mask, lambda x, one=forward_lstm: one(x)[0], lambda x, one=backward_lstm: one(x)[0])
            layers.append(states)
        return EncoderOutput(layers=layers, mask=mask)


_LSTM_WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def both_directions(states: Tensor, mask: Tensor, ahead: Callable[[Tensor], Tensor],
                    behind: Callable[[Tensor], Tensor]) -> Tensor:
    """``[rows, words, 2 * hidden]``: one-way ``ahead`` over the rows as they are, joined to one-way ``behind``
    over each sentence reversed within its length (and put back in order); padding positions are 0."""
    reversal = reversal_index(mask)
    forward_states = ahead(states)
    backward_states = reverse_within(behind(reverse_within(states, reversal)), reversal)
    return torch.cat([forward_states, backward_states], dim=-1) * mask.unsqueeze(-1).to(forward_states.dtype)


def reversal_index(mask: Tensor) -> Tensor:
    """``[rows, words]``: each real position's mirror within its sentence; padding maps to itself (its own inverse)."""
    lengths = mask.sum(dim=1, keepdim=True)
    positions = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0)
    return torch.where(positions < lengths, lengths - 1 - positions, positions)


def reverse_within(states: Tensor, reversal: Tensor) -> Tensor:
    """``states`` ``[rows, words, dim]`` with each sentence's real words in reverse order (padding stays in place)."""
    return states.gather(1, reversal.unsqueeze(-1).expand(-1, -1, states.shape[-1]))


def _one_direction(lstm: nn.LSTM, suffix: str) -> nn.LSTM:
    """A one-way, one-layer LSTM with the weights of ``lstm``'s forward (``""``) or backward (``"_reverse"``) direction."""
    one = nn.LSTM(lstm.input_size, lstm.hidden_size, batch_first=True)
    with torch.no_grad():
        for name in _LSTM_WEIGHTS:
            getattr(one, f"{name}_l0").copy_(getattr(lstm, f"{name}_l0{suffix}"))
    return one
