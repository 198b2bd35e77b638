"""Prediction inputs: raw texts, token lists and sentence pairs as examples, and which tasks answer each form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polytask.data.example import Example
from polytask.errors import DataError
from polytask.serving.inputs import as_example, predict_by_form, tasks_by_form
from polytask.serving.predictor import read_inputs


def test_raw_inputs_become_examples() -> None:
    text = as_example("Prices rose sharply.", "inputs[0]")
    assert text.tokens == ["Prices", "rose", "sharply", "."] and text.text == "Prices rose sharply." and not text.is_pair
    tokens = as_example(["New", "York"], "inputs[1]")
    assert tokens.tokens == ["New", "York"] and tokens.text is None and not tokens.is_pair
    pair = as_example(("A man sleeps.", ["Nobody", "sleeps"]), "inputs[2]")
    assert (pair.tokens, pair.text, pair.tokens_pair, pair.text_pair) == \
        (["A", "man", "sleeps", "."], "A man sleeps.", ["Nobody", "sleeps"], None)
    example = Example(tokens=["x"])
    assert as_example(example, "inputs[3]") is example


@pytest.mark.parametrize("item, words", [
    (("a", "b", "c"), "a sentence pair is a tuple (first, second), got a tuple of 3"),
    (("a", "   "), "the second sentence is empty"),
    (("a", ["b", ""]), "the second sentence must be a non-empty string or a non-empty list"),
    ([], "the input must be a non-empty string or a non-empty list"),
    (3, "the input must be"),
])
def test_a_malformed_input_is_one_line_naming_it(item, words: str) -> None:
    with pytest.raises(DataError) as caught:
        as_example(item, "inputs[4]")
    assert str(caught.value).startswith("inputs[4]: ") and words in str(caught.value), str(caught.value)


def test_pairs_go_to_pair_tasks_and_sentences_to_the_others_in_input_order() -> None:
    examples = [as_example(x, f"inputs[{i}]") for i, x in enumerate(["one", ("a", "b"), "two", ("c", "d")])]
    calls = []

    def predict(tasks, batch):
        calls.append((tasks, [e.origin for e in batch]))
        return [{"origin": e.origin, "tasks": dict.fromkeys(tasks)} for e in batch]

    records = predict_by_form(predict, ["pos", "nli", "sentiment"], {"nli"}, examples)
    assert [r["origin"] for r in records] == ["inputs[0]", "inputs[1]", "inputs[2]", "inputs[3]"]
    assert sorted(calls) == [(["nli"], ["inputs[1]", "inputs[3]"]), (["pos", "sentiment"], ["inputs[0]", "inputs[2]"])]
    with pytest.raises(DataError, match=r"^inputs\[1\]: a sentence pair, but no task of this model reads pairs"):
        tasks_by_form(["pos"], set(), examples)
    with pytest.raises(DataError, match=r"^inputs\[0\]: one sentence, but every task of this model reads sentence"):
        tasks_by_form(["nli"], {"nli"}, examples)


def test_jsonl_prediction_inputs_with_pairs(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    lines = [{"text": "A man sleeps.", "text_pair": "Nobody sleeps."}, {"tokens": ["a"], "tokens_pair": ["b", "c"]},
             {"text": "Alone.", "text_pair": None}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    first, second, third = read_inputs(path, "jsonl")
    assert first.tokens_pair == ["Nobody", "sleeps", "."] and first.text_pair == "Nobody sleeps."
    assert second.tokens_pair == ["b", "c"] and second.text_pair is None
    assert not third.is_pair  # null: no second sentence
    path.write_text(json.dumps({"text": "a"}) + "\n" + json.dumps({"text": "a", "tokens_pair": []}) + "\n")
    with pytest.raises(DataError, match=f"^{path}:2: a sentence pair needs a non-empty 'tokens_pair' list"):
        read_inputs(path, "jsonl")
