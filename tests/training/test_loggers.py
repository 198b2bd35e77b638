"""Experiment loggers: real TensorBoard event files and an MLflow file store read back through their own readers,
a W&B offline run, resumed runs continuing the same tracker runs, rank 0 alone logging, and one-line config errors."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest

from polytask.config import validate_config
from polytask.errors import ConfigError, MissingDependencyError
from polytask.training.callbacks import Callback
from polytask.training.loggers import build_loggers, scalars
from polytask.training.run import resume_run, train_run
from tests.conftest import tiny_config_dict


def logged_config(*loggers: str, **training) -> dict:
    """The tiny three-task config under PCGrad (task weights, gradient norms and cosines in every step record)."""
    data = tiny_config_dict()
    data["balancing"] = {"method": "pcgrad"}
    data["training"].update({"epochs": 2, "epoch": {"steps": 2}, "log_every": 1, "loggers": list(loggers), **training})
    return data


def records(run: Path, kind: str, split: str | None = None) -> list[dict]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in lines if r["kind"] == kind and (split is None or r.get("split") == split)]


def event_scalars(directory: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in the event files under ``directory``, as TensorBoard itself reads them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(directory), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def mlflow_runs(store: Path) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store.absolute().as_uri())
    experiment = client.get_experiment_by_name("polytask")
    return [] if experiment is None else client.search_runs([experiment.experiment_id])


def mlflow_history(store: Path, run_id: str, key: str) -> list[tuple[int, float]]:
    from mlflow.tracking import MlflowClient

    return [(m.step, m.value) for m in MlflowClient(store.absolute().as_uri()).get_metric_history(run_id, key)]


def test_scalars_name_every_number_of_a_record_by_its_path() -> None:
    step = {"kind": "step", "step": 3, "epoch": 1, "lr": 0.5, "tasks": ["a", "b"], "seen": {"a": 4},
            "losses": {"a": 1.0, "b": 2.0}, "weights": {"a": 0.7}, "grad_norms": {"a": 3.0},
            "cosines": {"a|b": -0.25}, "recomputed": True, "vjp": "loop", "skipped": True}
    assert scalars(step) == {"train/lr": 0.5, "train/seen/a": 4.0, "train/losses/a": 1.0, "train/losses/b": 2.0,
                             "train/weights/a": 0.7, "train/grad_norms/a": 3.0, "train/cosines/a:b": -0.25}
    dev = {"kind": "eval", "split": "dev", "epoch": 1, "step": 3, "tasks": {"a": {"f1": 50.0}}, "score": 0.5,
           "best": True, "seconds": 2.0}
    assert scalars(dev) == {"dev/a/f1": 50.0, "dev/score": 0.5}
    assert scalars({"kind": "unfreeze", "step": 3, "trainable_groups": [1]}) == {}


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("logged") / "run"
    train_run(validate_config(logged_config("tensorboard", "mlflow")), run, progress=False)
    return run


def test_tensorboard_event_files_hold_every_record(logged_run: Path) -> None:
    series = event_scalars(logged_run / "tensorboard")
    steps = records(logged_run, "step")
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    for task in ("pos", "chunk", "sentiment"):
        for key in ("losses", "weights", "grad_norms"):
            assert series[f"train/{key}/{task}"] == [(r["step"], pytest.approx(r[key][task], rel=1e-6)) for r in steps]
    assert series["train/lr"] == [(r["step"], pytest.approx(r["lr"], rel=1e-6, abs=1e-12)) for r in steps]
    assert series["train/cosines/pos:chunk"] == [(r["step"], pytest.approx(r["cosines"]["pos|chunk"], rel=1e-5))
                                                 for r in steps]
    dev = records(logged_run, "eval", "dev")
    assert series["dev/chunk/f1"] == [(r["step"], pytest.approx(r["tasks"]["chunk"]["f1"], rel=1e-6)) for r in dev]
    assert series["dev/score"] == [(r["step"], pytest.approx(r["score"], rel=1e-6)) for r in dev]
    (test,) = records(logged_run, "eval", "test")
    assert series["test/pos/accuracy"] == [(4, pytest.approx(test["tasks"]["pos"]["accuracy"], rel=1e-6))]


def test_the_mlflow_file_store_holds_the_run_its_params_and_metrics(logged_run: Path) -> None:
    (run,) = mlflow_runs(logged_run / "mlruns")
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params["balancing.method"] == "pcgrad" and run.data.params["training.loggers"] == \
        '["tensorboard", "mlflow"]'
    assert run.data.tags["polytask.version"] == json.loads((logged_run / "summary.json").read_text())["polytask_version"]
    assert json.loads((logged_run / "loggers.json").read_text())["mlflow"]["run_id"] == run.info.run_id
    steps = records(logged_run, "step")
    assert mlflow_history(logged_run / "mlruns", run.info.run_id, "train/weights/chunk") == \
        [(r["step"], pytest.approx(r["weights"]["chunk"])) for r in steps]
    assert mlflow_history(logged_run / "mlruns", run.info.run_id, "train/cosines/pos:sentiment") == \
        [(r["step"], pytest.approx(r["cosines"]["pos|sentiment"])) for r in steps]
    assert [step for step, _ in mlflow_history(logged_run / "mlruns", run.info.run_id, "dev/sentiment/accuracy")] == \
        [r["step"] for r in records(logged_run, "eval", "dev")]


class Crash(Callback):
    def before_step(self, trainer, batch) -> None:
        if trainer.step == 3:
            raise KeyboardInterrupt("simulated crash before step 3")


def test_a_resumed_run_continues_its_tracker_runs_without_repeating_steps(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_run(validate_config(logged_config("tensorboard", "mlflow")), run, progress=False, callbacks=[Crash()])
    (crashed,) = mlflow_runs(run / "mlruns")
    assert crashed.info.status == "FAILED"
    resume_run(run, progress=False)
    (resumed,) = mlflow_runs(run / "mlruns")  # the same MLflow run, finished now
    assert resumed.info.run_id == crashed.info.run_id and resumed.info.status == "FINISHED"
    series = event_scalars(run / "tensorboard")
    assert [step for step, _ in series["train/losses/pos"]] == [1, 2, 3, 4]  # step 3 was logged twice, purged once
    assert [v for _, v in series["train/losses/pos"]] == pytest.approx([r["losses"]["pos"] for r in records(run, "step")])


def test_wandb_writes_an_offline_run_without_an_api_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No public reader opens an offline run, so the run file's bytes are searched for each logged value."""
    pytest.importorskip("wandb")
    for variable in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(variable, raising=False)
    run = tmp_path / "run"
    train_run(validate_config(logged_config("wandb", epochs=1)), run, progress=False)
    run_id = json.loads((run / "loggers.json").read_text())["wandb"]["id"]
    (file,) = (run / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb")
    deadline = time.monotonic() + 60  # wandb-core, a process of its own, may still be writing after finish()
    while b"dev/score" not in file.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.5)
    data = file.read_bytes()
    for record in records(run, "step"):
        value = json.dumps(record["losses"]["chunk"]).encode()
        assert re.search(rb"train/losses/chunk.{1,6}" + re.escape(value), data, re.S), value
    (dev,) = records(run, "eval", "dev")
    assert re.search(rb"dev/score.{1,6}" + re.escape(json.dumps(dev["score"]).encode()), data, re.S)


