"""benchmarks/distributed.py runs and writes its records (no timing is asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_benchmarks import load


def test_distributed_benchmark_writes_rates_and_bytes(tmp_path: Path) -> None:
    out = tmp_path / "distributed.json"
    load("distributed").main(["--data", "fixtures", "--steps", "1", "--warmup", "1", "--batch-size", "4",
                              "--processes", "2", "--settings", "ew:exact,upgrad:exact", "--out", str(out)])
    records = {r["method"]: r for r in json.loads(out.read_text())}
    assert set(records) == {"ew", "upgrad"}
    for r in records.values():
        assert r["processes"] == 2 and r["examples_per_s"] > 0
    ew, upgrad = records["ew"], records["upgrad"]
    assert ew["bytes_per_step"] >= 4 * ew["parameters"]  # DDP's average of every fp32 gradient
    assert upgrad["bytes_per_step"] > 1.5 * ew["bytes_per_step"]  # a gradient per task on the shared parameters
