"""Where an architecture splits the encoder, and the layers above the split it owns.

Every architecture but hard sharing has *shared* bottom layers and its own *upper* layers
(a group's tower, an expert, an extraction level). ``Split`` decides the cut from the
``sharing`` section: with ``blocks: copy`` the upper layers are copies of the encoder's own
layers above ``shared_layers`` (an encoder with a ``layer_stack``: BiLSTM, CNN); with
``blocks: ffn`` the whole encoder is shared and the upper layers are new feed-forward blocks
on its top layer (any encoder, the only choice for a pretrained transformer, which is not copied).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from polytask.config import SharingConfig
from polytask.errors import ConfigError
from polytask.models.encoders.base import Encoder

FFN_DROPOUT = 0.1


@dataclass(frozen=True)
class Split:
    """Encoder layers 0..``top_shared`` are shared (-1: none, not even the input); ``upper`` layers follow.

    ``copy``: the upper layers are (copies of) encoder layers ``top_shared + 1 ..``; else
    ``upper`` feed-forward blocks on the encoder's top layer (``top_shared`` is then the top).
    """

    top_shared: int
    upper: int
    copy: bool
    dims: tuple[int, ...]
    hidden: int | None = None

    @classmethod
    def resolve(cls, encoder: Encoder, config: SharingConfig, default_shared: int | None = None,
                unshared_input: bool = False, shared_input_default: bool = True) -> Split:
        """The split ``config`` asks for (``default_shared``: shared layers when unset, default all but the top)."""
        stack = encoder.layer_stack()
        dims = list(encoder.layer_dims)
        top = len(dims) - 1
        blocks = config.blocks or ("copy" if stack is not None else "ffn")
        shared_input = shared_input_default if config.shared_input is None else config.shared_input
        if not shared_input and not unshared_input:
            raise ConfigError(f"sharing type {config.type!r} always shares the input representation",
                              field="sharing.shared_input")
        if blocks == "ffn":
            if config.shared_layers not in (None, top):
                raise ConfigError(f"blocks: ffn shares the whole encoder ({top} layers); drop shared_layers or use "
                                  "blocks: copy", field="sharing.shared_layers")
            if not shared_input:
                raise ConfigError("blocks: ffn shares the whole encoder, input included", field="sharing.shared_input")
            width = dims[-1]
            return cls(top, config.ffn_blocks, False, (*dims, *[width] * config.ffn_blocks), config.ffn_hidden)
        if stack is None:
            raise ConfigError(f"a {type(encoder).__name__} cannot be split into layers to copy; use blocks: ffn "
                              "(feed-forward blocks on top of it)", field="sharing.blocks")
        shared = config.shared_layers if config.shared_layers is not None else (
            default_shared if default_shared is not None else top - 1)
        shared = max(0, min(shared, top))
        if config.shared_layers is not None and config.shared_layers > top:
            raise ConfigError(f"{config.shared_layers} is more than the encoder's {top} layers",
                              field="sharing.shared_layers")
        if not shared_input:
            if shared:
                raise ConfigError("with shared_input: false no layer above the input can be shared; set "
                                  "shared_layers: 0", field="sharing.shared_layers")
            return cls(-1, top + 1, True, tuple(dims))
        if shared >= top:
            raise ConfigError(f"shared_layers {shared} leaves no encoder layer above it to copy; lower it or use "
                              "blocks: ffn", field="sharing.shared_layers")
        return cls(shared, top - shared, True, tuple(dims))

    def run_bottom(self, encoder: Encoder, inputs: Mapping[str, Tensor]) -> list[Tensor]:
        """The shared layers' states (empty when nothing is shared)."""
        if self.top_shared < 0:
            return []
        if not self.copy:
            return list(encoder(**inputs).layers)
        stack = encoder.layer_stack()
        states = encoder.run_input(stack[0], **inputs)
        layers = [states]
        for index in range(1, self.top_shared + 1):
            states = encoder.run_layer(index, stack[index], states, inputs["mask"])
            layers.append(states)
        return layers

    def upper_layers(self, encoder: Encoder, own: bool = False) -> UpperLayers:
        """One set of upper layers: the encoder's own modules (``own``, copy splits only), a copy of them, or new blocks."""
        if self.copy:
            return StackLayers(encoder, self.top_shared + 1, self.upper, own)
        return FeedForwardLayers(self.dims[-1], self.upper, self.hidden)


class UpperLayers(nn.Module):
    """Layers above the split: ``run`` maps the states below (or the inputs, from layer 0) to one tensor per layer."""

    count: int

    def run(self, encoder: Encoder, states: Tensor | None, mask: Tensor, inputs: Mapping[str, Tensor]) -> list[Tensor]:
        raise NotImplementedError

    def run_one(self, index: int, encoder: Encoder, states: Tensor | None, mask: Tensor,
                inputs: Mapping[str, Tensor]) -> Tensor:
        """Only the ``index``-th of these layers (0-based), from the states below it."""
        raise NotImplementedError

    def depth(self, index: int) -> int:
        """The encoder layer group the ``index``-th layer's parameters belong with."""
        raise NotImplementedError

    def layer_parameters(self, index: int) -> list[nn.Parameter]:
        raise NotImplementedError

    def reinitialise(self) -> None:
        from polytask.models.sharing.base import reinitialise

        reinitialise(self)


