"""Data parallelism: N gloo processes give the update of one process on the union batch, for every method;
accumulation equals the larger batch; rank 0 alone writes; a 2-process run resumes bit for bit; torchrun."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from polytask.config import load_config, validate_config
from polytask.training.run import train_run
from tests.training.ddp_cases import case_config, case_name, cases, reference_case, spawn, torchrun, train_case
from tests.training.test_resume import assert_same_run, records

TOLERANCE = 1e-5


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> tuple[list[dict], dict]:
    """Every case on 2 gloo ranks, and (meanwhile, in this process) on 1 process on the union batch."""
    return spawn("cases", cases(), tmp_path_factory.mktemp("ddp"),
                 meanwhile=lambda: {case_name(case): train_case(reference_case(case)) for case in cases()})


def test_every_method_on_two_processes_equals_one_process_on_the_union_batch(two_processes) -> None:
    """ew … graddrop in exact, representation and every-k modes; sampled task subsets, partial labels, 5/4 examples."""
    ranks, references = two_processes
    differences = {name: max(max_difference(rank[name], reference) for rank in ranks)
                   for name, reference in references.items()}
    assert differences.keys() == {case_name(case) for case in cases()}
    assert all(d <= TOLERANCE for d in differences.values()), {k: d for k, d in differences.items() if d > TOLERANCE}
    first = cases()[0]  # the comparison can fail: twice the batch moves the parameters
    assert max_difference(references[case_name(first)], train_case({**first, "scale": 2})) > 1e-3


@pytest.mark.parametrize("case", [{"method": "ew"}, {"method": "famo", "sampled": True}, {"method": "gradnorm"},
                                  {"method": "upgrad", "mode": "representation", "sampled": True},
                                  {"method": "nash_mtl", "mode": "exact", "update_every": 3},
                                  {"method": "graddrop", "mode": "exact"}, {"method": "graddrop", "mode": "representation"}],
                         ids=case_name)
def test_accumulating_two_micro_batches_equals_the_doubled_batch(case: dict) -> None:
    accumulated = train_case({**case, "accumulate": 2})
    assert max_difference(accumulated, train_case({**case, "scale": 2})) <= TOLERANCE


def run_config(**training) -> dict:
    data = case_config("uw", sampled=True)
    data["training"].update({"max_steps": None, "epochs": 2, "epoch": {"steps": 4}, "checkpoint_every": 3,
                             "log_every": 1, **training})
    return data


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory) -> Path:
    """The 2-process runs (``ddp_cases.job_runs``) and, meanwhile, ``single``: the same run in this process."""
    root = tmp_path_factory.mktemp("ddp-runs")
    spawn("runs", {"config": run_config(), "root": str(root)}, root / "results",
          meanwhile=lambda: train_run(validate_config(run_config()), root / "single", progress=False))
    return root


def test_two_process_run_resumes_bit_for_bit(two_process_runs: Path) -> None:
    assert_same_run(two_process_runs / "straight", two_process_runs / "cut")


def test_a_two_process_run_resumes_in_one_process(two_process_runs: Path) -> None:
    """Another world size continues the run: the same updates up to summation order, not bit for bit."""
    from polytask.training.run import resume_run

    run = two_process_runs / "cut-for-one"
    assert (run / "checkpoint.pt").is_file()
    resume_run(run, progress=False)
    weights = [load_file(str(r / "model.safetensors")) for r in (two_process_runs / "straight", run)]
    assert max_difference(*weights) <= TOLERANCE
    assert [r["step"] for r in records(run) if r["kind"] == "step"] == list(range(1, 9))


def test_only_rank_zero_writes_and_evaluation_is_sharded_exactly(two_process_runs: Path) -> None:
    run = two_process_runs / "straight"
    steps = [r["step"] for r in records(run) if r["kind"] == "step"]
    assert steps == list(range(1, 9))  # every step logged once: one writer
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "labels.json", "metrics.jsonl",
                                                     "model.safetensors", "summary.json", "vocab.json"]
    single = two_process_runs / "single"
    two, one = (json.loads((r / "summary.json").read_text()) for r in (run, single))
    assert two["tasks"] == one["tasks"] and two["examples_seen"] == one["examples_seen"]
    weights = [load_file(str(r / "model.safetensors")) for r in (run, single)]
    assert max_difference(*weights) <= TOLERANCE


@pytest.fixture(scope="module")
def torchrun_config(tmp_path_factory) -> Path:
    config = tmp_path_factory.mktemp("torchrun") / "config.yaml"
    data = run_config()
    data["balancing"] = {"method": "upgrad"}
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


@pytest.fixture(scope="module")
def torchrun_run(torchrun_config: Path) -> Path:
    run = torchrun_config.parent / "run"
    result = torchrun("-m", "polytask", "train", str(torchrun_config), "--out", str(run), "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("run saved in") == 2  # each rank finishes; rank 0 alone wrote the run
    return run


def test_torchrun_trains_with_python_m_polytask(torchrun_config: Path, torchrun_run: Path, tmp_path: Path) -> None:
    single = tmp_path / "single"
    train_run(load_config(torchrun_config), single, progress=False)
    two, one = (json.loads((r / "summary.json").read_text()) for r in (torchrun_run, single))
    assert two["tasks"] == one["tasks"]
    weights = [load_file(str(r / "model.safetensors")) for r in (torchrun_run, single)]
    assert max_difference(*weights) <= TOLERANCE


def test_a_killed_rank_restarts_from_the_checkpoint_and_finishes_the_same(torchrun_config: Path, torchrun_run: Path,
                                                                          tmp_path: Path) -> None:
    run = tmp_path / "run"
    script = str(Path(__file__).parent / "sigkill_rank.py")
    result = torchrun(script, "train", str(torchrun_config), "--out", str(run), "--quiet", restarts=1)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SIGKILL" in result.stderr or "Signals.SIGKILL" in result.stderr or "exitcode: -9" in result.stderr, \
        result.stderr[-2000:]
    assert_same_run(torchrun_run, run)


def test_shards_of_a_step_cover_it_once() -> None:
    """Ranks × micro-batches partition the step's examples; the task set is the step's on every rank."""
    from polytask.config import validate_config as validate
    from polytask.training.distributed import DataParallel
    from polytask.training.setup import build_experiment

    experiment = build_experiment(validate(case_config("ew", sampled=True)))
    examples = list({id(e): e for e in experiment.corpus.examples("train")}.values())  # 6 distinct
    featurizer = experiment.model.encoder.featurizer
    shards = [DataParallel(rank, 2).step_batches(["pos", "sentiment"], examples, featurizer, experiment.tasks, 2)
              for rank in range(2)]
    seen = [id(e) for step in shards for batch in step.micro for e in batch.examples]
    assert sorted(seen) == sorted(id(e) for e in examples) and len(set(seen)) == len(examples) == 6
    assert [len(b.examples) for step in shards for b in step.micro] == [2, 1, 2, 1]
    assert all(step.present == shards[0].present for step in shards)
    with pytest.raises(Exception, match="training.batch_size"):
        DataParallel(0, 8).step_batches(["pos"], examples, featurizer, experiment.tasks, 2)
