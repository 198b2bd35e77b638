"""benchmarks/gpu_check.py skips cleanly without CUDA, and its checks pass when run on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.benchmarks.test_balancing_benchmark import load


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_every_check_is_skipped_with_the_reason(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    records = load("gpu_check").main(["--out", str(out)])
    assert json.loads(out.read_text()) == records
    assert [r["check"] for r in records] == ["placement", "ranks", "precision", "minilm"]
    assert all(r["status"] == "skip" and "CUDA is not available" in r["reason"] for r in records)


def test_the_checks_pass_on_the_cpu(tmp_path: Path) -> None:
    """The same code as on a GPU with --device cpu: placement and a CPU-resumed checkpoint, bf16. (The ranks
    check spawns 2 processes, ~1 min here; tests/training/test_distributed.py checks the same on CPU.)"""
    records = load("gpu_check").main(["--device", "cpu", "--only", "placement,precision", "--steps", "2",
                                      "--out", str(tmp_path / "cpu.json")])
    assert {r["check"]: r["status"] for r in records} == {"placement": "pass", "precision": "pass"}, records
    placement = records[0]
    assert placement["problems"] == [] and placement["resumed_on_cpu_at_step"] == 3
    runs = records[1]["runs"]
    assert {"ew-exact-bf16", "upgrad-exact-bf16", "pcgrad-representation-bf16"} <= set(runs)