class Towers:
    """One set of upper layers per branch (a task group, a task) of an architecture over a ``Split``.

    Mixed into branched and cross-stitch sharing. With a copy split the first tower is the
    encoder's own upper layers, kept unregistered here (the encoder registers them) and the others
    are copies in ``towers``; otherwise ``towers`` holds new blocks, one per branch, initialised alike.
    """

    split: Split
    towers: nn.ModuleList

    def lay_out_towers(self, encoder: Encoder, count: int) -> None:
        first = self.split.upper_layers(encoder, own=self.split.copy)
        others = [self.split.upper_layers(encoder) for _ in range(count - 1)]
        if self.split.copy:
            object.__setattr__(self, "_first_tower", first)  # the encoder's own modules, registered there
            self.towers = nn.ModuleList(others)
        else:
            self.towers = nn.ModuleList([first, *others])

    def initialise_towers(self) -> None:
        """New blocks: fresh weights, every branch's the same (copied layers keep the encoder's)."""
        if not self.split.copy:
            self.towers[0].reinitialise()
            for tower in self.towers[1:]:
                tower.load_state_dict(self.towers[0].state_dict())

    def tower_at(self, index: int) -> UpperLayers:
        if self.split.copy:
            return self._first_tower if index == 0 else self.towers[index - 1]
        return self.towers[index]


class StackLayers(UpperLayers):
    """Encoder layers ``first .. first + count - 1``: the encoder's own modules (not registered here) or copies."""

    def __init__(self, encoder: Encoder, first: int, count: int, own: bool = False):
        super().__init__()
        self.first, self.count, self.own = first, count, own
        modules = encoder.layer_stack()[first : first + count]
        if own:
            object.__setattr__(self, "_encoder_modules", modules)  # the encoder's parameters stay the encoder's
        else:
            self.layers = nn.ModuleList(copy.deepcopy(module) for module in modules)

    def _stack_modules(self) -> list[nn.Module]:
        return self._encoder_modules if self.own else list(self.layers)

    def run_one(self, index: int, encoder: Encoder, states: Tensor | None, mask: Tensor,
                inputs: Mapping[str, Tensor]) -> Tensor:
        module, layer = self._stack_modules()[index], self.first + index
        return encoder.run_input(module, **inputs) if layer == 0 else encoder.run_layer(layer, module, states, mask)

    def run(self, encoder: Encoder, states: Tensor | None, mask: Tensor, inputs: Mapping[str, Tensor]) -> list[Tensor]:
        out = []
        for index in range(self.count):
            states = self.run_one(index, encoder, states, mask, inputs)
            out.append(states)
        return out

    def depth(self, index: int) -> int:
        return self.first + index

    def layer_parameters(self, index: int) -> list[nn.Parameter]:
        return list(self._stack_modules()[index].parameters())

    def reinitialise(self) -> None:
        if self.own:
            raise ValueError("the encoder's own layers are not re-initialised here")
        super().reinitialise()


class FeedForwardBlock(nn.Module):
    """A position-wise residual feed-forward block (pre-norm, GELU; Vaswani et al. 2017): states → states."""

    def __init__(self, dim: int, hidden: int, dropout: float = FFN_DROPOUT):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.inner = nn.Linear(dim, hidden)
        self.outer = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, states: Tensor, mask: Tensor) -> Tensor:
        update = self.outer(self.dropout(torch.nn.functional.gelu(self.inner(self.norm(states)))))
        return (states + self.dropout(update)) * mask.unsqueeze(-1).to(states.dtype)


class FeedForwardLayers(UpperLayers):
    """``count`` feed-forward blocks on the encoder's top layer."""

    def __init__(self, dim: int, count: int, hidden: int | None = None):
        super().__init__()
        self.count = count
        self.blocks = nn.ModuleList(FeedForwardBlock(dim, hidden or 2 * dim) for _ in range(count))

    def run_one(self, index: int, encoder: Encoder, states: Tensor | None, mask: Tensor,
                inputs: Mapping[str, Tensor]) -> Tensor:
        return self.blocks[index](states, mask)

    def run(self, encoder: Encoder, states: Tensor | None, mask: Tensor, inputs: Mapping[str, Tensor]) -> list[Tensor]:
        out = []
        for block in self.blocks:
            states = block(states, mask)
            out.append(states)
        return out

    def depth(self, index: int) -> int:
        return -1  # above every encoder layer: the top group

    def layer_parameters(self, index: int) -> list[nn.Parameter]:
        return list(self.blocks[index].parameters())
