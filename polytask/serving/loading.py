"""The predictor for a path: a training run directory (torch) or an ONNX export directory (torch-free)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_predictor(path: str | Path, device: str | None = None) -> Any:
    """``OnnxPredictor`` for a ``polytask export`` directory, else ``Predictor`` for a run directory, on ``device``."""
    from polytask.export.manifest import is_export_dir

    if is_export_dir(path):
        from polytask.errors import PolytaskError
        from polytask.serving.onnx_predictor import OnnxPredictor
        from polytask.training.device import AUTO, CPU

        if device not in (None, CPU, AUTO):
            raise PolytaskError("an ONNX export runs on the CPU through onnxruntime; --device does not apply")
        return OnnxPredictor.from_dir(path)
    from polytask.serving.predictor import Predictor

    return Predictor.from_run(path, device)
