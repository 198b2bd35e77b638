"""Sentence pairs in the encoders: separate encoding + [u; v; |u−v|; u∗v] from scratch, the pair template in a transformer."""

from __future__ import annotations

import pytest
import torch

from polytask.config import validate_config
from polytask.data.batching import collate
from polytask.data.example import Example
from polytask.data.pieces import truncate_longest_first
from polytask.models.heads import SentencePairHead, SequenceHead, pair_features
from polytask.training.setup import build_experiment
from tests.conftest import FIXTURES

PAIRS = str(FIXTURES / "pairs_tiny.tsv")
CONLL = str(FIXTURES / "conll2000_tiny.txt")


def pair_experiment(encoder: dict, pooling: str = "max", token_task: bool = False):
    source = {"format": "tsv", "train": PAIRS, "dev": PAIRS, "column": "relation", "text_field": "sentence1",
              "text_pair_field": "sentence2"}
    tasks = {"relation": {"type": "sequence_classification", "data": source}}
    if token_task:
        tasks["pos"] = {"type": "token_classification",
                        "data": {"format": "conll", "train": CONLL, "dev": CONLL, "column": 1}}
    data = {"tasks": tasks, "encoder": encoder, "heads": {"relation": {"pooling": pooling, "dropout": 0.0}},
            "training": {"seed": 3}}
    return build_experiment(validate_config(data))


BILSTM = {"type": "bilstm", "word_dim": 8, "char_dim": 4, "char_filters": 4, "hidden": 6, "layers": 2,
          "dropout": 0.0, "embedding_dropout": 0.0}


def test_pair_features_shape_and_symmetry() -> None:
    generator = torch.Generator().manual_seed(0)
    u, v = torch.randn(5, 7, generator=generator), torch.randn(5, 7, generator=generator)
    uv, vu = pair_features(u, v), pair_features(v, u)
    assert uv.shape == (5, 28)
    assert torch.equal(uv[:, :7], u) and torch.equal(uv[:, 7:14], v)
    assert torch.equal(uv[:, :7], vu[:, 7:14]) and torch.equal(uv[:, 7:14], vu[:, :7])  # swapping swaps u and v
    assert torch.equal(uv[:, 14:], vu[:, 14:])  # |u−v| and u∗v do not depend on the order
    assert torch.equal(pair_features(u, u)[:, 14:21], torch.zeros(5, 7))  # identical sentences: no difference


@pytest.mark.parametrize("encoder", ["bilstm", "cnn"])
def test_each_sentence_of_a_pair_is_encoded_alone(encoder: str) -> None:
    """From scratch, a pair's sentence vectors are those of each sentence encoded by itself (no state crosses)."""
    config = dict(BILSTM, type=encoder, case_features=True, **({"kernel_size": 3} if encoder == "cnn" else {}))
    exp = pair_experiment(config, token_task=True)
    model = exp.model.eval()
    assert isinstance(model.heads["relation"], SentencePairHead)
    a, b = ["red", "cats", "sleep"], ["blue", "dogs", "run", "today", "here"]
    single = Example(tokens=["red", "fish"], labels={})
    batch = collate([Example(tokens=a, tokens_pair=b), single, Example(tokens=b, tokens_pair=a)],
                    model.encoder.featurizer, {})
    assert batch.inputs["mask"].sum(1).tolist() == [8, 2, 8]
    assert batch.inputs["segments"][0].tolist() == [0, 0, 0, 1, 1, 1, 1, 1]
    assert batch.inputs["row_mask"].shape[0] == 5  # 3 first sentences, then the 2 second ones
    with torch.no_grad():
        encoded = model.encoder(**batch.inputs)
        alone = model.encoder(**collate([Example(tokens=a), Example(tokens=b), single], model.encoder.featurizer,
                                        {}).inputs)
        head = model.heads["relation"]
        u, v = head.sentence_vectors(encoded.layers[-1], encoded.mask, encoded.segments)
        ua, ub = (head.pool(alone.layers[-1][i : i + 1], alone.mask[i : i + 1]) for i in (0, 1))
    for layer, reference in zip(encoded.layers, alone.layers):
        torch.testing.assert_close(layer[0, :3], reference[0, :3])  # the first sentence, as if alone
        torch.testing.assert_close(layer[0, 3:8], reference[1, :5])  # the second sentence, as if alone
        torch.testing.assert_close(layer[1, :2], reference[2, :2])  # a single sentence beside pairs: unchanged
    torch.testing.assert_close(u[0], ua[0])
    torch.testing.assert_close(v[0], ub[0])
    torch.testing.assert_close(u[2], v[0])  # the swapped pair swaps u and v
    torch.testing.assert_close(v[2], u[0])
    assert torch.equal(v[1], torch.zeros_like(v[1]))  # a single sentence has no second vector


def test_first_pooling_reads_the_first_word_of_each_sentence() -> None:
    head = SentencePairHead(2, 1, pooling="first")
    states = torch.arange(12.0).view(1, 6, 2)
    mask = torch.tensor([[True, True, True, True, True, False]])
    segments = torch.tensor([[0, 0, 1, 1, 1, 0]])
    u, v = head.sentence_vectors(states, mask, segments)
    assert u.tolist() == [[0.0, 1.0]] and v.tolist() == [[4.0, 5.0]]


