"""Readers: the Example contract per format, errors naming file:line, round trips, and the real corpora."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from polytask.data.example import Example
from polytask.data.readers import (
    READERS,
    read_examples,
    read_labelled_lines,
    reader_options,
    write_conll,
    write_jsonl,
    write_table,
)
from polytask.data.tokenize import simple_tokenize
from polytask.errors import DataError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
REAL_DATA = os.environ.get("POLYTASK_DATA")


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    """A small input file for one test."""
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _data_error(fmt: str, path: Path, fields: dict[str, Any], **options: Any) -> str:
    """The message of the DataError that reading must raise."""
    with pytest.raises(DataError) as caught:
        read_examples(fmt, path, fields, **options)
    return str(caught.value)


def _same(left: list[Example], right: list[Example]) -> None:
    """Examples equal in everything but their origin."""
    assert [(e.tokens, e.labels, e.text) for e in left] == [(e.tokens, e.labels, e.text) for e in right]


# --- CoNLL --------------------------------------------------------------------------------------


def test_conll2000_layout_two_tasks_share_examples() -> None:
    examples = read_examples("conll", FIXTURES / "conll2000_tiny.txt", {"pos": 1, "chunk": 2})
    assert [len(e.tokens) for e in examples] == [11, 6, 5]
    first = examples[0]
    assert first.tokens[:3] == ["Shares", "of", "the"]
    assert first.labels["pos"][:3] == ["NNS", "IN", "DT"]
    assert first.labels["chunk"][:3] == ["B-NP", "B-PP", "B-NP"]
    assert first.text is None
    assert [e.origin.rsplit(":", 1)[1] for e in examples] == ["1", "13", "20"]
    assert examples[0].origin.endswith("conll2000_tiny.txt:1")
    assert examples[2].tokens == ["It", "did", "n't", "last", "."]


def test_conll2003_layout_skips_docstart_and_trailing_space() -> None:
    examples = read_examples("conll", FIXTURES / "ner_tiny.txt", {"ner": 1})
    assert [e.tokens for e in examples] == [
        ["Harbor", "Trust", "hired", "Maria", "Lopez", "in", "Oslo", "."],
        ["She", "spoke", "German", "."],
        ["PARIS", "1996-08-30"],
    ]
    assert examples[0].labels["ner"] == ["B-ORG", "I-ORG", "O", "B-PER", "I-PER", "O", "B-LOC", "O"]
    assert [e.origin.rsplit(":", 1)[1] for e in examples] == ["3", "12", "19"]


def test_conll_separators_blank_runs_no_final_blank_and_token_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "mixed.txt", "\n\n1\tA\t  DT \n2   cat\tNN\n\n\n\n1 sat VBD\t\n2\t.\t.")
    examples = read_examples("conll", path, {"pos": 2}, token_column=1)
    assert [e.tokens for e in examples] == [["A", "cat"], ["sat", "."]]
    assert [e.labels["pos"] for e in examples] == [["DT", "NN"], ["VBD", "."]]
    assert [e.origin for e in examples] == [f"{path}:3", f"{path}:8"]


def test_conll_without_fields_reads_tokens_only() -> None:
    examples = read_examples("conll", FIXTURES / "conll2000_tiny.txt", {})
    assert len(examples) == 3 and examples[1].labels == {}


def test_conll_too_few_columns_names_file_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "short.txt", "The DT B-NP\ncat NN\n")
    message = _data_error("conll", path, {"pos": 1, "chunk": 2})
    assert f"{path}:2" in message and "column 2" in message and "'chunk'" in message


def test_conll_bad_column_spec(tmp_path: Path) -> None:
    message = _data_error("conll", FIXTURES / "conll2000_tiny.txt", {"pos": "POS"})
    assert "conll2000_tiny.txt" in message and "fields['pos']" in message


def test_conll_round_trip(tmp_path: Path) -> None:
    original = read_examples("conll", FIXTURES / "conll2000_tiny.txt", {"pos": 1, "chunk": 2})
    out = tmp_path / "out.txt"
    write_conll(original, out, {"pos": 1, "chunk": 2})
    _same(read_examples("conll", out, {"pos": 1, "chunk": 2}), original)
    write_conll(original, out, {"chunk": 3}, separator="\t")
    again = read_examples("conll", out, {"chunk": 3})
    assert [e.labels["chunk"] for e in again] == [e.labels["chunk"] for e in original]


def test_write_conll_rejects_misaligned_labels(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one tag per token"):
        write_conll([Example(tokens=["a", "b"], labels={"pos": ["DT"]})], tmp_path / "x.txt", {"pos": 1})


# --- CoNLL-U ------------------------------------------------------------------------------------


def test_conllu_words_skip_ranges_and_empty_nodes() -> None:
    fields = {"upos": "upos", "xpos": "xpos", "feats": "feats", "deprel": "deprel", "lemma": "lemma"}
    examples = read_examples("conllu", FIXTURES / "tiny.conllu", fields)
    assert [e.tokens for e in examples] == [
        ["The", "cats", "do", "n't", "sleep", "."],
        ["Anna", "reads", "and", "Tom", "too", "."],
    ]
    first = examples[0].labels
    assert first["upos"] == ["DET", "NOUN", "AUX", "PART", "VERB", "PUNCT"]
    assert first["xpos"][:2] == ["DT", "NNS"]
    assert first["feats"][1] == "Number=Plur"
    assert first["deprel"][-1] == "punct"
    assert first["lemma"][3] == "not"
    assert [e.origin.rsplit(":", 1)[1] for e in examples] == ["3", "13"]


def test_conllu_wrong_column_count(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.conllu", "# text = Hi\n1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\n")
    message = _data_error("conllu", path, {"upos": "upos"})
    assert f"{path}:2" in message and "10" in message


def test_conllu_space_separated_is_wrong_column_count(tmp_path: Path) -> None:
    path = _write(tmp_path, "spaces.conllu", "1 Hi hi INTJ UH _ 0 root _ _\n")
    assert f"{path}:1" in _data_error("conllu", path, {"upos": "upos"})


def test_conllu_unknown_field_name() -> None:
    message = _data_error("conllu", FIXTURES / "tiny.conllu", {"pos": "POS-TAG"})
    assert "tiny.conllu" in message and "upos" in message


# --- one sentence per line ----------------------------------------------------------------------


def test_labelled_lines_order_text_and_blank_lines() -> None:
    files = {"positive": FIXTURES / "polarity_tiny.pos", "negative": FIXTURES / "polarity_tiny.neg"}
    examples = read_labelled_lines(files, "sentiment")
    assert [e.labels["sentiment"] for e in examples] == ["positive"] * 2 + ["negative"] * 3
    assert examples[0].tokens[:4] == ["a", "warm", ",", "funny"]
    assert examples[0].text == "a warm , funny film that earns every one of its laughs ."
    assert examples[3].origin.endswith("polarity_tiny.neg:3")
    reversed_order = read_labelled_lines(dict(reversed(files.items())), "sentiment")
    assert reversed_order[0].labels["sentiment"] == "negative"


def test_lines_format_in_registry() -> None:
    examples = read_examples("lines", FIXTURES / "polarity_tiny.neg", {"sentiment": "negative"})
    assert len(examples) == 3 and all(e.labels == {"sentiment": "negative"} for e in examples)


def test_lines_latin1_needs_encoding_option(tmp_path: Path) -> None:
    path = _write(tmp_path, "latin.pos", "a fine film .\nthe caf\xe9 scene is lovely .\n".encode("latin-1"))
    message = _data_error("lines", path, {"sentiment": "positive"})
    assert f"{path}:2" in message and "encoding" in message
    examples = read_examples("lines", path, {"sentiment": "positive"}, encoding="latin-1")
    assert examples[1].tokens[1] == "caf\xe9"


# --- tsv / csv ----------------------------------------------------------------------------------


def test_tsv_tokenizes_text_and_keeps_partial_labels() -> None:
    examples = read_examples("tsv", FIXTURES / "tiny.tsv", {"sentiment": "sentiment", "topic": "topic"})
    assert examples[0].text == '"Loved it" \u2014 the best film of 2023, hands down.'
    assert examples[0].tokens[:4] == ['"', "Loved", "it", '"']
    assert examples[1].tokens[2:4] == ["does", "n't"]
    assert [e.labels for e in examples] == [
        {"sentiment": "positive", "topic": "film"},
        {"sentiment": "negative"},
        {"topic": "food"},
    ]
    assert [e.origin.rsplit(":", 1)[1] for e in examples] == ["2", "3", "4"]


def test_csv_quoting_and_raw_labels() -> None:
    examples = read_examples("csv", FIXTURES / "tiny.csv", {"sentiment": "sentiment", "score": "score"})
    assert examples[0].text == "Great food, friendly staff."
    assert examples[1].text == 'She said "never again" and left.'
    assert [e.labels for e in examples] == [
        {"sentiment": "positive", "score": "4.5"},
        {"sentiment": "negative", "score": "1"},
        {"score": "2.5"},
    ]


def test_csv_multiline_cell_origin_is_first_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "multi.csv", 'text,label\n"two\nlines",a\nnext,b\n')
    examples = read_examples("csv", path, {"t": "label"})
    assert [e.origin for e in examples] == [f"{path}:2", f"{path}:4"]


def test_tsv_tokens_field(tmp_path: Path) -> None:
    path = _write(tmp_path, "tok.tsv", "tokens\tlabel\nI do n't know\tneg\n")
    (example,) = read_examples("tsv", path, {"t": "label"}, tokens_field="tokens")
    assert example.tokens == ["I", "do", "n't", "know"] and example.text is None


@pytest.mark.parametrize("fmt,sep", [("tsv", "\t"), ("csv", ",")])
def test_table_missing_column_in_header(tmp_path: Path, fmt: str, sep: str) -> None:
    path = _write(tmp_path, f"nohead.{fmt}", f"great movie{sep}positive\n")
    message = _data_error(fmt, path, {"sentiment": "label"})
    assert f"{path}:1" in message and "'text'" in message and "header" in message


@pytest.mark.parametrize("fmt,sep", [("tsv", "\t"), ("csv", ",")])
def test_table_short_row_names_line_and_column(tmp_path: Path, fmt: str, sep: str) -> None:
    path = _write(tmp_path, f"short.{fmt}", f"text{sep}label\nfine{sep}pos\njust text\n")
    message = _data_error(fmt, path, {"sentiment": "label"})
    assert f"{path}:3" in message and "label" in message


@pytest.mark.parametrize("fmt,sep", [("tsv", "\t"), ("csv", ",")])
def test_table_empty_text(tmp_path: Path, fmt: str, sep: str) -> None:
    path = _write(tmp_path, f"empty.{fmt}", f"text{sep}label\n {sep}pos\n")
    message = _data_error(fmt, path, {"sentiment": "label"})
    assert f"{path}:2" in message and "empty text" in message


def test_csv_malformed_quoting(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.csv", 'text,label\nok,a\n"never closed,b\n')
    assert f"{path}:3" in _data_error("csv", path, {"t": "label"})


@pytest.mark.parametrize("fmt", ["tsv", "csv"])
def test_table_round_trip(tmp_path: Path, fmt: str) -> None:
    original = read_examples(fmt, FIXTURES / f"tiny.{fmt}", {"sentiment": "sentiment"})
    out = tmp_path / f"out.{fmt}"
    write_table(original, out, {"sentiment": "sentiment"}, fmt=fmt)  # type: ignore[arg-type]
    _same(read_examples(fmt, out, {"sentiment": "sentiment"}), original)


# --- jsonl --------------------------------------------------------------------------------------


def test_jsonl_raw_labels_partial_and_blank_lines() -> None:
    fields = {"topic": "topic", "tags": "tags", "score": "score"}
    examples = read_examples("jsonl", FIXTURES / "tiny.jsonl", fields)
    assert examples[0].tokens == ["The", "U.S.", "team", "won", "3-1", "on", "Sunday", "."]
    assert examples[0].labels == {"topic": "sport", "tags": ["sport", "news"], "score": 0.9}
    assert examples[1].labels == {"topic": "finance", "tags": []}
    assert examples[2].labels == {"tags": ["misc"]}
    assert examples[2].origin.endswith("tiny.jsonl:4")
    assert examples[1].text == "Rates didn't move."


def test_jsonl_tokens_field(tmp_path: Path) -> None:
    path = _write(tmp_path, "tok.jsonl", '{"words": ["New", "York"], "ner": ["B-LOC", "I-LOC"]}\n')
    (example,) = read_examples("jsonl", path, {"ner": "ner"}, tokens_field="words")
    assert example.tokens == ["New", "York"] and example.labels == {"ner": ["B-LOC", "I-LOC"]}
    assert example.text is None


def test_jsonl_reads_a_tokens_list_without_tokens_field(tmp_path: Path) -> None:
    """A ``tokens`` list is the input when ``tokens_field`` is not set (over ``text``, which is kept); else the text."""
    path = _write(tmp_path, "ner.jsonl", '{"tokens": ["New", "York"], "ner": ["B-LOC", "I-LOC"]}\n'
                                         '{"text": "New York-based", "tokens": ["New", "York-based"], "ner": ["O", "O"]}\n'
                                         '{"text": "He left.", "ner": ["O", "O", "O"]}\n')
    first, second, third = read_examples("jsonl", path, {"ner": "ner"})
    assert (first.tokens, first.text, first.labels) == (["New", "York"], None, {"ner": ["B-LOC", "I-LOC"]})
    assert (second.tokens, second.text) == (["New", "York-based"], "New York-based")
    assert third.tokens == ["He", "left", "."]
    message = _data_error("jsonl", _write(tmp_path, "bad.jsonl", '{"tokens": "New York", "ner": ["O"]}\n'), {"ner": "ner"})
    assert f"{tmp_path / 'bad.jsonl'}:1" in message and "'tokens' must be a list of non-empty strings" in message


@pytest.mark.parametrize(
    "line,options,expected",
    [
        ('{"text": "ok", "label": "a"', {}, "invalid JSON"),
        ('["text", "label"]', {}, "JSON object"),
        ('{"sentence": "ok", "label": "a"}', {}, "'text'"),
        ('{"text": "  ", "label": "a"}', {}, "empty text"),
        ('{"text": 3, "label": "a"}', {}, "'text'"),
        ('{"words": "not a list", "label": "a"}', {"tokens_field": "words"}, "'words'"),
        ('{"label": "a"}', {"tokens_field": "words"}, "'words'"),
        ('{"words": [], "label": "a"}', {"tokens_field": "words"}, "empty"),
    ],
)
def test_jsonl_errors_name_file_line_and_field(
    tmp_path: Path, line: str, options: dict[str, Any], expected: str
) -> None:
    path = _write(tmp_path, "bad.jsonl", '{"text": "fine", "words": ["fine"], "label": "a"}\n\n' + line + "\n")
    message = _data_error("jsonl", path, {"t": "label"}, **options)
    assert f"{path}:3" in message and expected in message


def test_jsonl_round_trip(tmp_path: Path) -> None:
    fields = {"topic": "topic", "tags": "tags", "score": "score"}
    original = read_examples("jsonl", FIXTURES / "tiny.jsonl", fields)
    out = tmp_path / "out.jsonl"
    write_jsonl(original, out)
    _same(read_examples("jsonl", out, fields, tokens_field="tokens"), original)
    _same(read_examples("jsonl", out, fields), original)


# --- errors common to every format ---------------------------------------------------------------

FIELDS: dict[str, dict[str, Any]] = {
    "conll": {"pos": 1},
    "conllu": {"upos": "upos"},
    "lines": {"sentiment": "positive"},
    "tsv": {"label": "label"},
    "csv": {"label": "label"},
    "jsonl": {"label": "label"},
}
GOOD_THEN_BAD: dict[str, tuple[bytes, bytes]] = {
    "conll": (b"The DT\n", b"caf\xe9 NN\n"),
    "conllu": (b"1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_\n", b"2\tcaf\xe9\tcaf\xe9\tNOUN\tNN\t_\t0\troot\t_\t_\n"),
    "lines": (b"a fine film .\n", b"the caf\xe9 scene .\n"),
    "tsv": (b"text\tlabel\n", b"caf\xe9 scene\tpos\n"),
    "csv": (b"text,label\n", b"caf\xe9 scene,pos\n"),
    "jsonl": (b'{"text": "fine", "label": "a"}\n', b'{"text": "caf\xe9", "label": "a"}\n'),
}


def test_registry_names() -> None:
    assert set(READERS) == {"conll", "conllu", "lines", "tsv", "csv", "jsonl"}
    assert set(FIELDS) == set(READERS)
    assert reader_options("jsonl") == ("text_field", "tokens_field", "text_pair_field", "tokens_pair_field", "encoding")


@pytest.mark.parametrize("fmt", sorted(READERS))
def test_non_utf8_bytes_name_file_and_line(tmp_path: Path, fmt: str) -> None:
    good, bad = GOOD_THEN_BAD[fmt]
    path = _write(tmp_path, f"latin.{fmt}", good + bad)
    message = _data_error(fmt, path, FIELDS[fmt])
    assert f"{path}:2" in message and "utf-8" in message and "encoding" in message


@pytest.mark.parametrize("fmt", sorted(READERS))
def test_empty_file_has_no_examples(tmp_path: Path, fmt: str) -> None:
    path = _write(tmp_path, f"empty.{fmt}", "\n\n" if fmt != "conllu" else "# only a comment\n\n")
    message = _data_error(fmt, path, FIELDS[fmt])
    assert str(path) in message and "no examples" in message


def test_header_only_table_has_no_examples(tmp_path: Path) -> None:
    path = _write(tmp_path, "header.tsv", "text\tlabel\n")
    assert "no examples" in _data_error("tsv", path, {"t": "label"})


@pytest.mark.parametrize("fmt", sorted(READERS))
def test_missing_file_names_path(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "nowhere" / f"missing.{fmt}"
    message = _data_error(fmt, path, FIELDS[fmt])
    assert str(path) in message and "not found" in message


def test_unknown_format_lists_formats() -> None:
    message = _data_error("xml", FIXTURES / "tiny.tsv", {})
    assert "'xml'" in message and "conll, conllu, lines, tsv, csv, jsonl" in message


def test_unknown_option_lists_accepted() -> None:
    message = _data_error("conll", FIXTURES / "ner_tiny.txt", {"ner": 1}, text_field="x")
    assert "text_field" in message and "token_column" in message


def test_unknown_encoding() -> None:
    message = _data_error("lines", FIXTURES / "polarity_tiny.pos", {"s": "p"}, encoding="klingon")
    assert "klingon" in message and "polarity_tiny.pos" in message


# --- simple_tokenize ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,tokens",
    [
        ("Don't stop.", ["Do", "n't", "stop", "."]),
        ("It's the director's cut!", ["It", "'s", "the", "director", "'s", "cut", "!"]),
        ("We're sure you'll, I'd", ["We", "'re", "sure", "you", "'ll", ",", "I", "'d"]),
        ("I'm sure they've", ["I", "'m", "sure", "they", "'ve"]),
        ("I can't; WON'T", ["I", "ca", "n't", ";", "WO", "N'T"]),
        ("The U.S. paid $1,000.50 at 10:30.", ["The", "U.S.", "paid", "$", "1,000.50", "at", "10:30", "."]),
        ("co-writer/director -- wait...", ["co-writer", "/", "director", "--", "wait", "..."]),
        ('the students\' "great" o\'clock', ["the", "students", "'", '"', "great", '"', "o'clock"]),
        ("It\u2019s caf\u00e9 time", ["It", "\u2019s", "caf\u00e9", "time"]),
        ("  ", []),
    ],
)
def test_simple_tokenize(text: str, tokens: list[str]) -> None:
    assert simple_tokenize(text) == tokens


# --- the real corpora -----------------------------------------------------------------------------


@pytest.mark.realdata
@pytest.mark.skipif(REAL_DATA is None, reason="set POLYTASK_DATA to the folder of the real corpora to run this test")
def test_real_corpora_counts() -> None:
    root = Path(REAL_DATA or "")
    conll2000 = read_examples("conll", root / "conll2000" / "train.txt", {"pos": 1, "chunk": 2})
    assert len(conll2000) == 8936
    assert sum(len(e.tokens) for e in conll2000) == 211727
    assert conll2000[0].tokens[0] == "Confidence" and conll2000[0].labels["chunk"][0] == "B-NP"

    conll2003 = read_examples("conll", root / "conll2003" / "train.txt", {"ner": 1})
    assert len(conll2003) == 14041
    assert all(e.tokens[0] != "-DOCSTART-" for e in conll2003)

    polarity = read_labelled_lines(
        {
            "positive": root / "sentence_polarity" / "rt-polarity.pos",
            "negative": root / "sentence_polarity" / "rt-polarity.neg",
        },
        "sentiment",
    )
    assert len(polarity) == 5331 + 5331
    assert polarity[0].labels == {"sentiment": "positive"} and polarity[-1].labels == {"sentiment": "negative"}


def test_conll_comment_lines_are_skipped_only_when_asked(tmp_path: Path) -> None:
    path = _write(tmp_path, "c.txt", "# sent_id = 1\nThe DT B-NP\n# a note\ncat NN I-NP\n\n# # B-NP\n")
    skipped = read_examples("conll", path, {"pos": 1}, comment="#")
    assert [e.tokens for e in skipped] == [["The", "cat"]] and skipped[0].labels == {"pos": ["DT", "NN"]}
    kept = read_examples("conll", path, {"pos": 1})  # the default: '#' is a token (WSJ: the pound sign)
    assert [e.tokens for e in kept] == [["#", "The", "#", "cat"], ["#"]]
    assert kept[0].labels["pos"] == ["sent_id", "DT", "a", "NN"] and kept[1].labels["pos"] == ["#"]


def test_conll_comment_is_a_conll_option_in_the_config() -> None:
    from polytask.config import validate_config
    from polytask.errors import ConfigError
    from tests.conftest import tiny_config_dict

    data = tiny_config_dict()
    data["tasks"]["pos"]["data"]["comment"] = "#"
    assert validate_config(data).tasks["pos"].data.comment == "#"
    data["tasks"]["sentiment"]["data"]["comment"] = "#"
    with pytest.raises(ConfigError, match=r"^tasks\.sentiment\.data\.comment: applies to format 'conll' only"):
        validate_config(data)
