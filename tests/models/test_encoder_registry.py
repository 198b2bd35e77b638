"""Encoder options are checked per encoder type: built-ins by their fields, registered encoders by their own model."""

from __future__ import annotations

import pydantic
import pytest
import torch
from torch import nn

from polytask.config import ENCODER_FIELDS, EncoderConfig, validate_config
from polytask.errors import ConfigError
from polytask.models.encoders import register_encoder
from polytask.models.encoders.base import Encoder, EncoderOutput
from polytask.models.encoders.words import WordFeaturizer
from polytask.training.setup import build_experiment
from tests.conftest import tiny_config_dict


class MeanPoolOptions(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    width: int = pydantic.Field(8, gt=0)


@register_encoder("test-bag-of-words", options=MeanPoolOptions, fields=("word_dim",))
class BagOfWords(Encoder):
    """A one-layer encoder whose width comes from its own ``encoder.options``."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.featurizer = WordFeaturizer(chars=False)

    def build(self) -> None:
        self.embed = nn.Embedding(len(self.featurizer.words), self.config.word_dim)
        self.project = nn.Linear(self.config.word_dim, self.config.options["width"])

    @property
    def layer_dims(self) -> list[int]:
        return [self.config.word_dim, self.config.options["width"]]

    def forward(self, word_ids: torch.Tensor, mask: torch.Tensor, **_: torch.Tensor) -> EncoderOutput:
        embedded = self.embed(word_ids)
        return EncoderOutput([embedded, torch.tanh(self.project(embedded))], mask)


def with_encoder(encoder: dict) -> dict:
    data = tiny_config_dict()
    data["encoder"] = encoder
    return data


def error_of(encoder: dict) -> str:
    with pytest.raises(ConfigError) as error:
        validate_config(with_encoder(encoder), file="exp.yaml")
    assert "\n" not in str(error.value)
    return str(error.value)


@pytest.mark.parametrize("encoder,message", [
    ({"type": "transformer", "model": "minilm", "hidden": 64}, "exp.yaml: encoder.hidden: hidden does not apply to encoder type 'transformer'"),
    ({"type": "transformer", "model": "minilm", "chars": False}, "encoder.chars: chars does not apply to encoder type 'transformer'"),
    ({"type": "bilstm", "kernel_size": 5}, "encoder.kernel_size: kernel_size does not apply to encoder type 'bilstm'"),
    ({"type": "cnn", "max_length": 64}, "encoder.max_length: max_length does not apply to encoder type 'cnn'"),
    ({"type": "bilstm", "options": {"width": 3}}, "encoder.options: options does not apply to encoder type 'bilstm'"),
    ({"type": "test-bag-of-words", "hidden": 3}, "encoder.hidden: hidden does not apply to encoder type 'test-bag-of-words'"),
    ({"type": "test-bag-of-words", "options": {"width": 0}}, "encoder.options.width: Input should be greater than 0 (options of encoder type 'test-bag-of-words')"),
    ({"type": "test-bag-of-words", "options": {"widht": 4}}, "encoder.options.widht: unknown field (check its spelling)"),
])
def test_a_field_of_another_encoder_type_is_a_one_line_error_naming_field_and_type(encoder, message) -> None:
    assert message in error_of(encoder)


def test_the_error_lists_the_fields_of_the_type() -> None:
    message = error_of({"type": "transformer", "model": "minilm", "layers": 3})
    assert "(its fields: " + ", ".join(sorted(ENCODER_FIELDS["transformer"])) + ")" in message


def test_a_field_at_its_default_and_the_fields_of_the_type_pass() -> None:
    assert validate_config(with_encoder({"type": "cnn", "kernel_size": 5, "hidden": 8})).encoder.kernel_size == 5
    # a dump of another config may carry a default value; only a changed value is a mistake
    assert validate_config(with_encoder({"type": "transformer", "model": "minilm", "hidden": 200})).encoder.model == "minilm"


def test_dumps_hold_only_the_type_fields_and_round_trip() -> None:
    config = validate_config(with_encoder({"type": "transformer", "model": "minilm", "chunk_rows": 4}))
    dumped = config.model_dump(mode="json")["encoder"]
    assert set(dumped) == {"type", *ENCODER_FIELDS["transformer"]}
    assert validate_config(config.model_dump(mode="json")).encoder == config.encoder


def test_registered_options_get_their_defaults_and_reach_the_encoder() -> None:
    assert validate_config(with_encoder({"type": "test-bag-of-words"})).encoder.options == {"width": 8}
    config = validate_config(with_encoder({"type": "test-bag-of-words", "word_dim": 6, "options": {"width": 5}}))
    experiment = build_experiment(config)
    assert experiment.model.encoder.layer_dims == [6, 5]


def test_register_encoder_refuses_fields_that_do_not_exist() -> None:
    with pytest.raises(ValueError, match="hiddn"):
        register_encoder("test-typo", fields=("hiddn",))
