"""Singletons read as the unknown word in training (Lample et al. 2016): which ids, how often, only in training."""

from __future__ import annotations

import math

import pytest
import torch

from polytask.config import EncoderConfig, validate_config
from polytask.data.example import Example
from polytask.errors import ConfigError
from polytask.models.encoders import build_encoder
from polytask.models.encoders.words import UNKNOWN_ID, WordFeaturizer
from tests.conftest import tiny_config_dict

TRAIN = [Example(tokens=["the", "cat", "sat"]), Example(tokens=["the", "dog", "sat"]), Example(tokens=["the", "owl"])]


def test_singletons_are_the_last_ids_of_the_vocabulary() -> None:
    featurizer = WordFeaturizer()
    featurizer.fit(TRAIN)
    itos = featurizer.words.itos
    assert set(itos[featurizer.singletons_from:]) == {"cat", "dog", "owl"}
    assert set(itos[2:featurizer.singletons_from]) == {"the", "sat"}
    again = WordFeaturizer()
    again.load_json(featurizer.to_json())
    assert again.singletons_from == featurizer.singletons_from
    saved_before = {key: value for key, value in featurizer.to_json().items() if key != "singletons_from"}
    old = WordFeaturizer()
    old.load_json(saved_before)
    assert old.singletons_from == len(old.words)  # a run saved before the field: no word is treated as a singleton


def test_min_count_above_one_keeps_no_singleton() -> None:
    featurizer = WordFeaturizer(min_count=2)
    featurizer.fit(TRAIN)
    assert featurizer.singletons_from == len(featurizer.words)


def embedding(kind: str, rate: float):
    torch.manual_seed(0)
    encoder = build_encoder(EncoderConfig(type=kind, word_dim=4, chars=False, hidden=4, layers=1,
                                          singleton_unknown_rate=rate))
    encoder.featurizer.fit(TRAIN)
    encoder.build()
    return encoder


@pytest.mark.parametrize("kind", ["bilstm", "cnn"])
def test_rate_one_reads_every_singleton_and_nothing_else_as_unknown(kind: str) -> None:
    encoder = embedding(kind, 1.0)
    ids = encoder.featurizer([["the", "cat", "sat", "owl", "zebra"]])["word_ids"]
    replaced = encoder.embed.unknown_singletons(ids)
    assert replaced.tolist() == [[ids[0, 0].item(), UNKNOWN_ID, ids[0, 2].item(), UNKNOWN_ID, UNKNOWN_ID]]


def test_rate_sets_the_share_of_singletons_replaced() -> None:
    encoder = embedding("bilstm", 0.5)
    ids = torch.full((200, 50), encoder.featurizer.words["cat"])
    ids[:, ::2] = encoder.featurizer.words["the"]
    torch.manual_seed(3)
    replaced = encoder.embed.unknown_singletons(ids)
    assert torch.equal(replaced[:, ::2], ids[:, ::2])  # frequent words never
    share = (replaced[:, 1::2] == UNKNOWN_ID).float().mean().item()
    assert abs(share - 0.5) < 5 * math.sqrt(0.25 / 5000)  # 5 sigma of 5,000 Bernoulli(0.5) draws


def test_only_training_replaces_and_a_zero_rate_draws_no_random_number() -> None:
    words = [["the", "cat", "sat"]]
    encoder = embedding("bilstm", 1.0)
    inputs = encoder.featurizer(words)
    encoder.eval()
    with torch.no_grad():
        evaluated = encoder.embed(inputs["word_ids"])
    assert torch.equal(evaluated[0, 1], encoder.embed.words.weight[encoder.featurizer.words["cat"]].detach())
    encoder.train()
    encoder.embed.dropout.p = 0.0
    with torch.no_grad():
        trained = encoder.embed(inputs["word_ids"])
    assert torch.equal(trained[0, 1], encoder.embed.words.weight[UNKNOWN_ID].detach())
    assert torch.equal(trained[0, 0], evaluated[0, 0])

    plain = embedding("bilstm", 0.0)
    plain.train()
    plain.embed.dropout.p = 0.0
    state = torch.random.get_rng_state()
    plain.embed(inputs["word_ids"])
    assert torch.equal(torch.random.get_rng_state(), state)


def test_the_unknown_vector_learns_only_with_a_rate() -> None:
    def unknown_gradient(rate: float) -> torch.Tensor:
        encoder = embedding("bilstm", rate)
        encoder.train()
        inputs = encoder.featurizer([["the", "cat", "sat"], ["the", "owl"]])
        encoder(**inputs).layers[-1].sum().backward()
        return encoder.embed.words.weight.grad[UNKNOWN_ID]

    assert torch.count_nonzero(unknown_gradient(0.0)) == 0
    assert torch.count_nonzero(unknown_gradient(1.0)) > 0


def test_config_bounds_and_encoder_types() -> None:
    data = tiny_config_dict()
    data["encoder"]["singleton_unknown_rate"] = 0.5
    config = validate_config(data)
    assert validate_config(config.model_dump(mode="json")).encoder.singleton_unknown_rate == 0.5
    data["encoder"]["singleton_unknown_rate"] = 1.5
    with pytest.raises(ConfigError, match="singleton_unknown_rate"):
        validate_config(data)
    with pytest.raises(ConfigError, match="singleton_unknown_rate does not apply to encoder type 'transformer'"):
        validate_config({**tiny_config_dict(), "encoder": {"type": "transformer", "model": "minilm",
                                                          "singleton_unknown_rate": 0.5}})
