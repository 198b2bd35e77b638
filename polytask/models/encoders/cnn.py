"""A stack of residual 1-D convolutions over word + character representations."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from polytask.models.encoders.words import WordLevelEncoder


class CNNEncoder(WordLevelEncoder):
    """Convolutional sentence encoder (Collobert et al. 2011; Strubell et al. 2017), faster than a BiLSTM."""

    def build(self) -> None:
        c = self.config
        self.embed = self.build_input()
        self.project = nn.Linear(self.embed.output_dim, c.hidden)
        self.convs = nn.ModuleList(
            nn.Conv1d(c.hidden, c.hidden, c.kernel_size, padding=c.kernel_size // 2) for _ in range(c.layers)
        )
        self.dropout = nn.Dropout(c.dropout)
        self._dims = [self.embed.output_dim] + [c.hidden] * c.layers

    @property
    def layer_dims(self) -> list[int]:
        return list(self._dims)

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """Word + character input and its projection to the channels (group 0), then each convolution."""
        return [list(self.embed.parameters()) + list(self.project.parameters())] + [
            list(conv.parameters()) for conv in self.convs
        ]

    def layer_stack(self) -> list[nn.Module]:
        """The word + character input, then each convolution (the first with the projection to the channels)."""
        return [self.embed, nn.ModuleList([self.project, self.convs[0]]), *self.convs[1:]]

    def run_input(self, module: nn.Module, word_ids: Tensor, mask: Tensor, char_ids: Tensor | None = None,
                  shape_ids: Tensor | None = None, affix_ids: Tensor | None = None) -> Tensor:
        return module(word_ids, char_ids, shape_ids, affix_ids)

    def run_layer(self, index: int, module: nn.Module | tuple[nn.Module, nn.Module], states: Tensor,
                  mask: Tensor) -> Tensor:
        """A residual convolution (layer 1's module is the projection to the channels and the convolution); padding stays 0."""
        keep = mask.unsqueeze(-1).to(states.dtype)
        if index == 1:
            project, conv = module
            states = project(states) * keep
        else:
            conv = module
        update = torch.relu(conv(states.transpose(1, 2)).transpose(1, 2))
        return (states + self.dropout(update)) * keep

    def encode_rows(self, word_ids: Tensor, mask: Tensor, char_ids: Tensor | None = None,
                    shape_ids: Tensor | None = None, affix_ids: Tensor | None = None) -> list[Tensor]:
        states = self.run_input(self.embed, word_ids, mask, char_ids, shape_ids, affix_ids)
        layers = [states]
        for index, conv in enumerate(self.convs, start=1):
            states = self.run_layer(index, (self.project, conv) if index == 1 else conv, states, mask)
            layers.append(states)
        return layers