def test_an_encoder_without_a_pair_encoding_refuses_a_pair_task() -> None:
    from polytask.config import HeadConfig
    from polytask.errors import ConfigError
    from polytask.models.encoders import Encoder
    from polytask.models.multitask import MultiTaskModel

    class Plain(Encoder):  # a registered encoder that never learnt about pairs
        layer_dims = [4]

        def build(self) -> None: ...

        def forward(self, **inputs): ...

    with pytest.raises(ConfigError, match=r"^tasks\.nli\.data: encoder Plain cannot read sentence pairs"):
        MultiTaskModel(Plain(), {"nli": ("pair", 3, HeadConfig())})
    assert list(MultiTaskModel(Plain(), {"sentiment": ("sequence", 2, HeadConfig())}).heads) == ["sentiment"]


tiny_transformer = pytest.importorskip("tests.models.tiny_transformer")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> str:
    return str(tiny_transformer.make_tiny_bert(tmp_path_factory.mktemp("tiny-bert-pairs")))


def test_truncate_longest_first_matches_the_tokenizers(tiny_bert: str) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    for first, second, capacity in [(8, 4, 9), (4, 8, 9), (5, 5, 7), (3, 3, 10), (20, 1, 6), (6, 6, 2), (9, 9, 9),
                                    (8, 9, 9), (5, 4, 7), (10, 3, 9), (10, 4, 9), (1, 30, 8)]:
        a, b = ["a"] * first, ["b"] * second
        ids = tokenizer(a, b, is_split_into_words=True, truncation="longest_first", max_length=capacity + 3)["input_ids"]
        kept = truncate_longest_first(first, second, capacity)
        assert kept == (ids.count(1037), ids.count(1038)), (first, second, capacity)  # 1037 'a', 1038 'b'


def test_the_transformer_gets_the_tokenizers_pair_encoding_and_segment_ids(tiny_bert: str) -> None:
    """[CLS] A [SEP] B [SEP] with token types 0…0 1…1, exactly as the tokenizer encodes the pair; truncated
    longest-first to max_length, never windowed; a single sentence beside it keeps type 0 and its windows."""
    from transformers import AutoTokenizer

    exp = pair_experiment({"type": "transformer", "model": tiny_bert, "max_length": 12, "case_features": True})
    assert isinstance(exp.model.heads["relation"], SequenceHead)  # joint encoding: pooled over both sentences
    featurizer = exp.model.encoder.featurizer
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    a, b = ["The", "cat", "sleeps"], ["A", "dog", "runs", "unbelievably"]
    long_a = [f"w{i}" for i in range(9)]
    single = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven"]
    batch = collate([Example(tokens=a, tokens_pair=b), Example(tokens=single), Example(tokens=long_a, tokens_pair=b)],
                    featurizer, {})
    inputs = batch.inputs
    for row, (first, second) in [(0, (a, b)), (3, (long_a, b))]:  # the single sentence takes rows 1 and 2
        expected = tokenizer(first, second, is_split_into_words=True, truncation="longest_first", max_length=12)
        width = len(expected["input_ids"])
        assert inputs["input_ids"][row, :width].tolist() == expected["input_ids"]
        assert inputs["token_type_ids"][row, :width].tolist() == expected["token_type_ids"]
        assert int(inputs["attention_mask"][row].sum()) == width
    sep, cls = tokenizer.sep_token_id, tokenizer.cls_token_id
    row = inputs["input_ids"][0].tolist()
    assert row[0] == cls and row[4] == sep and row[row.index(sep, 5)] == sep  # [CLS] The cat sleeps [SEP] ... [SEP]
    assert inputs["token_type_ids"][0, :5].tolist() == [0] * 5 and set(inputs["token_type_ids"][0, 5:10].tolist()) == {1}
    assert inputs["input_ids"].shape[0] == 4  # the 11-word single sentence needs 2 windows; pairs never do
    assert inputs["token_type_ids"][1:3].sum() == 0
    assert inputs["segments"][0, :7].tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert inputs["mask"][0, :7].all() and not inputs["mask"][0, 7:].any()
    kept = inputs["mask"][2].tolist()  # long_a lost its tail words to longest-first truncation, b kept its own
    assert sum(kept[:9]) < 9 and all(kept[9:13])
    assert batch.lengths == [3, 11, 9]
    assert inputs["shape_ids"].shape == inputs["mask"].shape  # word shapes of both sentences, in word order
    assert torch.equal(inputs["shape_ids"][0, :7], featurizer([a + b])["shape_ids"][0])


def test_the_transformer_reads_the_segment_ids(tiny_bert: str) -> None:
    """The token types reach the model: its call carries them, and the states differ from the all-zero types."""
    exp = pair_experiment({"type": "transformer", "model": tiny_bert, "max_length": 24})
    encoder = exp.model.encoder.eval()
    seen = []
    hook = encoder.model.register_forward_pre_hook(lambda module, args, kwargs: seen.append(kwargs.get("token_type_ids")),
                                                   with_kwargs=True)
    batch = collate([Example(tokens=["red", "cats"], tokens_pair=["blue", "dogs"])], encoder.featurizer, {})
    with torch.no_grad():
        paired = encoder(**batch.inputs)
        zeroed = encoder(**{**batch.inputs, "token_type_ids": torch.zeros_like(batch.inputs["token_type_ids"])})
    hook.remove()
    assert seen[0] is not None and seen[0][0, :7].tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert not torch.allclose(paired.layers[-1][0, 2:4], zeroed.layers[-1][0, 2:4])
    assert torch.equal(paired.segments, batch.inputs["segments"])
