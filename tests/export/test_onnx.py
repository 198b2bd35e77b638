"""ONNX export parity: the exported graph and the torch-free runtime give the torch run's outputs.

The torch side runs here; the ONNX side runs in subprocesses where importing torch fails
(``sitecustomize`` blocks it), as on a machine without torch. Logits agree within 1e-4 and the
decoded records are identical (probabilities and regression values within 1e-4).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from polytask.config import validate_config
from polytask.data.example import Example
from polytask.data.tokenize import simple_tokenize
from polytask.export.onnx_export import export_run
from polytask.serving.predictor import Predictor
from polytask.training.run import train_run
from polytask.training.run_dir import load_run
from tests.conftest import FIXTURES, tiny_config_dict

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (polytask[onnx])")
pytest.importorskip("onnxscript", reason="onnxscript is not installed (polytask[export])")

SENTENCES = ["Prices rose sharply in early trading .", "He left .", "A wonderful , moving film .",
             "Zyxqv unseenword frobnicated the Glorp !", "Rates", "The U.S. team won 3-1 on Sunday and then "
             "the fans sang all night long in the old square"]
BLOCK_TORCH = textwrap.dedent("""
    import importlib.abc, sys
    class _NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is not installed here (blocked by the test)")
            return None
    sys.meta_path.insert(0, _NoTorch())
""")


def five_task_config(encoder: str) -> dict:
    """POS, chunking (iob2 spans), polarity, a multi-label and a regression task: every decoder (and, per encoder,
    a CRF, constrained decoding and word-shape features)."""
    data = tiny_config_dict()
    jsonl = str(FIXTURES / "tiny.jsonl")
    source = {"format": "jsonl", "train": jsonl, "dev": jsonl, "test": jsonl}
    data["tasks"]["tags"] = {"type": "multilabel", "data": {**source, "column": "tags"}}
    data["tasks"]["score"] = {"type": "regression", "data": {**source, "column": "score"}}
    if encoder == "bilstm":  # a CRF on chunking: Viterbi under its learned, scheme-constrained transitions
        data["heads"]["chunk"] = {"decoder": "crf"}
    if encoder == "cnn":  # constrained softmax decoding, word-shape and affix features (two more input tensors)
        data["encoder"] = {"type": "cnn", "word_dim": 16, "char_dim": 8, "char_filters": 8, "hidden": 16, "layers": 2,
                           "case_features": True, "affix_features": True}
        data["heads"]["chunk"] = {"constrained": True}
    if encoder == "transformer":  # a tiny BERT with 16-piece windows: long inputs run in several windows
        data["encoder"] = {"type": "transformer", "model": str(tiny_bert()), "max_length": 16, "case_features": True}
        data["heads"] = {"pos": {"layer": "mix"}}
    data["training"]["epochs"] = 2
    return data


_TINY_BERT: list[Path] = []


def tiny_bert() -> Path:
    """One tiny local BERT folder for the module (MiniLM's tokenizer, random weights)."""
    if not _TINY_BERT:
        import tempfile

        from tests.models.tiny_transformer import make_tiny_bert

        _TINY_BERT.append(make_tiny_bert(Path(tempfile.mkdtemp(prefix="tiny-bert-"))))
    return _TINY_BERT[0]


@pytest.fixture(scope="module", params=["bilstm", "cnn", "transformer"])
def exported(request, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp(f"onnx-{request.param}")
    train_run(validate_config(five_task_config(request.param)), root / "run", progress=False)
    export_run(root / "run", root / "export")
    return root / "run", root / "export"


def torch_free(tmp_path: Path) -> dict[str, str]:
    """The environment of a subprocess in which ``import torch`` fails."""
    (tmp_path / "sitecustomize.py").write_text(BLOCK_TORCH)
    root = Path(__file__).resolve().parents[2]
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)])}


def examples() -> list[Example]:
    return [Example(tokens=simple_tokenize(s), text=s) for s in SENTENCES]


def test_the_runtime_really_runs_without_torch(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", "import torch"], env=torch_free(tmp_path), capture_output=True,
                            text=True)
    assert result.returncode != 0 and "blocked by the test" in result.stderr


