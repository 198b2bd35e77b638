"""Affix features: which affixes a word has, their ids, their effect on the encoders, the saved vocabularies."""

from __future__ import annotations

import pytest
import torch

from polytask.config import EncoderConfig, validate_config
from polytask.data.example import Example
from polytask.data.word_arrays import UNKNOWN_ID, affix_id_array, affixes, padding_mask
from polytask.errors import ConfigError
from polytask.models.encoders import build_encoder
from polytask.models.encoders.affix_features import AFFIX_DIM
from polytask.models.encoders.words import WordFeaturizer
from tests.conftest import tiny_config_dict


@pytest.mark.parametrize(("word", "expected"), [
    ("Running", ("run", "ing")), ("IT", ("it", "it")), ("a", ("a", "a")), ("1984", ("000", "000")),
    ("Straße", ("str", "aße")), ("", ("", "")),
])
def test_affixes_are_the_lowercased_digit_normalised_ends(word: str, expected: tuple[str, str]) -> None:
    assert affixes(word) == expected


def test_affix_ids_pad_with_zero_and_read_unseen_affixes_as_unknown() -> None:
    sentences = [["walked", "quickly"], ["talked"]]
    ids = affix_id_array(sentences, {"wal": 2, "tal": 3}, {"ked": 2}, padding_mask(sentences))
    assert ids.shape == (2, 2, 2)
    assert ids.tolist() == [[[2, 2], [UNKNOWN_ID, UNKNOWN_ID]], [[3, 2], [0, 0]]]


def test_the_featurizer_keeps_affixes_seen_twice_and_round_trips() -> None:
    featurizer = WordFeaturizer(affix_features=True)
    featurizer.fit([Example(tokens=["walked", "talked", "Walking", "quickly"])])
    assert featurizer.suffixes.itos[2:] == ["ked"]  # "ing" and "kly" once only
    assert featurizer.prefixes.itos[2:] == ["wal"]  # "Walking" lower-cased
    inputs = featurizer([["walked", "jumped", "Walrus"]])
    assert inputs["affix_ids"].tolist() == [[[2, 2], [UNKNOWN_ID, UNKNOWN_ID], [2, UNKNOWN_ID]]]
    again = WordFeaturizer()
    again.load_json(featurizer.to_json())
    assert again.affix_features and again.prefixes == featurizer.prefixes and again.suffixes == featurizer.suffixes
    assert torch.equal(again([["walked", "jumped"]])["affix_ids"], featurizer([["walked", "jumped"]])["affix_ids"])
    assert "affix_ids" not in WordFeaturizer()([["walked"]])
    assert "prefixes" not in WordFeaturizer().to_json()


@pytest.mark.parametrize("kind", ["bilstm", "cnn"])
def test_affix_features_tell_unknown_words_apart_by_their_ends(kind: str) -> None:
    def encode(affix_features: bool, word: str) -> torch.Tensor:
        torch.manual_seed(0)
        encoder = build_encoder(EncoderConfig(type=kind, word_dim=8, chars=False, hidden=8, layers=1,
                                              affix_features=affix_features))
        encoder.featurizer.fit([Example(tokens=["walked", "talked", "lovely", "timely"])])  # "ked", "ely" twice
        encoder.build()
        encoder.eval()
        with torch.no_grad():
            return encoder(**encoder.featurizer([[word]])).layers[-1]

    # both words are unknown (word id 1) with no characters read: only the suffix tells them apart
    assert torch.equal(encode(False, "kicked"), encode(False, "wisely"))
    assert not torch.equal(encode(True, "kicked"), encode(True, "wisely"))
    assert torch.equal(encode(True, "kicked"), encode(True, "picked"))  # unknown prefixes, the same known suffix
    plain = build_encoder(EncoderConfig(type=kind, word_dim=8, chars=False))
    with_affixes = build_encoder(EncoderConfig(type=kind, word_dim=8, chars=False, affix_features=True))
    for encoder in (plain, with_affixes):
        encoder.featurizer.fit([Example(tokens=["a"])])
        encoder.build()
    assert with_affixes.layer_dims[0] == plain.layer_dims[0] + 2 * AFFIX_DIM


def test_affix_features_apply_to_word_level_encoders_only() -> None:
    data = tiny_config_dict()
    data["encoder"]["affix_features"] = True
    config = validate_config(data)
    assert validate_config(config.model_dump(mode="json")).encoder.affix_features is True
    data["encoder"] = {"type": "transformer", "model": "minilm", "affix_features": True}
    with pytest.raises(ConfigError, match="affix_features does not apply to encoder type 'transformer'"):
        validate_config(data)


def test_a_run_with_affix_features_reloads_to_the_same_predictions(tmp_path) -> None:
    from polytask.serving.predictor import Predictor
    from polytask.training.run import train_experiment

    data = tiny_config_dict()
    data["encoder"]["affix_features"] = True
    data["training"].update(max_steps=3, epochs=1)
    experiment, _ = train_experiment(validate_config(data), tmp_path / "run", progress=False)
    sentences = [Example(tokens=["Rockwell", "said", "unheard-of", "things"]), Example(tokens=["It", "walked"])]
    trained = Predictor(experiment).predict(sentences)
    reloaded = Predictor.from_run(tmp_path / "run").predict(sentences)
    assert reloaded == trained
    assert [len(r["tasks"]["pos"]["labels"]) for r in reloaded] == [4, 2]
