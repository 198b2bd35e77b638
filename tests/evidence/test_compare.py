"""`polytask compare`: Δm, intervals and verdicts on hand-computed cases; runs end to end, resume, CLI errors."""

from __future__ import annotations

import base64
import copy
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from polytask.cli import app
from polytask.config import validate_config
from polytask.errors import PolytaskError
from polytask.evaluation.delta_m import (
    delta_m,
)
from polytask.evidence import runs as runs_module
from polytask.evidence.compare import compare
from polytask.evidence.runs import PlannedRun, method_config, single_task_config
from polytask.rendering import write_report

# --------------------------------------------------------------------------------------
# Δm, intervals, verdicts


# --------------------------------------------------------------------------------------
# Run configs and the statistics over crafted summaries


def test_single_task_and_method_configs() -> None:
    base = {"tasks": {"a": {}, "b": {}}, "heads": {"a": {"layer": 1}, "b": {"layer": 2}},
            "training": {"epochs": 4, "max_steps": 100, "epoch": {"steps": None, "task": "b"},
                         "early_stopping": {"patience": 2}},
            "balancing": {"method": "cagrad", "mode": "representation", "options": {"c": 0.4}},
            "sampling": {"tasks_per_step": 1, "method": "temperature"}}
    alone = single_task_config(base, "a")
    assert list(alone["tasks"]) == ["a"] and alone["heads"] == {"a": {"layer": 1}}
    assert alone["training"]["epoch"]["task"] is None  # it named the other task
    assert alone["training"]["epochs"] == 4 and alone["training"]["max_steps"] == 100
    assert alone["training"]["early_stopping"] == {"patience": 2}
    assert alone["balancing"] == {"method": "ew"} and "sampling" not in alone
    assert single_task_config(base, "b")["training"]["epoch"]["task"] == "b"
    assert method_config(base, "cagrad", "gradient aggregator")["balancing"] == base["balancing"]
    assert method_config(base, "pcgrad", "gradient aggregator")["balancing"] == {"method": "pcgrad", "mode": "representation"}
    assert method_config(base, "uw", "loss weighting")["balancing"] == {"method": "uw"}
    assert base["balancing"]["method"] == "cagrad"  # not modified


# --------------------------------------------------------------------------------------
# End to end on a tiny synthetic benchmark (a tagging task, accuracy ↑, and a regression task, MSE ↓)

_WORLD = {"seed": 0, "classes": 4, "words_per_class": 8, "dev_size": 30, "test_size": 30}


def tiny_compare_config() -> dict:
    return {
        "tasks": {
            "tag": {"type": "token_classification",
                    "data": {"format": "synthetic", "column": "tag",
                             "synthetic": {**_WORLD, "corpus": "tag", "size": 60}}},
            "score": {"type": "regression",
                      "data": {"format": "synthetic", "column": "score",
                               "synthetic": {**_WORLD, "corpus": "score", "size": 60}}},
        },
        "encoder": {"type": "cnn", "word_dim": 16, "chars": False, "hidden": 16, "layers": 1},
        "heads": {"score": {"pooling": "mean"}},
        "training": {"lr": 0.01, "epochs": 2, "epoch": {"steps": 4}, "batch_size": 8, "seed": 3, "log_every": 1,
                     "early_stopping": {"patience": None}},
    }


