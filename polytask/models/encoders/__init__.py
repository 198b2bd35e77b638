"""Shared encoders, keyed by ``encoder.type``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import BaseModel

from polytask.config import ENCODER_FIELDS, ENCODER_OPTIONS, EncoderConfig
from polytask.errors import ConfigError
from polytask.models.encoders.base import Encoder, EncoderOutput, Featurizer

ENCODERS: dict[str, Callable[[EncoderConfig], Encoder]] = {}


def register_encoder(name: str, *, options: type[BaseModel] | None = None, fields: Sequence[str] = ()):
    """Decorator adding an encoder factory for ``encoder.type: name``.

    ``options``: a pydantic model that validates ``encoder.options`` (its errors name the field,
    e.g. ``encoder.options.width``; the encoder reads the validated ``config.options`` dict).
    ``fields``: the shared ``encoder`` fields it reads (``word_dim``, ``chars``, ...); setting
    any other ``encoder`` field with this type is an error naming the field and the type.
    """
    unknown = sorted(set(fields) - set(EncoderConfig.model_fields) - {"options"})
    if unknown:
        raise ValueError(f"register_encoder({name!r}): {', '.join(unknown)} are not encoder fields")

    def decorate(factory: Callable[[EncoderConfig], Encoder]):
        ENCODERS[name] = factory
        ENCODER_FIELDS[name] = (*fields, "options") if options is not None else tuple(fields)
        if options is not None:
            ENCODER_OPTIONS[name] = options
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
