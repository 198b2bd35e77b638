"""Shared encoders, keyed by ``encoder.type``."""

from __future__ import annotations

from collections.abc import Callable

from polytask.config import EncoderConfig
from polytask.errors import ConfigError
from polytask.models.encoders.base import Encoder, EncoderOutput, Featurizer

ENCODERS: dict[str, Callable[[EncoderConfig], Encoder]] = {}


def register_encoder(name: str):
    def decorate(factory: Callable[[EncoderConfig], Encoder]):
        ENCODERS[name] = factory
        return factory

    return decorate


def _builtin() -> None:
    from polytask.models.encoders.bilstm import BiLSTMEncoder
    from polytask.models.encoders.cnn import CNNEncoder
    from polytask.models.encoders.transformer import (
        TransformerEncoder,  # transformers is imported only when used
    )

    ENCODERS.setdefault("bilstm", BiLSTMEncoder)
    ENCODERS.setdefault("cnn", CNNEncoder)
    ENCODERS.setdefault("transformer", TransformerEncoder)


def build_encoder(config: EncoderConfig) -> Encoder:
    """An unbuilt encoder: fit its featurizer on training data, then call ``build()``."""
    _builtin()
    if config.type not in ENCODERS:
        raise ConfigError(f"unknown encoder {config.type!r}; choose one of {', '.join(sorted(ENCODERS))}", field="encoder.type")
    return ENCODERS[config.type](config)


__all__ = ["ENCODERS", "Encoder", "EncoderOutput", "Featurizer", "build_encoder", "register_encoder"]