@pytest.fixture(scope="module")
def compared(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("compare") / "cmp"
    result = compare(validate_config(tiny_compare_config()), "ew,pcgrad", seeds=2, out=out, jobs=1)
    return out, result


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.sources.append(dict(attrs)["src"] or "")


def test_compare_json_structure(compared: tuple[Path, dict]) -> None:
    out, result = compared
    written = json.loads((out / "compare.json").read_text())
    assert written["methods"] == ["ew", "pcgrad"] and written["seeds"] == [3, 4]
    assert written["primary"]["tag"] == {"metric": "accuracy", "higher_is_better": True, "split": "test"}
    assert written["primary"]["score"]["metric"] == "mse" and not written["primary"]["score"]["higher_is_better"]
    for method in ("ew", "pcgrad"):
        entry = written["delta_m"][method]
        low, high = entry["ci95"]
        assert low <= entry["mean"] <= high and len(entry["per_seed"]) == 2
        assert set(written["verdicts"][method]) == {"tag", "score"}
        assert set(written["verdicts"][method].values()) <= {"positive", "neutral", "negative"}
    for task, metrics in (("tag", {"accuracy"}), ("score", {"mse", "mae", "pearson"})):
        assert set(written["tasks"][task]) == {"stl", "ew", "pcgrad"}
        for run in ("stl", "ew", "pcgrad"):
            assert set(written["tasks"][task][run]) == metrics
            assert set(written["tasks"][task][run]["accuracy" if task == "tag" else "mse"]) >= {"mean", "std"}
    assert written["delta_m"] == result["delta_m"]
    assert (out / "compare.md").read_text().startswith("# Did multi-task learning help?")


def test_delta_m_matches_the_run_summaries(compared: tuple[Path, dict]) -> None:
    out, result = compared

    def test_value(group: str, seed: int, task: str, metric: str) -> float:
        summary = json.loads((out / "runs" / group / f"seed-{seed}" / "summary.json").read_text())
        return summary["tasks"][task][metric]["test"]

    for i, seed in enumerate((3, 4)):
        multi = {"tag": test_value("ew", seed, "tag", "accuracy"), "score": test_value("ew", seed, "score", "mse")}
        single = {"tag": test_value("stl-tag", seed, "tag", "accuracy"),
                  "score": test_value("stl-score", seed, "score", "mse")}
        expected = delta_m(multi, single, {"tag": True, "score": False})
        assert result["delta_m"]["ew"]["per_seed"][i] == pytest.approx(expected)


def test_runs_are_single_task_baselines_and_methods(compared: tuple[Path, dict]) -> None:
    out, _ = compared
    assert {p.name for p in (out / "runs").iterdir()} == {"ew", "pcgrad", "stl-tag", "stl-score"}
    alone = yaml.safe_load((out / "runs" / "stl-tag" / "seed-4" / "config.yaml").read_text())
    assert list(alone["tasks"]) == ["tag"] and alone["balancing"]["method"] == "ew"
    assert alone["training"]["seed"] == 4 and alone["training"]["threads"] >= 1
    assert alone["training"]["epochs"] == 2 and alone["training"]["epoch"]["steps"] == 4
    joint = yaml.safe_load((out / "runs" / "pcgrad" / "seed-3" / "config.yaml").read_text())
    assert set(joint["tasks"]) == {"tag", "score"} and joint["balancing"]["method"] == "pcgrad"


def test_report_is_self_contained_with_plots(compared: tuple[Path, dict]) -> None:
    out, _ = compared
    parser = _Images()
    parser.feed((out / "report.html").read_text())
    assert len(parser.sources) == 4  # Δm, dev curves, task weights, gradient cosines (pcgrad logs them)
    for source in parser.sources:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1]).startswith(b"\x89PNG")
    for name in ("delta-m.png", "dev-curves.png", "task-weights.png", "gradient-cosines.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG"), name


def test_report_without_cosines_says_so(compared: tuple[Path, dict], tmp_path: Path) -> None:
    out, result = compared
    only_ew = copy.deepcopy(result)
    only_ew["methods"] = ["ew"]
    target = tmp_path / "copy"
    shutil.copytree(out, target)
    for png in target.glob("*.png"):
        png.unlink()
    write_report(target, only_ew)
    html = (target / "report.html").read_text()
    assert "No run logged gradient cosines" in html and not (target / "gradient-cosines.png").exists()
    assert (target / "task-weights.png").exists()


