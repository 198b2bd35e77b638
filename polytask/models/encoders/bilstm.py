"""A stacked bidirectional LSTM over word + character representations, trained from scratch."""

from __future__ import annotations

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

    def forward(self, word_ids: Tensor, mask: Tensor, char_ids: Tensor | None = None,
                shape_ids: Tensor | None = None) -> EncoderOutput:
        states = self.embed(word_ids, char_ids, shape_ids)
        layers = [states]
        lengths = mask.sum(dim=1).clamp(min=1).cpu()
        for lstm in self.lstms:
            packed = pack_padded_sequence(states, lengths, batch_first=True, enforce_sorted=False)
            output, _ = lstm(packed)
            output, _ = pad_packed_sequence(output, batch_first=True, total_length=mask.shape[1])
            states = self.dropout(output)
            layers.append(states)
        return EncoderOutput(layers=layers, mask=mask)
