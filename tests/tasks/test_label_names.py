"""Integer label ids: kept as their digits without names, named by ``label_names``, out-of-range ids one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polytask.config import validate_config
from polytask.data.example import Example
from polytask.errors import ConfigError, DataError
from polytask.tasks import build_task
from polytask.training.setup import build_tasks

ORIGIN = "data/train.jsonl:4"
NER = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def test_ids_without_names_are_their_digits() -> None:
    assert build_task("token_classification", "pos").parse_label([0, 2], ORIGIN) == ["0", "2"]
    assert build_task("sequence_classification", "sst").parse_label(1, ORIGIN) == "1"
    assert build_task("multilabel", "topics").parse_label([3, 1], ORIGIN) == ["1", "3"]


def test_label_names_map_ids_to_names_in_every_classification_type() -> None:
    ner = build_task("token_classification", "ner", scheme="iob2", label_names=NER)
    assert ner.parse_label([1, 2, 0, 3], ORIGIN) == ["B-PER", "I-PER", "O", "B-LOC"]
    assert ner.parse_label(["B-PER", 2], ORIGIN) == ["B-PER", "I-PER"]  # names pass, ids mapped
    sst = build_task("sequence_classification", "sst", label_names=["negative", "positive"])
    assert sst.parse_label(0, ORIGIN) == "negative" and sst.parse_label("positive", ORIGIN) == "positive"
    topics = build_task("multilabel", "topics", label_names=["news", "sport", "tech"])
    assert topics.parse_label([2, 0], ORIGIN) == ["news", "tech"]
    assert topics.parse_label("sport,tech", ORIGIN) == ["sport", "tech"]


@pytest.mark.parametrize("type_name,raw", [("token_classification", [0, 5]), ("sequence_classification", 5),
                                           ("sequence_classification", -1), ("multilabel", [5])])
def test_an_id_out_of_range_names_file_line_task_and_range(type_name: str, raw: object) -> None:
    task = build_task(type_name, "t", label_names=NER)
    with pytest.raises(DataError) as caught:
        task.parse_label(raw, ORIGIN)
    message = str(caught.value)
    assert message.startswith(f"{ORIGIN}: task 't': label id ") and "label_names has 5 names (ids 0-4)" in message
    assert len(message.splitlines()) == 1


def test_a_name_outside_label_names_is_an_error_not_a_new_class() -> None:
    with pytest.raises(DataError, match=r"data/train.jsonl:4: task 'sst': label 'neutral' is not one of label_names"):
        build_task("sequence_classification", "sst", label_names=["negative", "positive"]).parse_label("neutral", ORIGIN)


def test_integer_tags_under_a_scheme_point_at_label_names() -> None:
    with pytest.raises(DataError, match="integer tag ids need the task's label_names"):
        build_task("token_classification", "ner", scheme="iob2").parse_label([1], ORIGIN)


@pytest.mark.parametrize("names,expected", [(["O", "O"], "more than once"), ([], "non-empty list"),
                                            (["O", ""], "non-empty strings"), ("O", "non-empty list")])
def test_bad_label_names_are_config_errors(names: object, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        build_task("token_classification", "ner", label_names=names)


def _config(tmp_path: Path, task: dict) -> dict:
    return {"tasks": {"t": task}, "encoder": {"word_dim": 8, "char_dim": 4, "char_filters": 4, "hidden": 8, "layers": 1},
            "training": {"epochs": 1, "max_steps": 2, "batch_size": 2, "log_every": 1}}


def test_label_names_on_a_regression_task_names_the_field(tmp_path: Path) -> None:
    data = tmp_path / "s.jsonl"
    data.write_text('{"text": "a b", "score": 1}\n')
    config = validate_config(_config(tmp_path, {"type": "regression", "label_names": ["a"],
                                                "data": {"format": "jsonl", "train": str(data), "column": "score"}}))
    with pytest.raises(ConfigError, match=r"tasks\.t\.label_names: label_names name class ids; task type 'regression'"):
        build_tasks(config)


def test_a_jsonl_token_task_with_integer_tags_trains_and_predicts_names(tmp_path: Path) -> None:
    """``datasets``-style JSONL (``tokens`` + integer ``ner_tags``, no tokens_field set) end to end."""
    from polytask.serving.predictor import Predictor
    from polytask.training.run import train_run

    rows = [(["John", "lives", "in", "Paris"], [1, 0, 0, 3]), (["Mary", "Smith", "left"], [1, 2, 0]),
            (["Rome", "is", "old"], [3, 0, 0]), (["Ann", "met", "Bob"], [1, 0, 1])]
    data = tmp_path / "ner.jsonl"
    data.write_text("".join(json.dumps({"tokens": t, "ner_tags": y}) + "\n" for t, y in rows))
    config = validate_config(_config(tmp_path, {"type": "token_classification", "scheme": "iob2", "label_names": NER,
                                                "data": {"format": "jsonl", "train": str(data), "dev": str(data),
                                                         "column": "ner_tags"}}))
    train_run(config, tmp_path / "run", progress=False)
    labels = json.loads((tmp_path / "run" / "labels.json").read_text())["t"]["labels"]["labels"]
    assert labels == ["B-LOC", "B-PER", "I-PER", "O"]  # the names seen in training, sorted
    (record,) = Predictor.from_run(tmp_path / "run").predict([Example(tokens=["John", "left"])])
    assert len(record["tasks"]["t"]["labels"]) == 2 and set(record["tasks"]["t"]["labels"]) <= set(labels)

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"tokens": ["x"], "ner_tags": [7]}) + "\n")
    config.tasks["t"].data.dev = str(bad)
    with pytest.raises(DataError, match=rf"{bad}:1: task 't': label id 7 is out of range"):
        train_run(config, tmp_path / "run2", progress=False)
    assert not (tmp_path / "run2").exists()