def test_report_command_rerenders(compared: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = compared
    target = tmp_path / "copy"
    shutil.copytree(out, target)
    (target / "report.html").unlink()
    result = CliRunner().invoke(app, ["report", str(target)])
    assert result.exit_code == 0, result.output
    assert "data:image/png;base64," in (target / "report.html").read_text()


def test_resume_skips_complete_runs_and_redoes_incomplete_ones(compared: tuple[Path, dict], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    out, _ = compared
    target = tmp_path / "resumed"
    shutil.copytree(out, target)
    interrupted = target / "runs" / "pcgrad" / "seed-4"
    (interrupted / "summary.json").unlink()
    (interrupted / "leftover.txt").write_text("from the interrupted run")
    before = {p: p.stat().st_mtime_ns for p in (target / "runs").glob("*/*/summary.json")}
    trained: list[str] = []
    real = runs_module.train_planned

    def counting(config: dict, path: str) -> dict:
        trained.append(str(Path(path).relative_to(target / "runs")))
        return real(config, path)

    monkeypatch.setattr(runs_module, "train_planned", counting)
    result = compare(validate_config(tiny_compare_config()), ["ew", "pcgrad", "uw"], seeds=2, out=target)
    assert sorted(trained) == ["pcgrad/seed-4", "uw/seed-3", "uw/seed-4"]
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in before.items())
    assert (interrupted / "summary.json").is_file() and not (interrupted / "leftover.txt").exists()
    assert set(result["delta_m"]) == {"ew", "pcgrad", "uw"}

    trained.clear()
    with pytest.raises(PolytaskError, match=r"different config \(training.epochs: 2 -> 3\)"):
        compare(validate_config(tiny_compare_config()), "ew", seeds=2, out=target, overrides=["training.epochs=3"])
    assert trained == []


def test_parallel_workers(tmp_path: Path) -> None:
    config = tiny_compare_config()
    config["training"]["epochs"] = 1
    result = compare(validate_config(config), "ew", seeds=1, out=tmp_path / "par", jobs=2, report=False)
    assert set(result["runs"]) == {"ew", "stl-tag", "stl-score"}
    assert all((tmp_path / "par" / "runs" / g / "seed-3" / "summary.json").is_file() for g in result["runs"])
    assert result["delta_m"]["ew"]["ci95"][0] == result["delta_m"]["ew"]["ci95"][1] == result["delta_m"]["ew"]["mean"]
    stored = yaml.safe_load((tmp_path / "par" / "runs" / "ew" / "seed-3" / "config.yaml").read_text())
    assert stored["training"]["threads"] == runs_module.threads_per_job(2)


# --------------------------------------------------------------------------------------
# User errors


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--methods", "ew,nope"], "unknown method(s) 'nope'"),
        (["--methods", "ew", "--seeds", "0"], "--seeds must be at least 1"),
        (["--methods", "ew", "--set", "heads.ghost.layer=1"], "--set heads.ghost.layer=1: heads.ghost: unknown task 'ghost'"),
        (["--methods", "cagrad", "--set", "balancing.options.bogus=1"], "method 'cagrad'"),
    ],
)
def test_cli_user_errors_are_one_line_exit_2(tmp_path: Path, arguments: list[str], expected: str) -> None:
    config = tmp_path / "tiny.yaml"
    data = tiny_compare_config()
    if "cagrad" in arguments:
        data["balancing"] = {"method": "cagrad"}
    config.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["compare", str(config), "--out", str(tmp_path / "out"), *arguments])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], result.output
    assert not (tmp_path / "out" / "runs").exists()


def _die(config: dict, path: str) -> dict:
    """A worker that dies the way an out-of-memory kill does: no exception, the process is gone."""
    import os

    os._exit(9)


def test_a_dead_worker_is_a_one_line_error_and_finished_runs_are_kept(tmp_path: Path) -> None:
    finished = PlannedRun("stl-tag", "stl", 1, {}, tmp_path / "runs" / "stl-tag" / "seed-1")
    finished.path.mkdir(parents=True)
    (finished.path / "summary.json").write_text(json.dumps({"tasks": {"tag": {"accuracy": {"dev": 1.0, "test": 1.0}}}, "train_seconds": 1.0}))
    (finished.path / "config.yaml").write_text(yaml.safe_dump({}))
    doomed = PlannedRun("ew", "ew", 1, {}, tmp_path / "runs" / "ew" / "seed-1")
    with pytest.raises(PolytaskError, match=r"worker process died while training ew/seed-1 .* rerun the same command"):
        runs_module.train_incomplete([finished, doomed], jobs=2, train=_die)
    assert (finished.path / "summary.json").is_file()


