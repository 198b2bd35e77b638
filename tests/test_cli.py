"""End-to-end CLI runs on tiny fixtures: train -> evaluate -> predict, and user errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import FIXTURES, tiny_config_dict


def polytask(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "polytask.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config_dict()))
    result = polytask("train", str(config), "--out", str(root / "run"), "--quiet", "--set", "training.epochs=3")
    assert result.returncode == 0, result.stderr
    return root / "run"


def test_train_writes_the_run_directory(trained_run: Path) -> None:
    for name in ("config.yaml", "model.safetensors", "labels.json", "vocab.json", "metrics.jsonl", "summary.json"):
        assert (trained_run / name).is_file(), name
    summary = json.loads((trained_run / "summary.json").read_text())
    assert set(summary["tasks"]) == {"pos", "chunk", "sentiment"}
    assert set(summary["tasks"]["chunk"]["f1"]) == {"dev", "test"}
    assert summary["best_epoch"] >= 1 and summary["train_seconds"] > 0
    config = yaml.safe_load((trained_run / "config.yaml").read_text())
    assert config["training"]["epochs"] == 3  # the override is in the resolved config
    records = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["kind"] == "eval" and r["split"] == "dev"]
    assert len(evals) == 3 and all(set(r["tasks"]) == {"pos", "chunk", "sentiment"} for r in evals)
    steps = [r for r in records if r["kind"] == "step"]
    assert steps and set(steps[0]["losses"]) <= {"pos", "chunk", "sentiment"} and "weights" in steps[0]
    assert not list(trained_run.glob("*.pt")) and not list(trained_run.glob("*.pkl"))


def test_evaluate_prints_and_writes_metrics(trained_run: Path) -> None:
    result = polytask("evaluate", str(trained_run), "--split", "test")
    assert result.returncode == 0, result.stderr
    written = json.loads((trained_run / "eval-test.json").read_text())
    summary = json.loads((trained_run / "summary.json").read_text())
    assert written["tasks"]["pos"]["accuracy"] == pytest.approx(summary["tasks"]["pos"]["accuracy"]["test"])
    assert "chunk" in result.stdout


def test_predict_jsonl_has_every_task(trained_run: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in.txt"
    inputs.write_text("The small bakery sold bread .\nA dull , plodding mess .\n")
    out = tmp_path / "out.jsonl"
    result = polytask("predict", str(trained_run), "--input", str(inputs), "--output", str(out))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 2 and records[0]["tokens"] == ["The", "small", "bakery", "sold", "bread", "."]
    first = records[0]["tasks"]
    assert len(first["pos"]["labels"]) == 6 and len(first["chunk"]["labels"]) == 6
    assert isinstance(first["chunk"]["spans"], list)
    assert first["sentiment"]["label"] in {"pos", "neg"}
    assert sum(first["sentiment"]["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_predict_conll_input(trained_run: Path, tmp_path: Path) -> None:
    result = polytask("predict", str(trained_run), "--input", str(FIXTURES / "conll2000_tiny.txt"), "--format", "conll")
    assert result.returncode == 0, result.stderr
    assert all("pos" in json.loads(line)["tasks"] for line in result.stdout.splitlines())


def test_existing_run_is_not_overwritten(trained_run: Path, tmp_path: Path) -> None:
    before = (trained_run / "model.safetensors").read_bytes()
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config_dict()))
    result = polytask("train", str(config), "--out", str(trained_run), "--quiet")
    assert result.returncode == 2 and "--overwrite" in result.stderr
    assert (trained_run / "model.safetensors").read_bytes() == before


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda c: c["training"].update(epochz=1), "training.epochz"),
        (lambda c: c["tasks"]["pos"]["data"].update(column=7), ":1: "),
        (lambda c: c["heads"].update(pos={"layer": 9}), "heads.pos.layer"),
        (lambda c: c["tasks"]["pos"].update(type="tagging"), "tasks.pos.type"),
        (lambda c: c.update(balancing={"method": "nope"}), "balancing.method"),
    ],
)
def test_user_errors_are_one_line_exit_2(tmp_path: Path, mutate, expected: str) -> None:
    data = tiny_config_dict()
    mutate(data)
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(data))
    result = polytask("train", str(config), "--out", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_data_names_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.txt"
    broken.write_text("The DT B-NP\ncat NN\n\n")
    data = tiny_config_dict()
    for task in ("pos", "chunk"):
        data["tasks"][task]["data"].update(train=str(broken), dev=str(broken), test=str(broken))
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(data))
    result = polytask("train", str(config), "--out", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 2 and f"{broken}:2" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_methods_lists_equal_weighting() -> None:
    result = polytask("methods")
    assert result.returncode == 0 and "ew" in result.stdout


def test_evaluate_rejects_a_label_unseen_in_training(trained_run: Path, tmp_path: Path) -> None:
    evaluation = tmp_path / "eval.txt"
    evaluation.write_text("Shares NNS B-NP\nrose VBD B-VP\n\nPrices XYZ B-NP\n\n")
    result = polytask("evaluate", str(trained_run), "--split", "test",
                      "--set", f"tasks.pos.data.test={evaluation}", "--set", f"tasks.chunk.data.test={evaluation}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{evaluation}:4" in result.stderr and "XYZ" in result.stderr


def test_task_without_training_labels_is_a_config_error(tmp_path: Path) -> None:
    data = tiny_config_dict()
    data["tasks"]["pos"]["data"]["max_train"] = 1
    empty = tmp_path / "empty.tsv"
    empty.write_text("text\tlabel\nsome words here\t\n")
    data["tasks"]["extra"] = {"type": "sequence_classification",
                              "data": {"format": "tsv", "train": str(empty), "dev": str(empty), "column": "label"}}
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(data))
    result = polytask("train", str(config), "--out", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 2 and "tasks.extra.data" in result.stderr and "no labelled training examples" in result.stderr


def test_output_dir_from_config_and_jsonl_prediction(tmp_path: Path) -> None:
    data = tiny_config_dict()
    data["output"] = {"dir": str(tmp_path / "from-config")}
    data["training"]["epochs"] = 1
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(data))
    assert polytask("train", str(config), "--quiet").returncode == 0
    assert (tmp_path / "from-config" / "model.safetensors").is_file()
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"text": "The small bakery sold bread ."}\n{"tokens": ["A", "dull", "mess"]}\n')
    result = polytask("predict", str(tmp_path / "from-config"), "--input", str(inputs), "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records[1]["tokens"] == ["A", "dull", "mess"] and len(records[1]["tasks"]["pos"]["labels"]) == 3


def test_train_without_any_run_directory_is_a_user_error(tiny_config: Path) -> None:
    result = polytask("train", str(tiny_config), "--quiet")
    assert result.returncode == 2 and "--out" in result.stderr


def test_version_prints_the_package_version_and_runs_record_it(trained_run: Path) -> None:
    from polytask._version import __version__

    result = polytask("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"polytask {__version__}"
    assert json.loads((trained_run / "summary.json").read_text())["polytask_version"] == __version__
    assert (trained_run / "config.yaml").read_text().splitlines()[0] == f"# written by polytask {__version__}"
