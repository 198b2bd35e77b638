"""Sentence-pair tasks end to end: trained from the CLI (BiLSTM) and on a tiny transformer, predicted, served,
balanced by every method and mode beside token and sentence tasks, resumed and added by finetune."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from polytask.balancing.registry import available_methods
from polytask.config import validate_config
from polytask.errors import DataError, PolytaskError
from polytask.evaluation.scoring import evaluate
from polytask.serving.predictor import Predictor, read_inputs
from polytask.training.run import resume_run, train_run
from polytask.training.setup import build_experiment
from polytask.training.trainer import Trainer
from tests.conftest import FIXTURES, tiny_config_dict
from tests.test_cli import polytask as run_cli
from tests.training.test_resume import Crash, assert_same_run

TRAIN, DEV = str(FIXTURES / "pairs_tiny.tsv"), str(FIXTURES / "pairs_tiny_dev.tsv")


def pair_source(column: str) -> dict:
    return {"format": "tsv", "train": TRAIN, "dev": DEV, "test": DEV, "text_field": "sentence1",
            "text_pair_field": "sentence2", "column": column}


def pair_config() -> dict:
    """'relation': do the two sentences start with the same word (chance: 50%); 'overlap': shared words (regression)."""
    return {
        "tasks": {"relation": {"type": "sequence_classification", "data": pair_source("relation")},
                  "overlap": {"type": "regression", "data": pair_source("overlap")}},
        "encoder": {"type": "bilstm", "word_dim": 16, "char_dim": 8, "char_filters": 8, "hidden": 16, "layers": 1},
        "heads": {"relation": {"pooling": "first", "hidden": 16, "dropout": 0.0}},
        "training": {"epochs": 12, "batch_size": 8, "seed": 1, "lr": 0.01, "threads": 1,
                     "early_stopping": {"patience": None}},
    }


@pytest.fixture(scope="module")
def pair_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pairs")
    config = root / "pairs.yaml"
    config.write_text(yaml.safe_dump(pair_config()))
    result = run_cli("train", str(config), "--out", str(root / "run"), "--quiet")
    assert result.returncode == 0, result.stderr
    return root / "run"


def test_a_bilstm_learns_a_relation_between_the_two_sentences(pair_run: Path) -> None:
    """Same first word or not can only be told from both sentences: dev accuracy far above chance (50%)."""
    summary = json.loads((pair_run / "summary.json").read_text())
    assert summary["tasks"]["relation"]["accuracy"]["dev"] >= 87.5, summary["tasks"]["relation"]
    assert summary["tasks"]["overlap"]["pearson"]["dev"] > 0.1, summary["tasks"]["overlap"]  # a regression on pairs trains


def test_predict_on_a_pair_file_and_the_predictor_on_tuples(pair_run: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "pairs.jsonl"
    inputs.write_text(json.dumps({"text": "red cats sleep", "text_pair": "red dogs run"}) + "\n" +
                      json.dumps({"tokens": ["blue", "fish"], "tokens_pair": ["gold", "fish", "sing"]}) + "\n")
    result = run_cli("predict", str(pair_run), "--input", str(inputs), "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records[0]["tokens"] == ["red", "cats", "sleep"] and records[0]["tokens_pair"] == ["red", "dogs", "run"]
    assert records[0]["text_pair"] == "red dogs run" and "text_pair" not in records[1]
    assert set(records[0]["tasks"]) == {"relation", "overlap"}
    assert set(records[0]["tasks"]["relation"]["probabilities"]) == {"same", "different"}
    predictor = Predictor.from_run(pair_run)
    from_tuples = predictor.predict([("red cats sleep", "red dogs run"), (["blue", "fish"], ["gold", "fish", "sing"])])
    assert from_tuples == records  # the same records from the API as from polytask predict
    assert [r["tasks"]["relation"]["label"] for r in predictor.predict([("red a", "red b"), ("blue a", "gold b")])] \
        == ["same", "different"]
    single = tmp_path / "single.jsonl"
    single.write_text(json.dumps({"text": "red cats sleep"}) + "\n")
    with pytest.raises(DataError, match=f"^{single}:1: one sentence, but every task of this model reads sentence pairs"):
        predictor.predict(read_inputs(single, "jsonl"))
    with pytest.raises(DataError, match=r"^input 0: a sentence pair is a tuple \(first, second\)"):
        predictor.predict([("a", "b", "c")])


def test_serving_pairs_over_http(pair_run: Path) -> None:
    httpx = pytest.importorskip("httpx", reason="httpx is not installed (polytask[serve])")
    pytest.importorskip("uvicorn", reason="uvicorn is not installed (polytask[serve])")
    from polytask.serving.http import create_app
    from tests.serving.uvicorn_thread import serving

    predictor = Predictor.from_run(pair_run)
    with serving(create_app(predictor)) as base, httpx.Client(base_url=base, timeout=30) as client:
        tasks = client.get("/tasks").json()
        assert tasks["relation"]["pairs"] is True and tasks["overlap"]["level"] == "sequence"
        response = client.post("/predict", json={"inputs": [{"text": "red cats sleep", "text_pair": "red dogs run"},
                                                            {"tokens": ["blue"], "tokens_pair": ["gold", "fish"]}],
                                                 "tasks": ["relation"]})
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        expected = predictor.predict([("red cats sleep", "red dogs run"), (["blue"], ["gold", "fish"])])
        assert predictions[0]["tasks"] == {"relation": expected[0]["tasks"]["relation"]}
        assert predictions[1]["tokens_pair"] == ["gold", "fish"]
        for body, words in [({"inputs": [{"text": "red cats"}]}, "inputs.0: one sentence, but every task"),
                            ({"inputs": [{"text": "a", "text_pair": " "}]}, "'text_pair' must be a non-empty string"),
                            ({"inputs": [{"text": "a", "tokens_pair": []}]}, "'tokens_pair' must be a non-empty list")]:
            answer = client.post("/predict", json=body)
            assert answer.status_code == 422 and words in answer.text, answer.text


def test_onnx_export_of_a_pair_model_is_refused_in_one_line(pair_run: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxscript", reason="onnxscript is not installed (polytask[export])")
    from polytask.export.onnx_export import export_run

    with pytest.raises(PolytaskError) as caught:
        export_run(pair_run, tmp_path / "export")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("ONNX export of sentence-pair tasks (")
    assert "overlap" in message and "relation" in message and "is not supported yet" in message
    assert not (tmp_path / "export" / "model.onnx").exists()


def test_a_tiny_transformer_reads_which_sentence_a_word_is_in(tmp_path_factory) -> None:
    """'negated': does the *second* sentence hold 'not' (the first holds it in half the pairs too): learnt only
    from the pair encoding (segment ids, positions), far above chance (50%) in a few seconds."""
    tiny = pytest.importorskip("tests.models.tiny_transformer")
    model = str(tiny.make_tiny_bert(tmp_path_factory.mktemp("tiny-bert")))
    data = {"tasks": {"negated": {"type": "sequence_classification", "data": pair_source("negated")}},
            "encoder": {"type": "transformer", "model": model, "max_length": 24},
            "heads": {"negated": {"pooling": "max", "hidden": 32, "dropout": 0.0}},
            "training": {"epochs": 8, "batch_size": 8, "seed": 1, "lr": 0.003, "warmup": 0.0, "threads": 1,
                         "early_stopping": {"patience": None}}}
    experiment = build_experiment(validate_config(data))
    Trainer(experiment, None, progress=False).fit()
    dev = evaluate(experiment.model, experiment.tasks, experiment.corpus.examples("dev"))
    assert dev["negated"]["accuracy"] >= 87.5, dev


def mixed_config() -> dict:
    """POS and chunking (token tasks), polarity (one sentence) and the pair relation in one model."""
    data = tiny_config_dict()
    data["tasks"]["relation"] = {"type": "sequence_classification", "data": pair_source("relation")}
    data["heads"]["relation"] = {"pooling": "first"}
    data["training"].update(max_steps=2, epochs=1)
    return data


METHODS = sorted(available_methods())


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_a_pair_task_beside_token_and_sentence_tasks(method: str) -> None:
    data = mixed_config()
    data["balancing"] = {"method": method}
    trainer = Trainer(build_experiment(validate_config(data)), progress=False)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    for step in range(2):
        batch = trainer.steps.build(step, 2)
        assert set(batch.present_tasks) == {"pos", "chunk", "sentiment", "relation"}
        record = trainer.train_step(batch)
        assert all(math.isfinite(v) for v in record["losses"].values()), record
    changed = {n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])}
    assert any(n.startswith("encoder.lstms") for n in changed), method
    for task in ("pos", "sentiment", "relation"):
        assert any(n.startswith(f"heads.{task}.") for n in changed), (method, task)


@pytest.mark.parametrize("mode", ["representation", "subset"])
@pytest.mark.parametrize("method", ["mgda", "pcgrad"])
def test_the_cheap_gradient_modes_train_a_pair_task(method: str, mode: str) -> None:
    data = mixed_config()
    data["balancing"] = {"method": method, "mode": mode,
                         **({"shared_params": ["encoder.lstms.1"]} if mode == "subset" else {})}
    trainer = Trainer(build_experiment(validate_config(data)), progress=False)
    head = trainer.model.heads["relation"].net[-1].weight.detach().clone()
    record = trainer.train_step(trainer.steps.build(0, 2))
    assert "relation" in record["losses"] and all(math.isfinite(v) for v in record["losses"].values())
    assert not torch.equal(head, trainer.model.heads["relation"].net[-1].weight)


def resumable_config() -> dict:
    data = mixed_config()
    data["sampling"] = {"method": "temperature", "tasks_per_step": 2, "options": {"temperature": 2.0}}
    data["balancing"] = {"method": "uw"}
    data["training"].update({"epochs": 2, "max_steps": None, "epoch": {"steps": 4}, "lr": 0.02,
                             "checkpoint_every": 3, "threads": 1})
    return data


def test_a_run_with_a_pair_task_resumes_exactly(tmp_path: Path) -> None:
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    train_run(validate_config(resumable_config()), straight, progress=False)
    with pytest.raises(KeyboardInterrupt):
        train_run(validate_config(resumable_config()), interrupted, progress=False, callbacks=[Crash(5)])
    resume_run(interrupted, progress=False)
    assert_same_run(straight, interrupted)


def test_finetune_adds_a_pair_task_to_a_trained_token_model(tmp_path: Path) -> None:
    from polytask.training.finetune import finetune_run

    data = tiny_config_dict()
    del data["tasks"]["sentiment"]
    data["training"].update(epochs=1, epoch={"steps": 3})
    train_run(validate_config(data), tmp_path / "run", progress=False)
    addition = tmp_path / "add-relation.yaml"
    addition.write_text(yaml.safe_dump({"tasks": {"relation": {"type": "sequence_classification",
                                                               "data": pair_source("relation")}}}))
    finetune_run(tmp_path / "run", addition, tmp_path / "plus", overrides=["training.epochs=1",
                                                                           "training.epoch.steps=3"], progress=False)
    predictor = Predictor.from_run(tmp_path / "plus")
    assert predictor.pair_tasks == ["relation"]
    pair, single = predictor.predict([("red cats", "red dogs"), "Prices rose ."])
    assert set(pair["tasks"]) == {"relation"}  # a pair answers the pair task ...
    assert set(single["tasks"]) == {"pos", "chunk"}  # ... one sentence the others
    with pytest.raises(PolytaskError, match="a sentence pair, but no task of this model reads pairs"):
        Predictor.from_run(tmp_path / "run").predict([("red cats", "red dogs")])


def test_a_multilabel_task_reads_pairs_too() -> None:
    data = {"tasks": {"tags": {"type": "multilabel", "data": pair_source("relation")}},
            "encoder": {"type": "cnn", "word_dim": 8, "char_dim": 4, "char_filters": 4, "hidden": 8, "layers": 1},
            "training": {"max_steps": 1, "epochs": 1, "batch_size": 4}}
    experiment = build_experiment(validate_config(data))
    trainer = Trainer(experiment, progress=False)
    assert math.isfinite(trainer.train_step(trainer.steps.build(0, 1))["losses"]["tags"])
    (record,) = Predictor(experiment).predict([("red cats", "red dogs")])
    assert set(record["tasks"]["tags"]["probabilities"]) == {"same", "different"}
