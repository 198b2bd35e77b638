"""One shared encoder and one head per task: every task's output from one encoder pass."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from torch import Tensor, nn

from polytask.config import HeadConfig
from polytask.models.encoders.base import Encoder, EncoderOutput
from polytask.models.heads import SentencePairHead, SequenceHead, TokenHead
from polytask.models.heads.scalar_mix import MixedLayersHead

HEADS: dict[str, type[nn.Module]] = {"token": TokenHead, "sequence": SequenceHead}
PAIR_HEADS: dict[str, type[nn.Module]] = {"joint": SequenceHead, "separate": SentencePairHead}
"""The head of a sentence-pair task, by the encoder's ``pair_encoding``: a jointly encoded pair is
pooled like one sentence; separately encoded sentences are pooled alone and combined."""


@dataclass
class ModelOutput:
    """Per-task logits and the shared states the heads read (for representation gradients).

    ``encoded`` is one ``EncoderOutput``, or one per task for a task-conditioned encoder.
    """

    logits: dict[str, Tensor]
    encoded: EncoderOutput | dict[str, EncoderOutput]
    representation: list[Tensor]


class MultiTaskModel(nn.Module):
    """Hard parameter sharing: a shared encoder plus task heads reading chosen encoder layers.

    A head reads one layer (``head_layers[task]`` is its index) or, with ``layer: mix``, a learned
    mix of every layer of the top layer's size (``head_layers[task]`` lists them). A
    task-conditioned encoder (per-task adapters) encodes once per task; any other encodes once.
    """

    def __init__(self, encoder: Encoder, head_specs: Mapping[str, tuple[str, int, HeadConfig]],
                 decoders: Mapping[str, nn.Module] | None = None):
        """``head_specs[task] = (level, outputs, head_config)``; the encoder must be built.

        ``level`` is ``token``, ``sequence`` or ``pair`` (a sentence-pair task: its head is
        ``PAIR_HEADS[encoder.pair_encoding]``).

        ``decoders[task]``, the task's decoder (a CRF's transitions), becomes the head's ``decoder``
        submodule: its parameters are the task's own, trained, saved and moved with the head.
        """
        super().__init__()
        self.encoder = encoder
        dims = encoder.layer_dims
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
        if not self.encoder.task_conditioned:
            return self.decode(self.encoder(**inputs), tasks)
        tasks = list(self.heads.keys()) if tasks is None else list(tasks)
        encoded = {t: self.encoder(**inputs, task=t) for t in tasks}
        logits = {t: self.heads[t](self._head_input(t, encoded[t]), encoded[t].mask, encoded[t].segments)
                  for t in tasks}
        representation = [encoded[t].layers[i] for t in tasks for i in self._taps(t)]
        return ModelOutput(logits=logits, encoded=encoded, representation=representation)

    def decode(self, encoded: EncoderOutput, tasks: Iterable[str] | None = None) -> ModelOutput:
        """Run the heads of ``tasks`` (default all) on already-encoded states."""
        tasks = list(self.heads.keys()) if tasks is None else list(tasks)
        logits = {t: self.heads[t](self._head_input(t, encoded), encoded.mask, encoded.segments) for t in tasks}
        used = sorted({i for t in tasks for i in self._taps(t)})
        return ModelOutput(logits=logits, encoded=encoded, representation=[encoded.layers[i] for i in used])

    def _taps(self, task: str) -> list[int]:
        tap = self.head_layers[task]
        return [tap] if isinstance(tap, int) else list(tap)

    def _head_input(self, task: str, encoded: EncoderOutput) -> Tensor | list[Tensor]:
        tap = self.head_layers[task]
        return encoded.layers[tap] if isinstance(tap, int) else [encoded.layers[i] for i in tap]

    def task_encoder_parameter_ids(self) -> set[int]:
        """``id``s of the encoder parameters that belong to a single task (per-task adapters)."""
        return {id(p) for task in self.heads for p in self.encoder.task_parameters(task).values()}

    def shared_parameters(self) -> dict[str, nn.Parameter]:
        """Trainable encoder parameters that every task uses (a task's own adapter is not shared)."""
        own = self.task_encoder_parameter_ids()
        return {f"encoder.{n}": p for n, p in self.encoder.named_parameters() if p.requires_grad and id(p) not in own}

    def task_parameters(self, task: str) -> dict[str, nn.Parameter]:
        """The trainable parameters only ``task`` uses: its head and any encoder parameters of its own."""
        own = {f"encoder.{n}": p for n, p in self.encoder.task_parameters(task).items() if p.requires_grad}
        return own | {f"heads.{task}.{n}": p for n, p in self.heads[task].named_parameters() if p.requires_grad}
