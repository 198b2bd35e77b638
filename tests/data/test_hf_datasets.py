"""``data.format: hf``: datasets built here (never downloaded), saved to disk, as local files and in memory.

ClassLabel ids become their names (token-level lists and sentence-level), a DatasetDict's splits are
train/dev/test, and a run trained from an in-memory dataset keeps a copy so it evaluates again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from polytask.config import validate_config
from polytask.data.corpus import load_corpus
from polytask.errors import ConfigError, DataError
from polytask.training.setup import build_tasks

datasets = pytest.importorskip("datasets", reason="format 'hf' needs the 'hf' extra (datasets)")

NER = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
TOKENS = [["John", "lives", "in", "Paris"], ["Mary", "Smith", "left"], ["Rome", "is", "old"], ["Ann", "met", "Bob"]]
TAGS = [[1, 0, 0, 3], [1, 2, 0], [3, 0, 0], [1, 0, 1]]
MOOD = [1, 0, 1, -1]  # -1: datasets' "no label"
ENCODER = {"word_dim": 8, "char_dim": 4, "char_filters": 4, "hidden": 8, "layers": 1}


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """load_dataset's Arrow cache in the test's directory, not the user's."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))


def conll_like() -> datasets.Dataset:
    features = datasets.Features({"id": datasets.Value("string"),
                                  "tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(names=NER)),
                                  "mood": datasets.ClassLabel(names=["negative", "positive"])})
    return datasets.Dataset.from_dict({"id": ["a", "b", "c", "d"], "tokens": TOKENS, "ner_tags": TAGS, "mood": MOOD},
                                      features=features)


def config(data: dict, **tasks: dict) -> dict:
    tasks = tasks or {"ner": {"type": "token_classification", "scheme": "iob2", "data": {**data, "column": "ner_tags"}},
                      "mood": {"type": "sequence_classification", "data": {**data, "column": "mood"}}}
    return {"tasks": tasks, "encoder": ENCODER, "training": {"epochs": 1, "max_steps": 2, "batch_size": 2}}


def corpus_of(data: dict):  # type: ignore[no-untyped-def]
    experiment = validate_config(config(data))
    return load_corpus(experiment, build_tasks(experiment))


def test_a_saved_dataset_dict_gives_its_splits_and_classlabel_names(tmp_path: Path) -> None:
    full = conll_like()
    datasets.DatasetDict(train=full, validation=full.select([0, 1]), test=full.select([2])).save_to_disk(tmp_path / "ds")
    corpus = corpus_of({"format": "hf", "dataset": str(tmp_path / "ds")})
    assert len(corpus.sources) == 1  # both tasks read one source
    train = corpus.examples("train")
    assert [e.tokens for e in train] == TOKENS
    assert [e.labels["ner"] for e in train] == [[NER[i] for i in tags] for tags in TAGS]
    assert [e.labels.get("mood") for e in train] == ["positive", "negative", "positive", None]
    assert [len(corpus.examples(s)) for s in ("dev", "test")] == [2, 1]
    assert train[1].origin == f"{tmp_path / 'ds'}[train]:2"


def test_split_names_choose_the_splits_and_a_wrong_one_lists_them(tmp_path: Path) -> None:
    full = conll_like()
    datasets.DatasetDict(fit=full, held=full.select([0])).save_to_disk(tmp_path / "ds")
    corpus = corpus_of({"format": "hf", "dataset": str(tmp_path / "ds"), "split_names": {"train": "fit", "dev": "held"}})
    assert [len(corpus.examples(s)) for s in ("train", "dev", "test")] == [4, 1, 0]
    with pytest.raises(DataError, match=r"split_names.dev: the dataset has no split 'validation'; its splits: fit, held"):
        corpus_of({"format": "hf", "dataset": str(tmp_path / "ds"),
                   "split_names": {"train": "fit", "dev": "validation"}})
    with pytest.raises(DataError, match=r"no training split: the dataset has fit, held"):
        corpus_of({"format": "hf", "dataset": str(tmp_path / "ds"), "split": {"dev": 0.5}})


def test_local_data_files_parquet_keeps_classlabels_and_jsonl_ids_take_label_names(tmp_path: Path) -> None:
    full = conll_like()
    full.to_parquet(str(tmp_path / "train.parquet"))
    corpus = corpus_of({"format": "hf", "train": str(tmp_path / "train.parquet"), "split": {"dev": 0.25}})
    assert sorted(tag for e in corpus.examples("train") + corpus.examples("dev") for tag in e.labels["ner"]) == \
        sorted(NER[i] for tags in TAGS for i in tags)

    full.to_json(str(tmp_path / "train.jsonl"))  # plain integers now: the names come from label_names
    experiment = validate_config(config({}, ner={
        "type": "token_classification", "scheme": "iob2", "label_names": NER,
        "data": {"format": "hf", "train": str(tmp_path / "train.jsonl"), "dev": str(tmp_path / "train.jsonl"),
                 "column": "ner_tags"}}))
    dev = load_corpus(experiment, build_tasks(experiment)).examples("dev")
    assert [e.labels["ner"] for e in dev] == [[NER[i] for i in tags] for tags in TAGS]


