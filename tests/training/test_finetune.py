"""``polytask finetune``: adding a task to a trained run, retention of the old tasks, replay, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from polytask.config import validate_config
from polytask.data.example import Example
from polytask.errors import ConfigError, PolytaskError
from polytask.serving.predictor import Predictor
from polytask.training.finetune import finetune_run, load_task_addition, replay_weights
from polytask.training.run import train_run
from polytask.training.run_dir import load_run
from tests.conftest import FIXTURES, tiny_config_dict

NER = str(FIXTURES / "ner_tiny.txt")
QUICK = ["training.epochs=2", "training.epoch.steps=3", "training.lr=0.02"]


def ner_task() -> dict:
    return {"type": "token_classification", "scheme": "iob2",
            "data": {"format": "conll", "train": NER, "dev": NER, "test": NER, "column": 1}}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """POS + chunking trained for a few steps."""
    root = tmp_path_factory.mktemp("finetune")
    data = tiny_config_dict()
    del data["tasks"]["sentiment"]
    data["training"].update(epochs=3, lr=0.01)
    train_run(validate_config(data), root / "run", progress=False)
    return root / "run"


@pytest.fixture(scope="module")
def task_file(trained_run: Path) -> Path:
    path = trained_run.parent / "add-ner.yaml"
    path.write_text(yaml.safe_dump({"tasks": {"ner": ner_task()}, "heads": {"ner": {"layer": -1}}}))
    return path


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def changed(old: dict, new: dict, prefix: str) -> bool:
    return any(not torch.equal(old[k], new[k]) for k in old if k.startswith(prefix))


def test_finetune_reports_retention_and_writes_a_complete_run(trained_run: Path, task_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "plus-ner"
    retention = finetune_run(trained_run, task_file, out, overrides=QUICK, progress=False)
    assert json.loads((out / "retention.json").read_text()) == json.loads(json.dumps(retention))
    old_summary = json.loads((trained_run / "summary.json").read_text())
    assert set(retention["tasks"]) == {"pos", "chunk"}
    for task, metrics in old_summary["tasks"].items():
        assert set(retention["tasks"][task]) == set(metrics)
        for metric, values in metrics.items():
            entry = retention["tasks"][task][metric]
            assert entry["before"] == pytest.approx(values["dev"])  # the trained run's own dev score
            assert entry["change"] == pytest.approx(entry["after"] - entry["before"])
    assert set(retention["new_tasks"]["ner"]["f1"]) == {"dev", "test"}
    assert retention["replay"] == 0.0 and retention["freeze_encoder"] is False

    experiment = load_run(out)
    assert list(experiment.tasks) == ["pos", "chunk", "ner"]
    assert set(json.loads((out / "summary.json").read_text())["tasks"]) == {"pos", "chunk", "ner"}
    predictions = Predictor.from_run(out).predict([Example(["Maria", "Lopez", "sold", "bread", "in", "Oslo", "."])])
    assert set(predictions[0]["tasks"]) == {"pos", "chunk", "ner"}

    # replay 0: only the new task trains; the encoder moves, the old heads stay as trained.
    steps = [r for r in records(out) if r["kind"] == "step"]
    assert steps and all(r["tasks"] == ["ner"] for r in steps)
    old, new = load_file(str(trained_run / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert changed(old, new, "encoder.")
    assert not changed(old, new, "heads.pos.") and not changed(old, new, "heads.chunk.")


def test_frozen_encoder_keeps_old_tasks_exactly(trained_run: Path, task_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "frozen"
    retention = finetune_run(trained_run, task_file, out, freeze_encoder=True, overrides=QUICK, progress=False)
    assert retention["freeze_encoder"] is True
    for metrics in retention["tasks"].values():
        for entry in metrics.values():
            assert entry["after"] == entry["before"] and entry["change"] == 0.0
    old, new = load_file(str(trained_run / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert all(torch.equal(old[k], new[k]) for k in old)  # encoder and old heads bit for bit
    assert any(k.startswith("heads.ner.") for k in new)
    assert yaml.safe_load((out / "config.yaml").read_text())["training"]["freeze_encoder"] is True


def test_replay_puts_old_tasks_in_a_share_of_the_steps(trained_run: Path, task_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "replay"
    retention = finetune_run(trained_run, task_file, out, replay=0.5, progress=False,
                             overrides=["training.epochs=1", "training.epoch.steps=12", "training.lr=0.02"])
    assert retention["replay"] == 0.5
    steps = [r for r in records(out) if r["kind"] == "step"]
    assert all(len(r["tasks"]) == 1 for r in steps)  # one task per step
    drawn = {r["tasks"][0] for r in steps}
    assert "ner" in drawn and drawn & {"pos", "chunk"}
    sampling = yaml.safe_load((out / "config.yaml").read_text())["sampling"]
    assert sampling["method"] == "weighted" and sampling["tasks_per_step"] == 1
    weights = sampling["options"]["weights"]
    assert weights["ner"] == pytest.approx(0.5) and weights["pos"] + weights["chunk"] == pytest.approx(0.5)
    old, new = load_file(str(trained_run / "model.safetensors")), load_file(str(out / "model.safetensors"))
    replayed = {r["tasks"][0] for r in steps} - {"ner"}
    assert all(changed(old, new, f"heads.{task}.") for task in replayed)  # replayed old heads train


def test_replay_weights_split_each_share_by_size() -> None:
    weights = replay_weights({"pos": 30, "chunk": 10}, {"ner": 5}, 0.2)
    assert weights == pytest.approx({"pos": 0.15, "chunk": 0.05, "ner": 0.8})


def test_task_file_errors_name_the_file_and_field(trained_run: Path, tmp_path: Path) -> None:
    config = load_run(trained_run).config
    path = tmp_path / "task.yaml"
    cases = [
        ({"tasks": {"ner": ner_task()}, "training": {"lr": 1}}, "training: unknown field"),
        ({"tasks": {"pos": ner_task()}}, "tasks.pos: the trained model already has a task 'pos'"),
        ({"tasks": {"ner": {**ner_task(), "type2": 1}}}, "tasks.ner.type2: unknown field"),
        ({"tasks": {"ner": {**ner_task(), "data": {"format": "conll", "train": str(tmp_path / "none.txt"), "column": 1}}}},
         "tasks.ner.data.train: file not found"),
        ({"heads": {"ner": {}}}, "a task file is a mapping with a 'tasks' section"),
    ]
    for data, message in cases:
        path.write_text(yaml.safe_dump(data))
        with pytest.raises(ConfigError) as error:
            load_task_addition(path, config)
        assert str(path) in str(error.value) and message in str(error.value), str(error.value)
    with pytest.raises(ConfigError, match="task file not found"):
        load_task_addition(tmp_path / "missing.yaml", config)


def test_bad_replay_and_same_out_are_refused(trained_run: Path, task_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--replay"):
        finetune_run(trained_run, task_file, tmp_path / "x", replay=1.0, progress=False)
    with pytest.raises(ConfigError, match="sampling"):
        finetune_run(trained_run, task_file, tmp_path / "x", replay=0.2, overrides=["sampling.method=uniform"])
    with pytest.raises(ConfigError, match="trained encoder is kept"):
        finetune_run(trained_run, task_file, tmp_path / "x", overrides=["encoder.hidden=8"], progress=False)
    with pytest.raises(ConfigError, match="'pos' and its head are kept"):
        finetune_run(trained_run, task_file, tmp_path / "x", overrides=["heads.pos.layer=2"], progress=False)
    with pytest.raises(PolytaskError, match="--out must be a new run directory"):
        finetune_run(trained_run, task_file, trained_run, progress=False)
    assert not (tmp_path / "x").exists()


def polytask(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "polytask.cli", *args], capture_output=True, text=True, timeout=300)


def test_cli_finetune_prints_the_retention_table_and_rejects_a_bad_task_file(trained_run: Path, task_file: Path,
                                                                            tmp_path: Path) -> None:
    out = tmp_path / "cli"
    quick = [arg for text in QUICK for arg in ("--set", text)]
    result = polytask("finetune", str(trained_run), "--add-task", str(task_file), "--out", str(out),
                      "--freeze-encoder", "--quiet", *quick)
    assert result.returncode == 0, result.stderr
    assert "retention on dev" in result.stdout and "+0.00" in result.stdout and "ner" in result.stdout
    assert (out / "retention.json").is_file()

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"tasks": {"ner": {**ner_task(), "type": "token_classification", "scheme": "bilou"}}}))
    result = polytask("finetune", str(trained_run), "--add-task", str(bad), "--out", str(tmp_path / "bad-run"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert str(bad) in lines[0] and "tasks.ner.scheme" in lines[0]
    assert not (tmp_path / "bad-run").exists()


def test_per_task_adapters_frozen_encoder_trains_only_the_new_tasks_adapter_and_head(tmp_path: Path) -> None:
    """With one LoRA adapter per task, --freeze-encoder keeps the pretrained weights and the old
    tasks' adapters and heads bit for bit, while the new task gets its own adapter, which trains."""
    pytest.importorskip("peft", reason="peft is not installed (polytask[transformers])")
    from tests.models.tiny_transformer import make_tiny_bert

    data = tiny_config_dict()
    del data["tasks"]["sentiment"]
    data["encoder"] = {"type": "transformer", "model": str(make_tiny_bert(tmp_path / "bert")), "max_length": 16,
                       "adapters": {"r": 2, "per_task": True}}
    data["heads"] = {}
    data["training"].update(epochs=1, lr=0.01)
    train_run(validate_config(data), tmp_path / "run", progress=False)
    task_file = tmp_path / "add-ner.yaml"
    task_file.write_text(yaml.safe_dump({"tasks": {"ner": ner_task()}}))
    out = tmp_path / "plus-ner"
    retention = finetune_run(tmp_path / "run", task_file, out, freeze_encoder=True, overrides=QUICK, progress=False)
    assert all(entry["change"] == 0.0 for metrics in retention["tasks"].values() for entry in metrics.values())
    old, new = load_file(str(tmp_path / "run" / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert all(torch.equal(old[k], new[k]) for k in old)  # base weights, old adapters, old heads
    added = [k for k in new if k not in old]
    assert any(".lora_" in k and ".ner." in k for k in added) and any(k.startswith("heads.ner.") for k in added)
    lora_b = [k for k in added if ".lora_B." in k and ".ner." in k]
    assert lora_b and any(new[k].abs().sum() > 0 for k in lora_b)  # LoRA's B starts at zero: nonzero = trained


def test_finetune_under_torchrun_trains_data_parallel_and_rank_zero_writes(tmp_path: Path) -> None:
    """2 gloo ranks (dropout off, SGD) end where one process ends; the run and retention.json are written once."""
    from tests.training.ddp_cases import torchrun

    data = tiny_config_dict()
    del data["tasks"]["sentiment"]
    data["encoder"].update(dropout=0.0, embedding_dropout=0.0)
    data["heads"] = {"pos": {"layer": 1, "dropout": 0.0}, "chunk": {"dropout": 0.0}}
    data["training"].update(epochs=1, epoch={"steps": 2}, lr=0.05, optimizer="sgd", threads=1, device="cpu")
    train_run(validate_config(data), tmp_path / "run", progress=False)
    task_file = tmp_path / "add-ner.yaml"
    task_file.write_text(yaml.safe_dump({"tasks": {"ner": ner_task()}, "heads": {"ner": {"layer": -1, "dropout": 0.0}}}))
    overrides = ["training.epochs=2", "training.epoch.steps=3"]
    one = finetune_run(tmp_path / "run", task_file, tmp_path / "one", overrides=overrides, progress=False)
    settings = [word for text in overrides for word in ("--set", text)]
    result = torchrun("-m", "polytask", "finetune", str(tmp_path / "run"), "--add-task", str(task_file),
                      "--out", str(tmp_path / "two"), "--quiet", *settings)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("run saved in") == 2  # each rank finishes
    two = json.loads((tmp_path / "two" / "retention.json").read_text())
    assert [r["step"] for r in records(tmp_path / "two") if r["kind"] == "step"] == list(range(1, 7))  # one writer
    weights = [load_file(str(tmp_path / name / "model.safetensors")) for name in ("one", "two")]
    assert max(float((weights[0][k] - weights[1][k]).abs().max()) for k in weights[0]) <= 1e-5
    for task, metrics in one["tasks"].items():
        for metric, entry in metrics.items():
            assert two["tasks"][task][metric]["after"] == pytest.approx(entry["after"], abs=1e-6)
