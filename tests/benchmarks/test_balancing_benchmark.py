"""The benchmark scripts run and write the records their READMEs promise (no timing is asserted)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from tests.conftest import FIXTURES

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def test_balancing_overhead_writes_one_record_per_row(tmp_path: Path) -> None:
    out = tmp_path / "overhead.json"
    load("balancing_overhead").main(["--workloads", "mlp", "--methods", "upgrad,graddrop", "--steps", "1",
                                     "--rounds", "1", "--threads", "1", "--out", str(out)])
    records = json.loads(out.read_text())
    measured = [r for r in records if r["median_ms"] is not None]
    rows = {(r["library"], r["method"], r["mode"]) for r in measured}
    for mode in ("exact", "representation", "subset", "every-10"):
        assert ("polytask", "upgrad", mode) in rows
    assert {("polytask", "ew", "exact"), ("polytask", "graddrop", "exact"), ("polytask", "graddrop", "representation"),
            ("reference", "t_backward_passes", "exact")} <= rows
    for r in measured:
        assert {"workload", "method", "library", "mode", "median_ms", "ratio_to_ew", "peak_mb"} <= set(r)
        assert r["workload"] == "mlp" and r["median_ms"] > 0 and r["peak_mb"] > 0
    ew = next(r for r in measured if (r["library"], r["method"]) == ("polytask", "ew"))
    assert ew["ratio_to_ew"] == 1.0
    # methods that cannot run in a mode are reported, not dropped
    assert any(r["method"] == "graddrop" and r["mode"] == "subset" and r["median_ms"] is None for r in records)


def test_decoders_benchmark_writes_each_decoder_per_seed(tmp_path: Path) -> None:
    conll = str(FIXTURES / "conll2000_tiny.txt")
    out = tmp_path / "decoders.json"
    load("decoders").main(["--train", conll, "--test", conll, "--max-train", "20", "--epochs", "1", "--seeds", "1",
                           "--dev", "0.5", "--out", str(out)])
    records = json.loads(out.read_text())
    assert [r["decoder"] for r in records] == ["softmax", "softmax+constrained", "crf"]
    assert records[1]["ill_formed_test_sentences"] == records[2]["ill_formed_test_sentences"] == 0
    assert all(0 <= r["test_f1"] <= 100 and r["seed"] == 1 for r in records)


def test_architectures_benchmark_writes_one_record_per_architecture(tmp_path: Path) -> None:
    out = tmp_path / "architectures.json"
    load("architectures").main(["--architectures", "mmoe,soft", "--steps", "1", "--rounds", "1", "--threads", "1",
                                "--encoder", "cnn", "--out", str(out)])
    records = {r["architecture"]: r for r in json.loads(out.read_text())}
    assert list(records) == ["hard", "mmoe", "soft"]  # hard sharing is always measured: the reference
    assert records["hard"]["time_ratio_to_hard"] == 1.0 and records["hard"]["parameter_ratio_to_hard"] == 1.0
    for record in records.values():
        assert record["median_ms"] > 0 and record["peak_mb"] > 0 and record["parameters"] > 0
    assert records["soft"]["parameter_ratio_to_hard"] > 2.5 and records["soft"]["shared_parameters"] == 0  # 3 encoders
    assert records["mmoe"]["parameters"] > records["hard"]["parameters"]