def test_a_folder_of_data_files_is_split_by_file_name(tmp_path: Path) -> None:
    (tmp_path / "files").mkdir()
    conll_like().to_json(str(tmp_path / "files" / "train.jsonl"))
    conll_like().select([3]).to_json(str(tmp_path / "files" / "validation.jsonl"))
    data = {"format": "hf", "dataset": str(tmp_path / "files"), "column": "ner_tags"}
    experiment = validate_config(config({}, ner={"type": "token_classification", "data": data}))
    corpus = load_corpus(experiment, build_tasks(experiment))
    assert [len(corpus.examples(s)) for s in ("train", "dev")] == [4, 1]
    assert corpus.examples("dev")[0].labels == {"ner": ["1", "0", "1"]}  # JSON ints without label_names: digits
    with pytest.raises(DataError, match=r"files\[train\]:1: task 'ner': token 0: tag '1' is not valid in scheme 'iob2'"
                                        r".*integer tag ids need the task's label_names"):
        corpus_of({"format": "hf", "dataset": str(tmp_path / "files")})


def test_text_columns_are_tokenised_and_missing_columns_are_named(tmp_path: Path) -> None:
    sst = datasets.Dataset.from_dict({"sentence": ["A fine film.", "Dull."], "label": [1, 0]},
                                     features=datasets.Features({"sentence": datasets.Value("string"),
                                                                 "label": datasets.ClassLabel(names=["neg", "pos"])}))
    sst.save_to_disk(tmp_path / "sst")
    data = {"format": "hf", "train": str(tmp_path / "sst"), "dev": str(tmp_path / "sst"), "column": "label"}
    experiment = validate_config(config({}, sst={"type": "sequence_classification", "data": {**data, "text_field": "sentence"}}))
    examples = load_corpus(experiment, build_tasks(experiment)).examples("train")
    assert [(e.tokens, e.text, e.labels) for e in examples] == [
        (["A", "fine", "film", "."], "A fine film.", {"sst": "pos"}), (["Dull", "."], "Dull.", {"sst": "neg"})]
    experiment = validate_config(config({}, sst={"type": "sequence_classification", "data": data}))
    with pytest.raises(DataError, match=r"sst: no 'text' column \(text_field\) and no 'tokens' column; the dataset has: "
                                        r"sentence, label"):
        load_corpus(experiment, build_tasks(experiment))
    experiment = validate_config(config({}, sst={"type": "sequence_classification", "data": {**data, "column": "stars"}}))
    with pytest.raises(DataError, match=r"task 'sst': no column 'stars'; the dataset has: sentence, label"):
        load_corpus(experiment, build_tasks(experiment))


@pytest.mark.parametrize("data,expected", [
    ({"format": "hf", "dataset": "conll2003"}, r"tasks\.ner\.data\.dataset: file not found: .*conll2003 \(format 'hf' "
                                               r"reads local datasets only"),
    ({"format": "hf"}, r"format 'hf' needs 'dataset' \(read by split name\) or 'train'"),
    ({"format": "jsonl", "train": __file__, "dataset": "x"}, "'dataset' and 'split_names' are options of format 'hf'"),
    ({"format": "hf", "dataset": 3}, "expected a path or a datasets.Dataset / DatasetDict, got int"),
])
def test_config_errors_name_the_field(data: dict, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        validate_config(config({}, ner={"type": "token_classification", "data": {**data, "column": "ner_tags"}}))


def test_an_in_memory_dataset_trains_through_the_api_and_the_run_evaluates_again(tmp_path: Path) -> None:
    import polytask

    full = conll_like()
    splits = datasets.DatasetDict(train=full, validation=full.select([0, 1, 2]))
    settings = config({"format": "hf", "dataset": splits})
    summary = polytask.train(settings, out=str(tmp_path / "run"), progress=False, overrides=["training.seed=3"]).summary
    assert settings["training"] == {"epochs": 1, "max_steps": 2, "batch_size": 2}  # the caller's dict is unchanged
    written = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    kept = tmp_path / "run" / "datasets" / "0"
    assert written["tasks"]["ner"]["data"]["dataset"] == written["tasks"]["mood"]["data"]["dataset"] == str(kept)
    assert datasets.load_from_disk(str(kept))["validation"].to_dict() == splits["validation"].to_dict()
    dev = polytask.evaluate_run(str(tmp_path / "run"), split="dev")
    assert {t: {m: v["dev"] for m, v in metrics.items()} for t, metrics in summary["tasks"].items()} == dev
    assert json.loads((tmp_path / "run" / "labels.json").read_text())["mood"]["labels"]["labels"] == ["negative", "positive"]

    dumped = polytask.validate_config(settings).to_yaml()  # YAML cannot hold the object: it names it
    assert "dataset: <in-memory DatasetDict>" in dumped
    with pytest.raises(ConfigError, match="written from a dataset passed in memory"):
        validate_config(yaml.safe_load(dumped))


def test_two_equal_looking_in_memory_datasets_are_two_sources() -> None:
    first, second = conll_like(), conll_like()
    experiment = validate_config(config({}, a={"type": "sequence_classification",
                                               "data": {"format": "hf", "dataset": first, "column": "mood"}},
                                        b={"type": "sequence_classification",
                                           "data": {"format": "hf", "dataset": second, "column": "mood"}}))
    assert len({data.source_key() for task in experiment.tasks.values() for data in task.sources()}) == 2


def test_without_the_extra_reading_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from polytask.errors import MissingDependencyError

    conll_like().save_to_disk(tmp_path / "ds")
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(MissingDependencyError, match=r"data format 'hf' needs the optional package 'datasets': "
                                                     r"pip install 'polytask\[hf\]'"):
        corpus_of({"format": "hf", "dataset": str(tmp_path / "ds")})
