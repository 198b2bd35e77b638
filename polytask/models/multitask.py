"""The multi-task model: an encoder, a sharing architecture and one head per task.

Every task's output comes from one forward pass: the sharing architecture (``models/sharing``,
hard sharing by default) turns the batch into each task's word states, and each task's head
reads the layer(s) it is configured to read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from torch import Tensor, nn

from polytask.config import HeadConfig, SharingConfig
from polytask.models.encoders.base import Encoder, EncoderOutput
from polytask.models.heads import SentencePairHead, SequenceHead, TokenHead
from polytask.models.heads.scalar_mix import MixedLayersHead
from polytask.models.sharing.base import RepresentationCut, SharingArchitecture, TaskStates
from polytask.models.sharing.hard import HardSharing

HEADS: dict[str, type[nn.Module]] = {"token": TokenHead, "sequence": SequenceHead}
PAIR_HEADS: dict[str, type[nn.Module]] = {"joint": SequenceHead, "separate": SentencePairHead}
"""The head of a sentence-pair task, by the encoder's ``pair_encoding``: a jointly encoded pair is
pooled like one sentence; separately encoded sentences are pooled alone and combined."""


@dataclass
class ModelOutput:
    """Per-task logits, the states they were read from, and the representation cut (for representation gradients).

    ``encoded`` holds each task's ``TaskStates``; ``representation`` the shared tensors that
    task-specific modules read (``RepresentationCut``: the tapped encoder layers under hard sharing).
    """

    logits: dict[str, Tensor]
    encoded: dict[str, TaskStates] | EncoderOutput
    representation: list[Tensor]


class MultiTaskModel(nn.Module):
    """A shared encoder, a sharing architecture (default: hard sharing) and task heads reading chosen layers.

    A head reads one layer of its task's states (``head_layers[task]`` is its index) or, with
    ``layer: mix``, a learned mix of every layer of the top layer's size (``head_layers[task]``
    lists them). Parameters are either shared (what balancing methods act on) or one task's own:
    its head, a task-conditioned encoder's part for it (per-task adapters) and the architecture's
    part for it (a gate, a tower).
    """

    def __init__(self, encoder: Encoder, head_specs: Mapping[str, tuple[str, int, HeadConfig]],
                 decoders: Mapping[str, nn.Module] | None = None, sharing: SharingArchitecture | None = None):
        """``head_specs[task] = (level, outputs, head_config)``; the encoder must be built.

        ``level`` is ``token``, ``sequence`` or ``pair`` (a sentence-pair task: its head is
        ``PAIR_HEADS[encoder.pair_encoding]``).

        ``decoders[task]``, the task's decoder (a CRF's transitions), becomes the head's ``decoder``
        submodule: its parameters are the task's own, trained, saved and moved with the head.
        ``sharing``: the architecture over ``encoder`` (default: hard sharing); its random
        parameters are created after the heads (``SharingArchitecture.build``).
        """
        super().__init__()
        self.encoder = encoder
        sharing = sharing if sharing is not None else HardSharing(encoder, SharingConfig(), list(head_specs))
        dims = sharing.layer_dims
        self.head_layers: dict[str, int | list[int]] = {}
        self.heads = nn.ModuleDict()
        for task, (level, outputs, config) in head_specs.items():
            encoder.add_task(task)
            head_type = self._head_type(task, level)
            if config.layer == "mix":
                layers = [i for i, dim in enumerate(dims) if dim == dims[-1]]
                self.head_layers[task] = layers
                head = head_type(dims[-1], outputs, hidden=config.hidden, dropout=config.dropout,
                                 pooling=config.pooling)
                self.heads[task] = MixedLayersHead(len(layers), head)
                continue
            if not -len(dims) <= config.layer < len(dims):
                from polytask.errors import ConfigError

                raise ConfigError(f"layer {config.layer} does not exist: the encoder has layers 0..{len(dims) - 1}",
                                  field=f"heads.{task}.layer")
            layer = config.layer % len(dims)
            self.head_layers[task] = layer
            self.heads[task] = head_type(dims[layer], outputs, hidden=config.hidden, dropout=config.dropout,
                                         pooling=config.pooling)
        for task, decoder in (decoders or {}).items():
            self.heads[task].decoder = decoder
        sharing.build()
        self.sharing = sharing

    def _head_type(self, task: str, level: str) -> type[nn.Module]:
        if level != "pair":
            return HEADS[level]
        if self.encoder.pair_encoding is None:
            from polytask.errors import ConfigError

            raise ConfigError(f"encoder {type(self.encoder).__name__} cannot read sentence pairs (it sets no "
                              f"pair_encoding)", field=f"tasks.{task}.data")
        return PAIR_HEADS[self.encoder.pair_encoding]

    @property
    def tasks(self) -> list[str]:
        return list(self.heads.keys())

    def forward(self, inputs: Mapping[str, Tensor], tasks: Iterable[str] | None = None) -> ModelOutput:
        tasks = list(self.heads.keys()) if tasks is None else list(tasks)
        cut = RepresentationCut()
        states = self.sharing(inputs, tasks, cut)
        logits = {t: self.heads[t](self._head_input(t, states[t], cut), states[t].mask, states[t].segments)
                  for t in tasks}
        return ModelOutput(logits=logits, encoded=states, representation=cut.tensors)

    def decode(self, encoded: EncoderOutput, tasks: Iterable[str] | None = None) -> ModelOutput:
        """Run the heads of ``tasks`` (default all) on already-encoded, hard-shared states (ONNX export)."""
        tasks = list(self.heads.keys()) if tasks is None else list(tasks)
        states = TaskStates(encoded.layers, [True] * len(encoded.layers), encoded.mask, encoded.segments)
        cut = RepresentationCut()
        logits = {t: self.heads[t](self._head_input(t, states, cut), encoded.mask, encoded.segments) for t in tasks}
        return ModelOutput(logits=logits, encoded=encoded, representation=cut.tensors)

    def _taps(self, task: str) -> list[int]:
        tap = self.head_layers[task]
        return [tap] if isinstance(tap, int) else list(tap)

    def _head_input(self, task: str, states: TaskStates, cut: RepresentationCut) -> Tensor | list[Tensor]:
        """The layer(s) ``task``'s head reads; shared layers through the representation cut."""

        def read(index: int) -> Tensor:
            layer = states.layers[index]
            return cut.read(layer) if states.shared[index] else layer

        tap = self.head_layers[task]
        return read(tap) if isinstance(tap, int) else [read(i) for i in tap]

    def penalty(self) -> Tensor | None:
        """The sharing architecture's regulariser (soft sharing), added to each step's loss outside balancing."""
        return self.sharing.penalty()

    def task_encoder_parameter_ids(self) -> set[int]:
        """``id``s of the parameters besides the heads that belong to a single task (per-task adapters, gates, towers)."""
        own = {id(p) for task in self.heads for p in self.encoder.task_parameters(task).values()}
        return own | {id(p) for task in self.heads for p in self.sharing.task_parameters(task)}

    def shared_parameters(self) -> dict[str, nn.Parameter]:
        """Trainable parameters that more than one task uses: the encoder's and the architecture's shared parts."""
        own = self.task_encoder_parameter_ids()
        return {name: p for name, p in self.named_parameters()
                if p.requires_grad and id(p) not in own and not name.startswith("heads.")}

    def task_parameters(self, task: str) -> dict[str, nn.Parameter]:
        """The trainable parameters only ``task`` uses: its head and its own encoder and architecture parts."""
        own = {id(p) for p in self.encoder.task_parameters(task).values()} | \
            {id(p) for p in self.sharing.task_parameters(task)}
        parts = {name: p for name, p in self.named_parameters()
                 if id(p) in own and p.requires_grad and not name.startswith("heads.")}
        return parts | {f"heads.{task}.{n}": p for n, p in self.heads[task].named_parameters() if p.requires_grad}

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """The shared parameters bottom to top: ``encoder.layer_groups()`` plus the architecture's shared parts by depth."""
        groups = [list(group) for group in self.encoder.layer_groups()]
        self.sharing.extend_layer_groups(groups)
        own = self.task_encoder_parameter_ids()
        return [[p for p in group if id(p) not in own] for group in groups]
