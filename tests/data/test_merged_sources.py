"""A task labelled in two sources reads both: merged examples, label space, steps and errors."""

from __future__ import annotations

from collections import Counter

import pytest

from polytask.config import validate_config
from polytask.data.steps import StepBuilder
from polytask.errors import ConfigError
from polytask.training.setup import build_experiment
from tests.conftest import FIXTURES, tiny_config_dict


def merged_config_dict() -> dict:
    """POS from the CoNLL-2000 fixture (PTB tags, column 1) and the CoNLL-U fixture (xpos), chunking from CoNLL-2000."""
    config = tiny_config_dict()
    conll, conllu = str(FIXTURES / "conll2000_tiny.txt"), str(FIXTURES / "tiny.conllu")
    config["tasks"]["pos"]["data"] = [
        {"format": "conll", "train": conll, "dev": conll, "test": conll, "column": 1},
        {"format": "conllu", "train": conllu, "dev": conllu, "column": "xpos"},
    ]
    del config["tasks"]["sentiment"]
    return config


def test_merged_task_reads_every_source_and_shares_the_common_one():
    experiment = build_experiment(validate_config(merged_config_dict()))
    corpus = experiment.corpus
    assert len(corpus.sources) == 2  # chunk's source is pos's first source: read once
    assert corpus.task_sources == {"pos": [0, 1], "chunk": [0]}
    pos_train = corpus.task_examples("pos", "train")
    assert len(pos_train) == 3 + 2
    assert {e.origin.split(":")[0] for e in pos_train} == {str(FIXTURES / "conll2000_tiny.txt"),
                                                          str(FIXTURES / "tiny.conllu")}
    assert len(corpus.task_examples("chunk", "train")) == 3
    # every dev example labelled for pos is evaluated, from both sources
    assert len(corpus.task_examples("pos", "dev")) == 5


def test_steps_draw_a_merged_task_from_the_union_of_its_sources():
    config = validate_config(merged_config_dict())
    experiment = build_experiment(config)
    steps = StepBuilder(config, experiment.corpus, experiment.tasks, experiment.model.encoder.featurizer)
    assert steps.task_pool == {"pos": "task:pos", "chunk": "0"}
    drawn: Counter = Counter()
    for step in range(10):  # batch 4 over 5 pos examples: 8 passes cover every example
        batch = steps.build(step, 10)
        assert set(batch.present_tasks) == {"pos", "chunk"}
        drawn.update(" ".join(e.tokens) for e in batch.examples if "pos" in e.labels and "chunk" not in e.labels)
    assert len(drawn) == 2  # both CoNLL-U sentences were seen
    assert steps.seen["pos"] > steps.seen["chunk"] > 0


def test_a_missing_file_in_a_source_list_names_its_position(tmp_path):
    config = merged_config_dict()
    config["tasks"]["pos"]["data"][1]["train"] = str(tmp_path / "missing.conllu")
    with pytest.raises(ConfigError, match=r"tasks\.pos\.data\.1\.train"):
        validate_config(config)


def test_an_empty_source_list_is_a_config_error():
    config = merged_config_dict()
    config["tasks"]["pos"]["data"] = []
    with pytest.raises(ConfigError, match="tasks.pos.data"):
        validate_config(config)


def test_the_same_source_twice_is_a_config_error():
    config = merged_config_dict()
    config["tasks"]["pos"]["data"][1] = dict(config["tasks"]["pos"]["data"][0])
    with pytest.raises(ConfigError, match="listed twice"):
        build_experiment(validate_config(config))


def test_max_train_takes_a_seeded_sample_across_label_grouped_files(tmp_path):
    """Polarity-style data is grouped by label (one file each): a prefix would be one label."""
    positive, negative = tmp_path / "pos.txt", tmp_path / "neg.txt"
    positive.write_text("".join(f"good film number {i}\n" for i in range(50)))
    negative.write_text("".join(f"bad film number {i}\n" for i in range(50)))
    config = {"tasks": {"sentiment": {"type": "sequence_classification", "data": {
        "format": "lines", "files": {"positive": str(positive), "negative": str(negative)},
        "split": {"dev": 0.2, "seed": 5}, "max_train": 20}}}}
    first = build_experiment(validate_config(config)).corpus.task_examples("sentiment", "train")
    again = build_experiment(validate_config(config)).corpus.task_examples("sentiment", "train")
    assert len(first) == 20
    assert {e.labels["sentiment"] for e in first} == {"positive", "negative"}
    assert [e.origin for e in first] == [e.origin for e in again]
