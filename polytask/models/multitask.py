"""One shared encoder and one head per task: every task's output from one encoder pass."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from torch import Tensor, nn

from polytask.config import HeadConfig
from polytask.models.encoders.base import Encoder, EncoderOutput
from polytask.models.heads import SequenceHead, TokenHead

HEADS: dict[str, type[nn.Module]] = {"token": TokenHead, "sequence": SequenceHead}


@dataclass
class ModelOutput:
    """Per-task logits and the shared states the heads read (for representation gradients)."""

    logits: dict[str, Tensor]
    encoded: EncoderOutput
    representation: list[Tensor]


class MultiTaskModel(nn.Module):
    """Hard parameter sharing: a shared encoder plus task heads reading chosen encoder layers."""

    def __init__(self, encoder: Encoder, head_specs: Mapping[str, tuple[str, int, HeadConfig]]):
        """``head_specs[task] = (level, outputs, head_config)``; the encoder must be built."""
        super().__init__()
        self.encoder = encoder
        dims = encoder.layer_dims
        self.head_layers: dict[str, int] = {}
        self.heads = nn.ModuleDict()
        for task, (level, outputs, config) in head_specs.items():
            if not -len(dims) <= config.layer < len(dims):
                from polytask.errors import ConfigError

                raise ConfigError(f"layer {config.layer} does not exist: the encoder has layers 0..{len(dims) - 1}",
                                  field=f"heads.{task}.layer")
            layer = config.layer % len(dims)
            self.head_layers[task] = layer
            self.heads[task] = HEADS[level](dims[layer], outputs, hidden=config.hidden, dropout=config.dropout,
                                            pooling=config.pooling)

    @property
    def tasks(self) -> list[str]:
        return list(self.heads.keys())

    def forward(self, inputs: Mapping[str, Tensor], tasks: Iterable[str] | None = None) -> ModelOutput:
        encoded = self.encoder(**inputs)
        return self.decode(encoded, tasks)

    def decode(self, encoded: EncoderOutput, tasks: Iterable[str] | None = None) -> ModelOutput:
        """Run the heads of ``tasks`` (default all) on already-encoded states."""
        tasks = list(self.heads.keys()) if tasks is None else list(tasks)
        logits = {t: self.heads[t](encoded.layers[self.head_layers[t]], encoded.mask) for t in tasks}
        used = sorted({self.head_layers[t] for t in tasks})
        return ModelOutput(logits=logits, encoded=encoded, representation=[encoded.layers[i] for i in used])

    def shared_parameters(self) -> dict[str, nn.Parameter]:
        return {f"encoder.{n}": p for n, p in self.encoder.named_parameters() if p.requires_grad}

    def task_parameters(self, task: str) -> dict[str, nn.Parameter]:
        return {f"heads.{task}.{n}": p for n, p in self.heads[task].named_parameters() if p.requires_grad}
