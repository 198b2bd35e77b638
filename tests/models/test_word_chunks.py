"""``encoder.chunk_rows`` for word-level encoders: length-sorted chunks give the states and gradients of one call."""

from __future__ import annotations

import random

import pytest
import torch

from polytask.config import EncoderConfig, validate_config
from polytask.data.example import Example
from polytask.errors import ConfigError
from polytask.models.encoders import build_encoder
from polytask.models.encoders.words import DEFAULT_CHUNK_ROWS
from tests.conftest import tiny_config_dict

ONE_CALL = 10_000
"""More rows than any test batch: one call."""
WORDS = ["the", "Cat", "sat", "on", "a", "mat", "in", "Paris", "1999", ",", "and", "ran", "."]


def sentences(count: int = 11, seed: int = 0) -> list[list[str]]:
    """Sentences of 1 to 17 words, in no order of length (so the chunks reorder them)."""
    rng = random.Random(seed)
    return [[rng.choice(WORDS) for _ in range(rng.randint(1, 17))] for _ in range(count)]


def encoder_pair(kind: str, chunk_rows: int):
    """The same weights twice: one call for the whole batch, and chunks of ``chunk_rows``."""
    made = []
    for rows in (ONE_CALL, chunk_rows):
        torch.manual_seed(0)
        encoder = build_encoder(EncoderConfig(type=kind, word_dim=8, char_dim=4, char_filters=5, hidden=6, layers=2,
                                              case_features=True, affix_features=True, chunk_rows=rows))
        encoder.featurizer.fit([Example(tokens=WORDS)] * 2)  # twice: every affix is kept
        encoder.build()
        encoder.eval()
        made.append(encoder)
    return made


@pytest.mark.parametrize("kind", ["bilstm", "cnn"])
@pytest.mark.parametrize("chunk_rows", [1, 3, 4, 10])
def test_chunks_give_every_real_word_the_states_of_one_call(kind: str, chunk_rows: int) -> None:
    whole, chunked = encoder_pair(kind, chunk_rows)
    inputs = whole.featurizer(sentences())
    mask = inputs["mask"].unsqueeze(-1).float()
    with torch.no_grad():
        expected, got = whole(**inputs).layers, chunked(**inputs).layers
    assert len(got) == len(expected) == 3
    for one, parts in zip(expected, got, strict=True):
        assert parts.shape == one.shape
        torch.testing.assert_close(parts * mask, one * mask, atol=1e-6, rtol=1e-5)
    for layer in got[1:]:  # above the input, padding positions are 0 as in one call
        assert torch.all(layer * (1 - mask) == 0)
    assert not torch.allclose(got[-1][0], got[-1][1])  # rows are not swapped or repeated


@pytest.mark.parametrize("kind", ["bilstm", "cnn"])
def test_chunks_give_the_gradients_of_one_call(kind: str) -> None:
    whole, chunked = encoder_pair(kind, 3)
    inputs = whole.featurizer(sentences(seed=1))
    weights = torch.randn(inputs["mask"].shape[0], inputs["mask"].shape[1], whole.layer_dims[-1],
                          generator=torch.Generator().manual_seed(0))
    for encoder in (whole, chunked):  # a loss that tells the rows and words apart
        (encoder(**inputs).layers[-1] * weights * inputs["mask"].unsqueeze(-1)).sum().backward()
    for (name, a), (_, b) in zip(whole.named_parameters(), chunked.named_parameters(), strict=True):
        assert a.grad is not None, name
        torch.testing.assert_close(b.grad, a.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_a_batch_no_larger_than_a_chunk_is_one_call() -> None:
    whole, chunked = encoder_pair("bilstm", 11)
    inputs = whole.featurizer(sentences())
    with torch.no_grad():
        assert torch.equal(chunked(**inputs).layers[-1], whole(**inputs).layers[-1])


def test_chunk_rows_is_a_field_of_every_built_in_encoder_type_and_round_trips() -> None:
    for kind in ("bilstm", "cnn"):
        data = tiny_config_dict()
        data["encoder"] = {"type": kind, "chunk_rows": 24}
        config = validate_config(data)
        assert validate_config(config.model_dump(mode="json")).encoder.chunk_rows == 24
    data = tiny_config_dict()
    data["encoder"]["chunk_rows"] = 0
    with pytest.raises(ConfigError, match="encoder.chunk_rows"):
        validate_config(data)


def test_null_chunk_rows_runs_chunks_of_the_default_size() -> None:
    torch.manual_seed(0)
    encoder = build_encoder(EncoderConfig(type="bilstm", word_dim=8, char_dim=4, char_filters=5, hidden=6))
    encoder.featurizer.fit([Example(tokens=WORDS)])
    encoder.build()
    rows_per_call = []
    encode_rows = encoder.encode_rows

    def counted(word_ids, *rest):
        rows_per_call.append(word_ids.shape[0])
        return encode_rows(word_ids, *rest)

    encoder.encode_rows = counted
    encoder(**encoder.featurizer(sentences(DEFAULT_CHUNK_ROWS + 9)))
    assert rows_per_call == [DEFAULT_CHUNK_ROWS, 9]