@pytest.mark.slow
def test_only_rank_zero_logs_under_two_processes(tmp_path: Path) -> None:
    from tests.training.ddp_cases import spawn

    run = tmp_path / "run"
    data = logged_config("tensorboard", epochs=1)
    spawn("logged_run", {"config": data, "out": str(run)}, tmp_path / "results")
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert [step for step, _ in event_scalars(run / "tensorboard")["train/losses/pos"]] == [1, 2]
    assert build_loggers(validate_config(data), run, main=False) == []


@pytest.mark.parametrize("training,field,message", [
    ({"loggers": ["tensorbord"]}, "training.loggers.0", "unknown logger 'tensorbord'; choose from tensorboard, mlflow, wandb"),
    ({"loggers": ["mlflow", "mlflow"]}, "training.loggers", "logger 'mlflow' is listed twice"),
    ({"loggers": ["tensorboard"], "logger_options": {"mlflow": {}}}, "training.logger_options.mlflow",
     "options for a logger that training.loggers does not list (it lists: tensorboard)"),
    ({"loggers": ["mlflow"], "logger_options": {"mlflow": {"uri": "x"}}}, "training.logger_options.mlflow.uri",
     "unknown field; its fields: tracking_uri, experiment, run_name"),
    ({"loggers": ["wandb"], "logger_options": {"wandb": {"mode": "online-ish"}}}, "training.logger_options.wandb.mode",
     "Input should be 'online', 'offline' or 'disabled'"),
])
def test_logger_mistakes_are_one_line_errors_before_the_run_directory_exists(tmp_path: Path, training: dict,
                                                                             field: str, message: str) -> None:
    data = tiny_config_dict()
    data["training"].update(training)
    with pytest.raises(ConfigError) as caught:
        train_run(validate_config(data), tmp_path / "run", progress=False)
    assert str(caught.value) == f"{field}: {message}"
    assert not (tmp_path / "run").exists()


def test_a_run_without_a_directory_asks_where_tensorboard_writes(tmp_path: Path) -> None:
    data = logged_config("tensorboard")
    with pytest.raises(ConfigError, match=r"training.logger_options.tensorboard.dir: a run without a directory"):
        build_loggers(validate_config(data), None)
    data["training"]["logger_options"] = {"tensorboard": {"dir": str(tmp_path / "tb")}}
    (logger,) = build_loggers(validate_config(data), None)
    assert logger.dir == tmp_path / "tb"


def test_a_missing_extra_names_it_before_anything_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(MissingDependencyError, match=r"training.loggers: mlflow needs the optional package 'mlflow': "
                                                     r"pip install 'polytask\[mlflow\]'"):
        train_run(validate_config(logged_config("mlflow")), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