def test_logits_match_torch_within_1e_4(exported, tmp_path: Path) -> None:
    assert_logits_match(*exported, tmp_path)


def test_a_batch_larger_than_an_encoder_chunk_matches_torch(exported, tmp_path: Path) -> None:
    """The torch encoders run 45 sentences in length-sorted chunks (``encoder.chunk_rows``); the graph was traced
    on 3 (one call): the same logits, so the traced one-call path holds for any batch size."""
    assert_logits_match(*exported, tmp_path, [examples()[i % len(SENTENCES)].tokens for i in range(45)])


def test_a_shared_lora_adapter_is_merged_into_the_export(tmp_path: Path) -> None:
    data = tiny_config_dict()
    data["encoder"] = {"type": "transformer", "model": str(tiny_bert()), "max_length": 16,
                       "adapters": {"r": 4, "alpha": 8.0}}
    data["heads"] = {}
    data["training"].update({"epochs": 2, "lr": 0.01})
    train_run(validate_config(data), tmp_path / "run", progress=False)
    trained = load_run(tmp_path / "run").model.encoder.model
    assert any("lora_B" in name and bool(weight.abs().sum() > 0) for name, weight in trained.named_parameters()), \
        "the adapter did not move from its zero start: the test would not see a missing merge"
    export_run(tmp_path / "run", tmp_path / "export")
    assert_logits_match(tmp_path / "run", tmp_path / "export", tmp_path)
    assert any("lora" in name for name, _ in load_run(tmp_path / "run").model.named_parameters())  # the run is untouched


def test_per_task_lora_adapters_are_refused_in_one_line(tmp_path: Path) -> None:
    from polytask.errors import PolytaskError

    data = tiny_config_dict()
    data["encoder"] = {"type": "transformer", "model": str(tiny_bert()), "max_length": 16,
                       "adapters": {"r": 2, "per_task": True}}
    data["heads"], data["training"]["epochs"] = {}, 1
    train_run(validate_config(data), tmp_path / "run", progress=False)
    with pytest.raises(PolytaskError, match="per-task LoRA adapters is not supported yet"):
        export_run(tmp_path / "run", tmp_path / "export")
    assert not (tmp_path / "export").exists()


