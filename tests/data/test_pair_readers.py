"""Sentence pairs in tsv/csv/jsonl: ``text_pair_field`` / ``tokens_pair_field``, round trips and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from polytask.config import validate_config
from polytask.data.example import Example
from polytask.data.readers import read_examples, write_jsonl, write_table
from polytask.errors import ConfigError, DataError
from polytask.training.setup import build_tasks
from tests.conftest import FIXTURES

PAIRS_TSV = FIXTURES / "pairs_tiny.tsv"
PAIRS_JSONL = FIXTURES / "pairs_tiny.jsonl"


def test_tsv_pairs_keep_both_sentences_and_every_label() -> None:
    examples = read_examples("tsv", PAIRS_TSV, {"relation": "relation", "overlap": "overlap"},
                             text_field="sentence1", text_pair_field="sentence2")
    assert len(examples) == 48
    first = examples[0]
    assert first.tokens == ["black", "eat", "fish", "often"] and first.text == "black eat fish often"
    assert first.tokens_pair == ["black", "often", "not", "today", "eat", "dogs"] and first.is_pair
    assert first.text_pair == "black often not today eat dogs"
    assert first.labels == {"relation": "same", "overlap": "3"} and first.origin == f"{PAIRS_TSV}:2"


def test_jsonl_token_pairs_equal_the_tsv_text_pairs() -> None:
    from_jsonl = read_examples("jsonl", PAIRS_JSONL, {"relation": "relation"}, tokens_field="premise",
                               tokens_pair_field="hypothesis")
    from_tsv = read_examples("tsv", PAIRS_TSV, {"relation": "relation"}, text_field="sentence1",
                             text_pair_field="sentence2")
    assert [(e.tokens, e.tokens_pair, e.labels) for e in from_jsonl] == \
        [(e.tokens, e.tokens_pair, e.labels) for e in from_tsv]
    assert from_jsonl[0].text_pair is None  # tokens only: no text to keep


def test_a_single_sentence_reader_still_gives_no_pair() -> None:
    examples = read_examples("tsv", PAIRS_TSV, {"relation": "relation"}, text_field="sentence1")
    assert not any(e.is_pair for e in examples) and examples[0].tokens_pair is None


@pytest.mark.parametrize("fmt", ["tsv", "csv"])
def test_table_pairs_round_trip(tmp_path: Path, fmt: str) -> None:
    examples = [Example(tokens=["A", "man", "sleeps", "."], labels={"nli": "entailment"}, text="A man sleeps.",
                        tokens_pair=["Somebody", "sleeps", "."], text_pair="Somebody sleeps."),
                Example(tokens=["He", "is", "\"", "here", "\""], labels={"nli": "neutral"},
                        tokens_pair=["He", ",", "she"])]
    path = tmp_path / f"pairs.{fmt}"
    write_table(examples, path, {"nli": "label"}, fmt=fmt, text_field=None, tokens_field="a",
                tokens_pair_field="b")
    back = read_examples(fmt, path, {"nli": "label"}, text_field=None, tokens_field="a", tokens_pair_field="b")
    assert [(e.tokens, e.tokens_pair, e.labels) for e in back] == [(e.tokens, e.tokens_pair, e.labels) for e in examples]


def test_jsonl_pairs_round_trip(tmp_path: Path) -> None:
    examples = [Example(tokens=["A", "man", "sleeps", "."], labels={"sts": 3.5}, text="A man sleeps.",
                        tokens_pair=["Somebody", "sleeps", "."], text_pair="Somebody sleeps.")]
    path = tmp_path / "pairs.jsonl"
    write_jsonl(examples, path)
    back = read_examples("jsonl", path, {"sts": "sts"}, tokens_field="tokens", tokens_pair_field="tokens_pair")
    assert (back[0].tokens, back[0].tokens_pair, back[0].labels) == (examples[0].tokens, examples[0].tokens_pair,
                                                                     {"sts": 3.5})
    by_text = read_examples("jsonl", path, {"sts": "sts"}, text_pair_field="text_pair")
    assert by_text[0].text_pair == "Somebody sleeps." and by_text[0].tokens_pair == ["Somebody", "sleeps", "."]


def _error(fmt: str, path: Path, **options) -> str:
    with pytest.raises(DataError) as caught:
        read_examples(fmt, path, {"nli": "label"}, **options)
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    return message


@pytest.mark.parametrize("fmt, body, options, where, words", [
    ("tsv", "s1\ts2\tlabel\na b\t\tyes\n", {"text_field": "s1", "text_pair_field": "s2"}, 2,
     "empty text in column 's2' (text_pair_field)"),
    ("csv", 's1,s2,label\na b,"  ",yes\n', {"text_field": "s1", "text_pair_field": "s2"}, 2,
     "empty text in column 's2' (text_pair_field)"),
    ("tsv", "s1\ts2\tlabel\na b\t\tyes\n", {"text_field": "s1", "tokens_pair_field": "s2"}, 2,
     "empty tokens in column 's2' (tokens_pair_field)"),
    ("tsv", "s1\tlabel\na b\tyes\n", {"text_field": "s1", "text_pair_field": "s2"}, 1,
     "text_pair_field column 's2'"),
    ("jsonl", '{"text": "a b", "label": "x"}\n{"text": "c", "label": "y"}\n', {"text_pair_field": "hypothesis"}, 1,
     "missing field 'hypothesis' (text_pair_field)"),
    ("jsonl", '{"text": "a b", "hypothesis": " ", "label": "x"}\n', {"text_pair_field": "hypothesis"}, 1,
     "empty text in field 'hypothesis' (text_pair_field)"),
    ("jsonl", '{"text": "a", "h": ["b"], "label": "x"}\n{"text": "a", "h": [], "label": "x"}\n',
     {"tokens_pair_field": "h"}, 2, "empty token list in field 'h' (tokens_pair_field)"),
    ("jsonl", '{"text": "a", "h": "b c", "label": "x"}\n', {"tokens_pair_field": "h"}, 1,
     "field 'h' must be a list of non-empty strings"),
])
def test_a_bad_second_sentence_is_one_line_naming_file_line_and_field(tmp_path: Path, fmt: str, body: str,
                                                                     options: dict, where: int, words: str) -> None:
    path = tmp_path / f"bad.{fmt}"
    path.write_text(body)
    message = _error(fmt, path, **options)
    assert message.startswith(f"{path}:{where}: ") and words in message, message


def pair_config(task_type: str = "sequence_classification", **data) -> dict:
    source = {"format": "tsv", "train": str(PAIRS_TSV), "dev": str(PAIRS_TSV), "column": "relation",
              "text_field": "sentence1", "text_pair_field": "sentence2", **data}
    return {"tasks": {"relation": {"type": task_type, "data": source}}}


def test_pairs_from_a_format_without_fields_are_a_config_error() -> None:
    data = pair_config(format="conll", column=1)
    with pytest.raises(ConfigError) as caught:
        validate_config(data)
    assert "tasks.relation.data" in str(caught.value) and "tsv, csv, jsonl" in str(caught.value)


def test_a_token_task_reading_pairs_is_a_config_error_naming_the_pair_field() -> None:
    config = validate_config(pair_config("token_classification"))
    with pytest.raises(ConfigError) as caught:
        build_tasks(config)
    assert str(caught.value).startswith("tasks.relation.data.text_pair_field: ")
    assert "sentence-level" in str(caught.value)


def test_a_task_mixing_pair_and_single_sources_is_a_config_error() -> None:
    data = pair_config()
    single = {k: v for k, v in data["tasks"]["relation"]["data"].items() if k != "text_pair_field"}
    data["tasks"]["relation"]["data"] = [data["tasks"]["relation"]["data"], single]
    with pytest.raises(ConfigError) as caught:
        validate_config(data)
    assert "tasks.relation.data" in str(caught.value) and "one or the other" in str(caught.value)
