"""Sharing architectures through the real trainer: every balancing method on every architecture, exact resume,
``polytask finetune --add-task`` with a frozen encoder, prediction and serving of a non-hard model."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from polytask.balancing.registry import available_methods
from polytask.config import validate_config
from polytask.data.example import Example
from polytask.errors import ConfigError
from polytask.serving.predictor import Predictor
from polytask.training.finetune import finetune_run
from polytask.training.run import resume_run, train_run
from polytask.training.run_dir import load_run
from polytask.training.setup import build_experiment
from polytask.training.trainer import Trainer
from tests.conftest import FIXTURES, tiny_config_dict
from tests.training.test_resume import Crash, assert_same_run

ARCHITECTURES = {
    "hard": {"type": "hard"},
    "branched": {"type": "branched", "groups": [["pos", "chunk"], ["sentiment"]], "shared_layers": 0},
    "mmoe": {"type": "mmoe", "experts": 2},
    "ple": {"type": "ple"},
    "cgc": {"type": "cgc"},
    "cross_stitch": {"type": "cross_stitch"},
    "soft": {"type": "soft"},
}
METHODS = available_methods()


def small(sharing: dict) -> dict:
    data = tiny_config_dict()
    data["encoder"].update(type="cnn", word_dim=8, chars=False, hidden=8)
    data["sharing"] = sharing
    data["training"].update(max_steps=2, epochs=1)
    return data


def method_rows() -> list[tuple[str, str]]:
    """Every method in exact mode; gradient aggregators also in representation mode (where they support it)."""
    return [(name, mode) for name, info in sorted(METHODS.items())
            for mode in (("exact", "representation") if info.kind == "gradient aggregator" else ("exact",))]


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_every_balancing_method_trains_on_every_architecture(architecture: str) -> None:
    experiment = build_experiment(validate_config(small(ARCHITECTURES[architecture])))
    model = experiment.model
    shared = set(model.shared_parameters())
    for method, mode in method_rows():
        data = small(ARCHITECTURES[architecture])
        data["balancing"] = {"method": method, "mode": mode}
        experiment.config = validate_config(data)
        try:
            trainer = Trainer(experiment, progress=False)
        except ConfigError:
            assert mode == "representation", (method, mode)  # a method that supports exact mode only
            continue
        try:
            before = {n: p.detach().clone() for n, p in model.named_parameters()}
            for step in range(2):
                record = trainer.train_step(trainer.steps.build(step, 2))
                assert all(math.isfinite(v) for v in record["losses"].values()), (method, mode)
            changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
            assert not shared or changed & shared, (method, mode)
            for task in model.tasks:
                assert any(n.startswith(f"heads.{task}.") for n in changed), (method, mode, task)
        except Exception as error:  # name the method and mode of a failure
            raise AssertionError(f"{architecture} / {method} / {mode}: {error}") from error


def stateful(sharing: dict) -> dict:
    data = tiny_config_dict()
    data["encoder"].update(dropout=0.3, embedding_dropout=0.2)
    data["sharing"] = sharing
    data["sampling"] = {"method": "temperature", "tasks_per_step": 2, "options": {"temperature": 2.0}}
    data["balancing"] = {"method": "uw"}
    data["training"].update({"epochs": 2, "epoch": {"steps": 4}, "lr": 0.02, "checkpoint_every": 3, "threads": 1})
    return data


@pytest.mark.parametrize("architecture", ["mmoe", "cross_stitch"])
def test_an_interrupted_run_resumes_bit_for_bit(architecture: str, tmp_path: Path) -> None:
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    train_run(validate_config(stateful(ARCHITECTURES[architecture])), straight, progress=False)
    with pytest.raises(KeyboardInterrupt):
        train_run(validate_config(stateful(ARCHITECTURES[architecture])), interrupted, progress=False,
                  callbacks=[Crash(5)])
    resume_run(interrupted, progress=False)
    assert_same_run(straight, interrupted)


def test_finetune_adds_a_task_to_a_ple_model_and_a_frozen_encoder_keeps_the_old_predictions(tmp_path: Path) -> None:
    data = tiny_config_dict()
    del data["tasks"]["sentiment"]
    data["sharing"] = {"type": "ple", "task_experts": 2}
    data["training"].update(epochs=2, lr=0.01)
    train_run(validate_config(data), tmp_path / "run", progress=False)
    ner = str(FIXTURES / "ner_tiny.txt")
    task_file = tmp_path / "add-ner.yaml"
    task_file.write_text(yaml.safe_dump({"tasks": {"ner": {"type": "token_classification", "scheme": "iob2", "data": {
        "format": "conll", "train": ner, "dev": ner, "test": ner, "column": 1}}}}))
    retention = finetune_run(tmp_path / "run", task_file, tmp_path / "plus-ner", freeze_encoder=True,
                             overrides=["training.epochs=2", "training.lr=0.05"], progress=False)
    assert all(v["change"] == 0 for metrics in retention["tasks"].values() for v in metrics.values())
    old, new = load_run(tmp_path / "run"), load_run(tmp_path / "plus-ner")
    assert new.config.sharing.added_tasks == ["ner"]
    sharing = new.model.sharing
    assert set(new.model.task_parameters("ner")) >= {f"sharing.task_gates.ner.{level}.logits.weight" for level in (0, 1)}
    sentences = [["Maria", "sold", "bread", "in", "Oslo", "."], ["He", "left", "."]]
    before, after = Predictor(old).predict([Example(s) for s in sentences]), Predictor(new).predict([Example(s) for s in sentences])
    for a, b in zip(before, after):
        assert {t: a["tasks"][t] for t in ("pos", "chunk")} == {t: b["tasks"][t] for t in ("pos", "chunk")}
        assert "ner" in b["tasks"]
    trained = old.model.state_dict()
    for key, value in new.model.state_dict().items():  # the old tasks' experts, gates and heads: as trained
        if key in trained:
            assert torch.equal(value, trained[key]), key
    assert any(not torch.equal(p, torch.zeros_like(p)) for p in sharing.task_gates["ner"].parameters())


def test_predict_and_serve_a_mixture_of_experts_model(tmp_path: Path) -> None:
    httpx = pytest.importorskip("httpx", reason="httpx is not installed (polytask[serve])")
    pytest.importorskip("uvicorn", reason="uvicorn is not installed (polytask[serve])")
    from polytask.serving.http import create_app
    from tests.serving.uvicorn_thread import serving

    data = tiny_config_dict()
    data["sharing"] = {"type": "mmoe", "experts": 3}
    data["training"].update(epochs=1)
    train_run(validate_config(data), tmp_path / "run", progress=False)
    predictor = Predictor.from_run(tmp_path / "run")
    calls = []
    for expert in predictor.experiment.model.sharing.all_experts():  # each expert runs once per batch of inputs
        module = expert._stack_modules()[0] if hasattr(expert, "_stack_modules") else expert
        module.register_forward_hook(lambda *args: calls.append(1))
    examples = [Example(["Prices", "rose", "."]), Example(["A", "fine", "film", "."])]
    records = predictor.predict(examples)
    assert len(calls) == 3
    assert set(records[0]["tasks"]) == {"pos", "chunk", "sentiment"} and len(records[0]["tasks"]["pos"]["labels"]) == 3
    with serving(create_app(predictor, run=str(tmp_path / "run"))) as base, httpx.Client(base_url=base, timeout=30) as client:
        answer = client.post("/predict", json={"inputs": [{"tokens": ["Prices", "rose", "."]}]})
    assert answer.status_code == 200 and answer.json()["predictions"][0] == records[0]
