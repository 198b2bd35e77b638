"""``polytask export RUN --format onnx --out DIR``: a trained run as one ONNX graph plus its decoding manifest.

Why: one model answering every task is cheapest in production when it needs neither PyTorch
nor the training code. The graph maps the featurizer's tensors (dynamic batch and length
axes) to every head's logits, in one encoder pass; the manifest holds what the torch-free
runtime needs to featurize inputs and decode the logits exactly as ``polytask predict`` does.
Exported with ``torch.onnx.export(dynamo=True)`` (torch.export + onnxscript); an encoder may
supply a traceable twin of its forward (``Encoder.export_module``), as the BiLSTM does for its
packed sequences.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any

from polytask.dependencies import require
from polytask.errors import PolytaskError
from polytask.export.manifest import FORMAT, MANIFEST_FILE, MODEL_FILE, VERSION

FORMATS = ("onnx",)
OPSET = 18
# Tracing sentences: every dynamic axis at least 2 long (torch.export specialises sizes 0 and 1), and one
# sentence long enough that a transformer cuts it into several windows (so windows and sentences differ).
_TRACE_SENTENCES = [["Alpha", "beta", "gamma"], ["Delta", "epsilon"], [f"word{i}" for i in range(600)]]


def export_run(run: str | Path, out: str | Path, *, format: str = "onnx", overwrite: bool = False) -> Path:
    """Export the trained run in ``run`` to ``out`` (``model.onnx`` and ``manifest.json``); return ``out``.

    The export runs in a fresh Python process: ``torch.export`` keeps state between exports in one
    process (a second export there was seen to fix the length axis to the tracing length).
    """
    import os
    import subprocess
    import sys

    if format not in FORMATS:
        raise PolytaskError(f"unknown export format {format!r}; choose {', '.join(FORMATS)}")
    require("onnx", "polytask export", "export")
    require("onnxscript", "polytask export", "export")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise PolytaskError(f"{out} exists and is not empty; choose another --out or pass --overwrite")
    _refuse_pair_tasks(Path(run))
    source = str(Path(__file__).resolve().parents[2])  # the polytask this process imported
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-m", "polytask.export.onnx_export", str(run), str(out)], env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        raise PolytaskError(lines[-1].removeprefix("error: ") if lines else f"ONNX export of {run} failed")
    return out


def _refuse_pair_tasks(run: Path) -> None:
    """Sentence-pair tasks are not exported yet: a one-line error before any work (read from the run's config)."""
    from polytask.config import read_yaml, validate_config

    file = run / "config.yaml"
    if not file.is_file():
        return  # the export itself names what is missing
    config = validate_config(read_yaml(file, "run config"), file=str(file), check_files=False)
    pairs = [name for name, task in config.tasks.items() if task.reads_pairs]
    if pairs:
        raise PolytaskError(f"ONNX export of sentence-pair tasks ({', '.join(pairs)}) is not supported yet; "
                            f"predict and serve the run directory {run} itself")


def _export(run: str | Path, out: Path) -> None:
    """The export itself (see ``export_run``), in this process."""
    import torch

    from polytask._version import __version__
    from polytask.training.run_dir import load_run, write_json

    experiment = load_run(run)
    model, tasks = experiment.model.eval(), experiment.tasks
    if not model.sharing.exportable:
        raise PolytaskError(f"ONNX export of a model with sharing type {experiment.config.sharing.type!r} is not "
                            "supported yet (hard sharing is)")
    featurizer = model.encoder.featurizer
    names = list(tasks)
    graph = _ExportedModel(model, names, [])  # refuses an encoder it cannot trace before anything is written
    out.mkdir(parents=True, exist_ok=True)
    spec = featurizer.export_spec(out)  # the runtime featurizer's kind and settings; refuses what it cannot run
    sample = featurizer(_TRACE_SENTENCES)
    inputs = list(sample)
    graph.inputs = inputs
    dims = _dynamic_shapes(featurizer.export_axes(sample))
    target = out / MODEL_FILE
    try:
        with torch.no_grad(), _quiet():
            program = torch.onnx.export(graph, tuple(sample[n] for n in inputs), dynamo=True, opset_version=OPSET,
                                        input_names=inputs, output_names=names,
                                        dynamic_shapes={"tensors": tuple(dims[n] for n in inputs)},
                                        verbose=False)
        program.save(str(target))
    except Exception as error:  # an exporter failure is a report, not a traceback
        target.unlink(missing_ok=True)
        raise PolytaskError(f"ONNX export of {run} failed: {type(error).__name__}: {str(error).splitlines()[0]}") from None
    _name_output_axes(target, {t: tasks[t].level for t in names})
    manifest: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "polytask": __version__, "opset": OPSET,
        "run": str(run), "inputs": inputs, "outputs": names, "featurizer": spec,
        "tasks": {name: task_spec(task) for name, task in tasks.items()},
    }
    write_json(out / MANIFEST_FILE, manifest)


@contextlib.contextmanager
def _quiet():
    """The exporter's progress lines and its torchvision notices are not the user's business."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def task_spec(task: Any) -> dict[str, Any]:
    """What decoding a task's logits needs: its type, level, label space and decoding options."""
    spec = {"type": task.type_name, "level": task.level, **task.labels_to_json()}
    for option in ("scheme", "threshold"):
        value = getattr(task, option, None)
        if value is not None:
            spec[option] = value
    decoder = getattr(task, "decoder", None)  # token tasks: argmax, constrained Viterbi or a CRF's
    if decoder is not None:
        spec["decoder"] = decoder.export_spec()
    return spec


class _ExportedModel:
    """Built lazily as an ``nn.Module`` subclass (torch imported only here)."""

    def __new__(cls, model: Any, tasks: list[str], inputs: list[str]):
        from torch import nn

        class ExportedModel(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.encoder = model.encoder.export_module()
                self.model = model
                self.inputs = list(inputs)

            def forward(self, *tensors):
                encoded = self.encoder(**dict(zip(self.inputs, tensors)))
                logits = self.model.decode(encoded, tasks).logits
                return tuple(logits[t] for t in tasks)

        return ExportedModel().eval()


def _dynamic_shapes(axes: dict[str, dict[int, str]]) -> dict[str, dict[int, Any]]:
    """``torch.export`` dimensions from the featurizer's axis names (one ``Dim`` per name, shared across inputs)."""
    from torch.export import Dim

    dims: dict[str, Any] = {}
    return {name: {axis: dims.setdefault(label, Dim(label)) for axis, label in named.items()}
            for name, named in axes.items()}


def _name_output_axes(path: Path, levels: dict[str, str]) -> None:
    """Give the outputs symbolic batch (and words) axes: the exporter may record the tracing sizes."""
    import onnx

    model = onnx.load(str(path))
    for output in model.graph.output:
        dims = output.type.tensor_type.shape.dim
        names = ["batch", "words"] if levels.get(output.name) == "token" else ["batch"]
        for dim, name in zip(dims, names):
            dim.ClearField("dim_value")
            dim.dim_param = name
    onnx.save(model, str(path))


if __name__ == "__main__":  # export_run's worker process: python -m polytask.export.onnx_export RUN OUT
    import sys

    try:
        _export(sys.argv[1], Path(sys.argv[2]))
    except PolytaskError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
