"""Word-shape features: the classes, their effect on every encoder's output, the config round trip."""

from __future__ import annotations

import pytest
import torch

from polytask.config import EncoderConfig, validate_config
from polytask.data.example import Example
from polytask.errors import ConfigError
from polytask.models.encoders import build_encoder
from polytask.models.encoders.case_features import CASE_DIM, SHAPES, shape_ids, word_shape
from tests.conftest import tiny_config_dict


@pytest.mark.parametrize(("word", "shape"), [
    ("USA", "all_caps"), ("U.S.", "all_caps"), ("CD-ROM", "all_caps"), ("Paris", "initial_cap"),
    ("O'neil", "initial_cap"), ("the", "lower"), ("e-mail", "lower"), ("iPhone", "mixed"), ("McDonald", "mixed"),
    ("1,000", "digits"), ("3.5", "digits"), (",", "punctuation"), ("--", "punctuation"), ("", "punctuation"),
    ("北京", "other"), ("Straße", "initial_cap"),
])
def test_word_shapes(word: str, shape: str) -> None:
    assert word_shape(word) == shape


def test_shape_ids_pad_with_zero() -> None:
    ids = shape_ids([["Paris", "is", "BIG"], ["1"]], 3)
    assert ids.tolist() == [[SHAPES.index("initial_cap") + 1, SHAPES.index("lower") + 1, SHAPES.index("all_caps") + 1],
                            [SHAPES.index("digits") + 1, 0, 0]]


@pytest.mark.parametrize("kind", ["bilstm", "cnn"])
def test_case_features_tell_cased_words_apart_in_a_lowercased_encoder(kind: str) -> None:
    def encode(case_features: bool, words: list[str]) -> torch.Tensor:
        torch.manual_seed(0)
        config = EncoderConfig(type=kind, word_dim=8, chars=False, hidden=8, layers=1, lowercase=True,
                               case_features=case_features)
        encoder = build_encoder(config)
        encoder.featurizer.fit([Example(tokens=["apple", "pie"])])
        encoder.build()
        encoder.eval()
        with torch.no_grad():
            return encoder(**encoder.featurizer([words])).layers[-1]

    assert torch.equal(encode(False, ["apple", "pie"]), encode(False, ["Apple", "pie"]))
    assert not torch.equal(encode(True, ["apple", "pie"]), encode(True, ["Apple", "pie"]))
    plain = build_encoder(EncoderConfig(type=kind, word_dim=8, chars=False))
    plain.featurizer.fit([Example(tokens=["a"])])
    plain.build()
    cased = build_encoder(EncoderConfig(type=kind, word_dim=8, chars=False, case_features=True))
    cased.featurizer.fit([Example(tokens=["a"])])
    cased.build()
    assert cased.layer_dims[0] == plain.layer_dims[0] + CASE_DIM


def test_case_features_config_round_trip_and_fields_per_type() -> None:
    data = tiny_config_dict()
    data["encoder"]["case_features"] = True
    config = validate_config(data)
    assert validate_config(config.model_dump(mode="json")).encoder.case_features is True
    assert "case_features" in config.model_dump()["encoder"]
    transformer = EncoderConfig(type="transformer", model="minilm", case_features=True)
    assert transformer.model_dump()["case_features"] is True
    data["encoder"] = {"type": "custom-without-it", "case_features": True}
    from polytask.config import ENCODER_FIELDS

    ENCODER_FIELDS["custom-without-it"] = ()
    try:
        with pytest.raises(ConfigError, match="case_features does not apply"):
            validate_config(data)
    finally:
        del ENCODER_FIELDS["custom-without-it"]


def test_a_run_with_case_features_trains_and_reloads(tmp_path) -> None:
    from polytask.serving.predictor import Predictor
    from polytask.training.run import train_run

    data = tiny_config_dict()
    data["encoder"]["case_features"] = True
    data["training"].update(max_steps=2, epochs=1)
    train_run(validate_config(data), tmp_path / "run", progress=False)
    records = Predictor.from_run(tmp_path / "run").predict([Example(tokens=["Rockwell", "said", "IT"])])
    assert len(records[0]["tasks"]["pos"]["labels"]) == 3