def assert_logits_match(run: Path, export: Path, tmp_path: Path, tokens: list[list[str]] | None = None) -> None:
    """The export's logits for ``tokens`` (default: ``SENTENCES``), computed in a subprocess without torch, equal
    the torch model's within 1e-4."""
    experiment = load_run(run)
    featurizer = experiment.model.encoder.featurizer
    tokens = tokens or [e.tokens for e in examples()]
    with torch.no_grad():
        reference = experiment.model(featurizer(tokens), list(experiment.tasks)).logits
    script = textwrap.dedent(f"""
        import json, sys, numpy as np
        from polytask.serving.onnx_predictor import OnnxPredictor
        predictor = OnnxPredictor.from_dir({str(export)!r})
        features = predictor.featurize(json.loads(sys.argv[1]))
        outputs = predictor.session.run(predictor.manifest["outputs"], {{n: features[n] for n in predictor.inputs}})
        np.savez({str(tmp_path / "logits.npz")!r}, mask=features["mask"],
                 **dict(zip(predictor.manifest["outputs"], outputs)))
    """)
    result = subprocess.run([sys.executable, "-c", script, json.dumps(tokens)], env=torch_free(tmp_path),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    onnx = np.load(tmp_path / "logits.npz")
    mask = onnx["mask"]
    for task, logits in reference.items():
        expected = logits.numpy()
        assert onnx[task].shape == expected.shape
        difference = np.abs(onnx[task] - expected)
        worst = difference[mask].max() if expected.ndim == 3 else difference.max()
        assert worst < 1e-4, f"{task}: {worst}"


def compare_records(onnx: list[dict], reference: list[dict]) -> None:
    assert len(onnx) == len(reference)
    for got, want in zip(onnx, reference):
        assert got["tokens"] == want["tokens"] and got.get("text") == want.get("text")
        assert got["tasks"].keys() == want["tasks"].keys()
        for task, entry in want["tasks"].items():
            mine = got["tasks"][task]
            assert mine.keys() == entry.keys()
            if isinstance(entry.get("label"), float):
                assert mine["label"] == pytest.approx(entry["label"], abs=1e-4)
            else:
                assert mine.get("label") == entry.get("label") and mine.get("labels") == entry.get("labels")
                assert mine.get("spans") == entry.get("spans")
            for name, p in entry.get("probabilities", {}).items():
                assert mine["probabilities"][name] == pytest.approx(p, abs=1e-4)


def test_polytask_predict_on_the_export_gives_the_torch_records_without_torch(exported, tmp_path: Path) -> None:
    run, export = exported
    inputs = tmp_path / "inputs.txt"
    inputs.write_text("\n".join(SENTENCES) + "\n")
    result = subprocess.run([sys.executable, "-m", "polytask.cli", "predict", str(export), "--input", str(inputs)],
                            env=torch_free(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    onnx = [json.loads(line) for line in result.stdout.splitlines()]
    compare_records(onnx, Predictor.from_run(run).predict(examples()))
    assert set(onnx[0]["tasks"]) == {"pos", "chunk", "sentiment", "tags", "score"}


def test_the_onnx_predictor_takes_raw_inputs_like_the_torch_one(exported) -> None:
    from polytask.errors import DataError
    from polytask.serving.onnx_predictor import OnnxPredictor

    run, export = exported
    onnx, reference = OnnxPredictor.from_dir(export), Predictor.from_run(run)
    compare_records([onnx.predict(SENTENCES[0])], [reference.predict(SENTENCES[0])])  # one text: one record
    compare_records(onnx.predict(SENTENCES), reference.predict(examples()))
    tokens = [e.tokens for e in examples()]
    compare_records(onnx.predict(tokens), reference.predict(tokens))
    with pytest.raises(DataError, match="sentence pair"):
        onnx.predict(("A premise .", "A hypothesis ."))


def test_polytask_serve_on_the_export_answers_without_torch(exported, tmp_path: Path) -> None:
    httpx = pytest.importorskip("httpx")
    import socket
    import time

    run, export = exported
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "polytask.cli", "serve", str(export), "--port", str(port)],
                               env=torch_free(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stderr.read()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the torch-free server did not start"
            time.sleep(0.2)
        body = {"inputs": [{"text": s} for s in SENTENCES]}
        answer = httpx.post(f"http://127.0.0.1:{port}/predict", json=body, timeout=30).json()["predictions"]
        compare_records(answer, Predictor.from_run(run).predict(examples()))
        tasks = httpx.get(f"http://127.0.0.1:{port}/tasks").json()
        assert tasks["chunk"]["level"] == "token" and "NN" in tasks["pos"]["labels"] and "mean" in tasks["score"]
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_export_refuses_to_overwrite_and_broken_exports_are_one_line_errors(exported, tmp_path: Path) -> None:
    from polytask.errors import PolytaskError
    from polytask.serving.onnx_predictor import OnnxPredictor

    run, export = exported
    with pytest.raises(PolytaskError, match="not empty"):
        export_run(run, export)
    import shutil

    broken = shutil.copytree(export, tmp_path / "broken")
    (broken / "model.onnx").write_bytes((export / "model.onnx").read_bytes()[:200])  # truncated
    with pytest.raises(PolytaskError, match="model.onnx: not a loadable ONNX model"):
        OnnxPredictor.from_dir(broken)
    if (export / "tokenizer.json").is_file():
        (broken / "model.onnx").write_bytes((export / "model.onnx").read_bytes())
        (broken / "tokenizer.json").write_text("{}")
        with pytest.raises(PolytaskError, match="tokenizer.json: not a readable tokenizer"):
            OnnxPredictor.from_dir(broken)
    (broken / "manifest.json").write_text("{not json")
    with pytest.raises(PolytaskError, match="manifest.json: not valid JSON"):
        OnnxPredictor.from_dir(broken)
    result = subprocess.run([sys.executable, "-m", "polytask.cli", "export", str(run), "--out", str(export)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
