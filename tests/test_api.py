"""The Python API: ``polytask.train`` / ``polytask.load`` give a ``TrainedModel`` that predicts every task on raw
strings, string lists and token lists, with the records ``polytask predict`` writes; the public names are listed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import polytask
from polytask.cli import app
from polytask.config import ExperimentConfig
from polytask.data.tokenize import simple_tokenize
from polytask.errors import PolytaskError
from polytask.serving.predictor import Predictor
from tests.conftest import tiny_config_dict

TEXTS = ["The small bakery sold bread .", "A dull , plodding mess .", "Shares of the company rose ."]


pytestmark = pytest.mark.usefixtures("keep_torch_threads")  # training here may set torch's threads


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> polytask.TrainedModel:
    """POS, chunking (iob2 spans) and sentiment on the tiny fixtures, trained once from a dict config."""
    out = tmp_path_factory.mktemp("api") / "run"
    config = tiny_config_dict()
    model = polytask.train(config, out=out, overrides=["training.epochs=2"], progress=False)
    assert config == tiny_config_dict(), "train changed the caller's dict"
    return model


def approx_records(records):
    """Records compared with probabilities to float rounding (batch composition changes the last bits)."""
    if isinstance(records, dict):
        return {**records, "tasks": {name: {k: pytest.approx(v, abs=1e-5) if k == "probabilities" else v
                                            for k, v in entry.items()} for name, entry in records["tasks"].items()}}
    return [approx_records(record) for record in records]


def test_train_returns_a_trained_model_with_its_run(trained: polytask.TrainedModel) -> None:
    assert isinstance(trained, polytask.TrainedModel)
    assert trained.run_dir is not None and (trained.run_dir / "model.safetensors").is_file()
    assert trained.summary == json.loads((trained.run_dir / "summary.json").read_text())
    assert isinstance(trained.config, ExperimentConfig) and trained.config.training.epochs == 2
    assert trained.tasks == ["pos", "chunk", "sentiment"]
    assert isinstance(trained.predictor, Predictor)
    assert trained.describe_tasks()["sentiment"] == {"type": "sequence_classification", "level": "sequence",
                                                     "labels": ["neg", "pos"]}
    assert repr(trained) == f"TrainedModel(run_dir={str(trained.run_dir)!r}, tasks=['pos', 'chunk', 'sentiment'], " \
                            f"best_epoch={trained.summary['best_epoch']})"


def test_a_raw_string_gives_one_record_with_every_task(trained: polytask.TrainedModel) -> None:
    record = trained.predict(TEXTS[0])
    tokens = simple_tokenize(TEXTS[0])
    assert record["tokens"] == tokens and record["text"] == TEXTS[0]
    assert set(record["tasks"]) == {"pos", "chunk", "sentiment"}
    labels = trained.describe_tasks()
    assert len(record["tasks"]["pos"]["labels"]) == len(tokens)
    assert set(record["tasks"]["pos"]["labels"]) <= set(labels["pos"]["labels"])
    chunk = record["tasks"]["chunk"]
    assert len(chunk["labels"]) == len(tokens)
    for span in chunk["spans"]:  # spans are the chunks of the tags, their text the tokens they cover
        assert 0 <= span["start"] < span["end"] <= len(tokens)
        assert span["text"] == " ".join(tokens[span["start"] : span["end"]])
        assert chunk["labels"][span["start"]] in (f"B-{span['type']}", f"I-{span['type']}")
    sentiment = record["tasks"]["sentiment"]
    assert sentiment["label"] in {"pos", "neg"} and set(sentiment["probabilities"]) == {"pos", "neg"}
    assert sum(sentiment["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert sentiment["label"] == max(sentiment["probabilities"], key=sentiment["probabilities"].get)
    assert trained(TEXTS[0]) == record  # a TrainedModel is called like nlp(text)


def test_a_list_of_strings_gives_a_record_each_in_order(trained: polytask.TrainedModel) -> None:
    records = trained.predict(TEXTS)
    assert isinstance(records, list) and [r["text"] for r in records] == TEXTS
    assert records == approx_records([trained.predict(text) for text in TEXTS])
    assert trained.predict([]) == []


def test_token_lists_are_kept_as_given_and_agree_with_the_text(trained: polytask.TrainedModel) -> None:
    tokens = [simple_tokenize(text) for text in TEXTS]
    records = trained.predict(tokens)
    assert [r["tokens"] for r in records] == tokens and all("text" not in r for r in records)
    from_text = trained.predict(TEXTS)
    assert [r["tasks"] for r in records] == [r["tasks"] for r in from_text]  # a BiLSTM reads only the tokens
    pre_split = trained.predict([["New", "York", "'s", "bakery"]])[0]
    assert pre_split["tokens"] == ["New", "York", "'s", "bakery"] and len(pre_split["tasks"]["pos"]["labels"]) == 4


def test_every_task_comes_from_one_encoder_pass(trained: polytask.TrainedModel) -> None:
    encoder = trained.predictor.experiment.model.encoder
    calls = []
    handle = encoder.register_forward_hook(lambda module, args, output: calls.append(1))
    try:
        trained.predict(TEXTS)
    finally:
        handle.remove()
    assert len(calls) == 1


def test_the_records_are_those_of_polytask_predict(trained: polytask.TrainedModel, tmp_path: Path) -> None:
    inputs = tmp_path / "in.txt"
    inputs.write_text("\n".join(TEXTS) + "\n")
    result = CliRunner().invoke(app, ["predict", str(trained.run_dir), "--input", str(inputs)])
    assert result.exit_code == 0, result.stderr
    written = [json.loads(line) for line in result.stdout.splitlines()]
    assert trained.predict(TEXTS) == approx_records(written)


def test_load_gives_the_same_model(trained: polytask.TrainedModel) -> None:
    loaded = polytask.load(trained.run_dir)
    assert isinstance(loaded, polytask.TrainedModel) and loaded.run_dir == trained.run_dir
    assert loaded.summary == trained.summary and loaded.config == trained.config
    for text in TEXTS:
        assert loaded.predict(text) == trained.predict(text)
    assert Predictor.from_run(trained.run_dir).predict(TEXTS[1]) == loaded.predict(TEXTS[1])


def test_evaluate_scores_the_best_epoch_as_training_did(trained: polytask.TrainedModel) -> None:
    dev = trained.evaluate("dev")
    for task, metrics in dev.items():
        for metric, value in metrics.items():
            assert value == pytest.approx(trained.summary["tasks"][task][metric]["dev"])
    assert json.loads((trained.run_dir / "eval-dev.json").read_text()) == {"split": "dev", "tasks": dev}
    with pytest.raises(PolytaskError, match="unknown split 'train'; choose dev or test"):
        trained.evaluate("train")


def test_load_run_returns_the_experiment(trained: polytask.TrainedModel) -> None:
    experiment = polytask.load_run(trained.run_dir)
    assert experiment.config == trained.config and list(experiment.tasks) == trained.tasks
    assert experiment.corpus is None and not experiment.model.training
    assert experiment.tasks["chunk"].labels_to_json() == {"labels": trained.describe_tasks()["chunk"]["labels"]}


def test_train_in_memory_from_a_path_with_overrides(tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config_dict()))
    model = polytask.train(config, overrides=["training.max_steps=1"], progress=False)
    assert model.run_dir is None and model.summary["steps"] == 1
    assert [path.name for path in tmp_path.iterdir()] == ["tiny.yaml"]  # nothing written
    assert set(model.predict("He left .")["tasks"]) == {"pos", "chunk", "sentiment"}
    with pytest.raises(PolytaskError, match="trained without a run directory"):
        model.evaluate()
    again = polytask.train(model.config, overrides=["training.max_steps=1"], progress=False)  # an ExperimentConfig
    assert again.predict("He left .") == model.predict("He left .")  # same seed, same config: the same model


def test_the_public_api_is_listed_and_shown() -> None:
    names = set(polytask.__all__)
    assert {"train", "load", "TrainedModel", "Predictor", "load_run", "PolytaskError", "ConfigError", "DataError",
            "InputError", "evaluate_run", "resume", "finetune", "compare", "affinity", "__version__"} <= names
    shown = dir(polytask)
    assert names <= set(shown), "dir(polytask) hides part of __all__"
    assert not {"importlib", "os", "Any", "TYPE_CHECKING", "annotations"} & set(shown)
    for name in names:
        assert getattr(polytask, name) is not None, name
    for name in ("ConfigError", "DataError", "InputError", "MissingDependencyError"):
        assert issubclass(getattr(polytask, name), polytask.PolytaskError)