def test_an_interrupted_run_with_a_checkpoint_continues_exactly(compared: tuple[Path, dict], tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A run cut off after its first epoch's checkpoint is continued, not restarted, and ends as if never cut."""
    from safetensors.torch import load_file

    import polytask.training.run as run_module
    from polytask.training.callbacks import Callback
    from polytask.training.run import train_run

    class Crash(Callback):
        def before_step(self, trainer, batch) -> None:
            if trainer.step == 5:
                raise KeyboardInterrupt("cut off in epoch 2")

    out, _ = compared
    target = tmp_path / "cut"
    shutil.copytree(out, target)
    run = target / "runs" / "pcgrad" / "seed-4"
    stored = yaml.safe_load((run / "config.yaml").read_text())
    shutil.rmtree(run)
    with pytest.raises(KeyboardInterrupt):
        train_run(validate_config(stored), run, progress=False, callbacks=[Crash()])
    assert (run / "checkpoint.pt").is_file()
    resumed: list[str] = []
    real = run_module.resume_run
    monkeypatch.setattr(run_module, "resume_run", lambda path, **kw: resumed.append(str(path)) or real(path, **kw))
    result = compare(validate_config(tiny_compare_config()), ["ew", "pcgrad"], seeds=2, out=target)
    assert resumed == [str(run)]  # continued from the checkpoint, not trained again from scratch
    original, continued = load_file(str(out / "runs/pcgrad/seed-4/model.safetensors")), load_file(str(run / "model.safetensors"))
    assert all(original[k].equal(continued[k]) for k in original)
    assert result["tasks"] == compared[1]["tasks"]


# --------------------------------------------------------------------------------------
# Sharing architectures as rows


def test_architecture_configs_and_row_labels() -> None:
    base = {"tasks": {"a": {}, "b": {}}, "sharing": {"type": "branched", "groups": [["a"], ["b"]], "shared_layers": 0}}
    assert runs_module.architecture_config(base, "branched")["sharing"] == base["sharing"]  # the config's own, whole
    assert runs_module.architecture_config(base, "mmoe")["sharing"] == {"type": "mmoe"}  # another: its defaults
    assert single_task_config(base, "a")["sharing"] == {"type": "hard"}  # a single-task baseline is a plain model
    assert runs_module.row_label("mmoe", "uw") == "mmoe-uw" and runs_module.row_label(None, "uw") == "uw"
    assert runs_module.task_subset_config(base, ["b"])["sharing"]["groups"] == [["b"]]


def test_compare_puts_architectures_beside_methods_with_their_cost(tmp_path: Path) -> None:
    data = tiny_compare_config()
    data["encoder"]["layers"] = 2
    result = compare(validate_config(data), "ew", seeds=2, out=tmp_path / "cmp", architectures="hard,mmoe",
                     report=False)
    assert result["methods"] == ["hard-ew", "mmoe-ew"]
    assert set(result["delta_m"]) == set(result["verdicts"]) == {"hard-ew", "mmoe-ew"}
    costs = result["costs"]
    assert costs["hard-ew"]["architecture"] == "hard" and costs["mmoe-ew"]["architecture"] == "mmoe"
    assert costs["hard-ew"]["time_ratio_to_hard"] == 1.0 and costs["mmoe-ew"]["time_ratio_to_hard"] > 0
    assert costs["mmoe-ew"]["parameters"] > costs["hard-ew"]["parameters"] > 0
    stored = yaml.safe_load((tmp_path / "cmp" / "runs" / "mmoe-ew" / "seed-3" / "config.yaml").read_text())
    assert stored["sharing"]["type"] == "mmoe"
    markdown = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| mmoe-ew |" in markdown and "time/step ÷ hard" in markdown
    with pytest.raises(PolytaskError, match="unknown architecture.*'moe'"):
        compare(validate_config(data), "ew", seeds=1, out=tmp_path / "other", architectures="hard,moe")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    cli = CliRunner().invoke(app, ["compare", str(tmp_path / "c.yaml"), "--methods", "ew", "--architectures", "moe",
                                   "--out", str(tmp_path / "x")])
    assert cli.exit_code == 2 and "unknown architecture(s) 'moe' in --architectures" in cli.output
