"""A stacked bidirectional LSTM over word + character representations, trained from scratch."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from polytask.models.encoders.base import EncoderOutput
from polytask.models.encoders.words import WordLevelEncoder


class BiLSTMEncoder(WordLevelEncoder):
    """BiLSTM tagger encoder (Lample et al. 2016; Plank et al. 2016) exposing every layer."""

    def build(self) -> None:
        c = self.config
        self.embed = self.build_input()
        dims = [self.embed.output_dim] + [2 * c.hidden] * c.layers
        self.lstms = nn.ModuleList(
            nn.LSTM(dims[i], c.hidden, batch_first=True, bidirectional=True) for i in range(c.layers)
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
                  shape_ids: Tensor | None = None) -> Tensor:
        return module(word_ids, char_ids, shape_ids)

    def run_layer(self, index: int, module: nn.Module, states: Tensor, mask: Tensor) -> Tensor:
        """One BiLSTM layer over the packed sentences (padding never enters a state), then dropout."""
        lengths = mask.sum(dim=1).clamp(min=1).cpu()
        packed = pack_padded_sequence(states, lengths, batch_first=True, enforce_sorted=False)
        output, _ = module(packed)
        output, _ = pad_packed_sequence(output, batch_first=True, total_length=mask.shape[1])
        return self.dropout(output)

    def encode_rows(self, word_ids: Tensor, mask: Tensor, char_ids: Tensor | None = None,
                    shape_ids: Tensor | None = None) -> list[Tensor]:
        states = self.run_input(self.embed, word_ids, mask, char_ids, shape_ids)
        layers = [states]
        for index, lstm in enumerate(self.lstms, start=1):
            states = self.run_layer(index, lstm, states, mask)
            layers.append(states)
        return layers

    def export_module(self) -> nn.Module:
        """The same encoder without packed sequences (which ``torch.export`` cannot trace), in eval mode."""
        return PaddedBiLSTMEncoder(self).eval()


class PaddedBiLSTMEncoder(nn.Module):
    """``BiLSTMEncoder.forward`` on padded tensors: each direction a one-way LSTM, the backward one run on
    every sentence reversed within its own length, so padding never enters a state (as with packing)."""

    def __init__(self, encoder: BiLSTMEncoder):
        super().__init__()
        self.embed = encoder.embed
        self.directions = nn.ModuleList(nn.ModuleList([_one_direction(lstm, ""), _one_direction(lstm, "_reverse")])
                                        for lstm in encoder.lstms)

    def forward(self, word_ids: Tensor, mask: Tensor, char_ids: Tensor | None = None,
                shape_ids: Tensor | None = None) -> EncoderOutput:
        states = self.embed(word_ids, char_ids, shape_ids)
        layers = [states]
        lengths = mask.sum(dim=1, keepdim=True)
        positions = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0)
        reversed_index = torch.where(positions < lengths, lengths - 1 - positions, positions)  # its own inverse
        keep = mask.unsqueeze(-1).to(states.dtype)
        for forward_lstm, backward_lstm in self.directions:
            ahead, _ = forward_lstm(states)
            flipped = states.gather(1, reversed_index.unsqueeze(-1).expand(-1, -1, states.shape[-1]))
            behind, _ = backward_lstm(flipped)
            behind = behind.gather(1, reversed_index.unsqueeze(-1).expand(-1, -1, behind.shape[-1]))
            states = torch.cat([ahead, behind], dim=-1) * keep  # padding is 0, as pad_packed_sequence leaves it
            layers.append(states)
        return EncoderOutput(layers=layers, mask=mask)


def _one_direction(lstm: nn.LSTM, suffix: str) -> nn.LSTM:
    """A one-way, one-layer LSTM with the weights of ``lstm``'s forward (``""``) or backward (``"_reverse"``) direction."""
    one = nn.LSTM(lstm.input_size, lstm.hidden_size, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(one, f"{name}_l0").copy_(getattr(lstm, f"{name}_l0{suffix}"))
    return one
