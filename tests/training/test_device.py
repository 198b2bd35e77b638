"""training.device and --device: validated names, one-line errors, everything on the resolved device, and
checkpoints that load whatever device wrote them."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
import yaml

from polytask.config import validate_config
from polytask.errors import ConfigError
from polytask.training.device import load_tensors, resolve_device
from polytask.training.run import resume_run, train_run
from polytask.training.setup import build_experiment
from polytask.training.trainer import Trainer
from tests.conftest import tiny_config_dict
from tests.test_cli import polytask as run_cli


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "CUDA", "tpu", ""])
def test_unknown_device_names_are_config_errors_naming_the_field(name: str) -> None:
    data = tiny_config_dict()
    data["training"]["device"] = name
    with pytest.raises(ConfigError, match=r"training\.device: unknown device"):
        validate_config(data)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_one_line_config_error() -> None:
    for name in ("cuda", "cuda:1"):
        with pytest.raises(ConfigError, match=r"^training\.device: cuda(:1)? requested but CUDA is not available"):
            resolve_device(name)
    assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cli_device_error_is_one_line(tiny_config: Path, tmp_path: Path) -> None:
    result = run_cli("train", str(tiny_config), "--out", str(tmp_path / "run"), "--device", "cuda", "--quiet")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "training.device" in result.stderr and "CUDA is not available" in result.stderr
    assert not (tmp_path / "run").exists()


def test_model_and_method_parameters_live_on_the_device() -> None:
    data = tiny_config_dict()
    data["training"].update(device="cpu", max_steps=2)
    data["balancing"] = {"method": "uw"}
    trainer = Trainer(build_experiment(validate_config(data)), progress=False)
    assert trainer.device == torch.device("cpu")
    assert all(p.device == trainer.device for p in trainer.model.parameters())
    assert all(p.device == trainer.device for p in trainer.balancer.parameters())
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert all(id(p) in optimised for p in trainer.balancer.parameters())  # moved before the optimizer was built
    trainer.train_step(trainer.steps.build(0, 2))


def _as_if_written_on_cuda(state: dict) -> bytes:
    """``torch.save`` of ``state`` with every storage tagged as a CUDA one, as a GPU run writes it."""
    import torch.serialization as serialization

    original = serialization.location_tag
    serialization.location_tag = lambda storage: "cuda:0"
    try:
        buffer = io.BytesIO()
        torch.save(state, buffer)
    finally:
        serialization.location_tag = original
    return buffer.getvalue()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA to show the mapping matters")
def test_gpu_written_checkpoint_resumes_on_cpu(tmp_path: Path) -> None:
    data = tiny_config_dict()
    data["training"].update(epochs=2, epoch={"steps": 3}, device="cpu")
    data["balancing"] = {"method": "uw"}
    config = validate_config(data)
    reference = train_run(config, tmp_path / "reference", progress=False)

    class Stop(Exception):
        pass

    from polytask.training.callbacks import Callback

    class Crash(Callback):
        def before_step(self, trainer, batch) -> None:
            if trainer.step == 4:
                raise Stop

    with pytest.raises(Stop):
        train_run(config, tmp_path / "run", progress=False, callbacks=[Crash()])
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    state = torch.load(checkpoint, weights_only=True)
    checkpoint.write_bytes(_as_if_written_on_cuda(state))
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(checkpoint, weights_only=True)  # without a map_location this machine cannot read it
    assert load_tensors(checkpoint)["step"] == state["step"]
    resumed = resume_run(tmp_path / "run", progress=False, device="cpu")
    for summary in (reference, resumed):
        summary.pop("train_seconds")
    assert resumed == reference


def test_evaluate_and_predict_take_device(tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    data = tiny_config_dict()
    data["training"].update(epochs=1, epoch={"steps": 2})
    config.write_text(yaml.safe_dump(data))
    run = tmp_path / "run"
    assert run_cli("train", str(config), "--out", str(run), "--quiet", "--device", "cpu").returncode == 0
    result = run_cli("evaluate", str(run), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    inputs = tmp_path / "in.txt"
    inputs.write_text("the cat sat\n")
    result = run_cli("predict", str(run), "--input", str(inputs), "--device", "cpu")
    assert result.returncode == 0 and '"tasks"' in result.stdout, result.stderr
    result = run_cli("predict", str(run), "--input", str(inputs), "--device", "gpu")
    assert result.returncode == 2 and "--device: unknown device 'gpu'" in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("command", [["compare", "CONFIG", "--methods", "ew"], ["affinity", "CONFIG"],
                                     ["affinity", "CONFIG", "--measure", "pairs"],
                                     ["finetune", "RUN", "--add-task", "CONFIG"]])
def test_device_reaches_the_runs_of_compare_affinity_and_finetune(command: list[str], tiny_config: Path,
                                                                  tmp_path: Path) -> None:
    """--device becomes training.device of every run the command trains: one this machine lacks is one line."""
    from typer.testing import CliRunner

    from polytask.cli import app

    run = tmp_path / "run"
    if "RUN" in command:
        data = tiny_config_dict()
        data["training"].update(epochs=1, epoch={"steps": 1})
        train_run(validate_config(data), run, progress=False)
        (tmp_path / "task.yaml").write_text(yaml.safe_dump({"tasks": {"sentiment2": data["tasks"]["sentiment"]}}))
    paths = {"CONFIG": str(tmp_path / "task.yaml") if "RUN" in command else str(tiny_config), "RUN": str(run)}
    args = [paths.get(word, word) for word in command] + ["--out", str(tmp_path / "out"), "--device", "cuda"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "training.device: cuda requested but CUDA is not available" in lines[0], lines
    assert not (tmp_path / "out").exists()
