"""benchmarks/distributed.py runs and writes its records (no timing is asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.benchmarks.test_balancing_benchmark import load


def test_distributed_benchmark_writes_rates_and_bytes(tmp_path: Path) -> None:
    out = tmp_path / "distributed.json"
    load("distributed").main(["--data", "fixtures", "--steps", "1", "--warmup", "1", "--batch-size", "4",
                              "--processes", "2", "--settings", "upgrad:exact", "--out", str(out)])
    (record,) = json.loads(out.read_text())
    assert record["method"] == "upgrad" and record["mode"] == "exact" and record["processes"] == 2
    assert record["examples_per_s"] > 0
    # 2 tasks' gradients of the shared encoder: more than DDP's one average of every fp32 gradient
    assert record["bytes_per_step"] > 1.5 * 4 * record["parameters"]
