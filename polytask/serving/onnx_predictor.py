"""Predicting from an export directory with onnxruntime and numpy only: no torch, no training code.

Why: a deployed multi-task model should need neither PyTorch nor polytask's training stack.
``OnnxPredictor`` featurizes inputs as the trained featurizer did (``FEATURIZERS``, keyed by
the manifest's ``featurizer.kind``), runs the graph once per batch for every task, and decodes
each task's logits as its task type does (``DECODERS``, keyed by task type), so its records
equal ``Predictor``'s: the same labels and spans, probabilities within float rounding.
This module must not import torch (a test runs it where importing torch fails).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from polytask.data.word_arrays import shape_id_array
from polytask.dependencies import require
from polytask.export.manifest import MODEL_FILE, read_manifest


class WordFeatures:
    """Word, character, shape and affix ids from the exported vocabularies (``WordFeaturizer`` without torch)."""

    def __init__(self, spec: dict[str, Any]):
        self.lowercase, self.use_chars = bool(spec["lowercase"]), bool(spec["chars"])
        self.words = {word: i for i, word in enumerate(spec["words"])}
        self.chars = {char: i for i, char in enumerate(spec["char_vocab"])}
        self.max_word_chars = int(spec["max_word_chars"])
        self.case_features = bool(spec.get("case_features", False))
        self.affix_features = bool(spec.get("affix_features", False))
        if self.affix_features:
            self.prefixes = {affix: i for i, affix in enumerate(spec["prefixes"])}
            self.suffixes = {affix: i for i, affix in enumerate(spec["suffixes"])}

    def __call__(self, sentences: Sequence[Sequence[str]]) -> dict[str, Any]:
        from polytask.data.word_arrays import affix_id_array, char_id_array, padding_mask, shape_id_array, word_id_array

        mask = padding_mask(sentences)
        inputs = {"word_ids": word_id_array(sentences, self.words, self.lowercase, mask), "mask": mask}
        if self.use_chars:
            inputs["char_ids"] = char_id_array(sentences, self.chars, self.max_word_chars, mask)
        if self.case_features:
            inputs["shape_ids"] = shape_id_array(sentences, mask.shape[1])
        if self.affix_features:
            inputs["affix_ids"] = affix_id_array(sentences, self.prefixes, self.suffixes, mask)
        return inputs


class SubwordFeatures:
    """Sub-word windows and word spans from the exported fast tokenizer (``TransformerFeaturizer`` without torch)."""

    def __init__(self, spec: dict[str, Any], directory: Path):
        from polytask.errors import PolytaskError

        tokenizers = require("tokenizers", "predicting from an ONNX export of a transformer", "onnx")
        file = directory / spec["tokenizer"]
        try:
            self.tokenizer = tokenizers.Tokenizer.from_file(str(file))
        except Exception as error:  # missing, truncated or not a tokenizer
            raise PolytaskError(f"{file}: not a readable tokenizer ({str(error).splitlines()[0]})") from None
        self.tokenizer.no_truncation()  # the windows cut long inputs, as in training
        self.tokenizer.no_padding()
        self.prefix, self.suffix = list(spec["prefix"]), list(spec["suffix"])
        self.pad, self.placeholder = int(spec["pad"]), int(spec["placeholder"])
        self.capacity, self.stride = int(spec["capacity"]), int(spec["stride"])
        self.case_features = bool(spec.get("case_features", False))

    def __call__(self, sentences: Sequence[Sequence[str]]) -> dict[str, Any]:
        from polytask.data.pieces import group_pieces, window_arrays

        pieces = []
        for sentence in sentences:
            encoding = self.tokenizer.encode(list(sentence), is_pretokenized=True, add_special_tokens=False)
            pieces.append(group_pieces(encoding.ids, encoding.word_ids, len(sentence), self.placeholder))
        features = window_arrays(pieces, self.prefix, self.suffix, self.pad, self.capacity, self.stride)
        if self.case_features:
            features["shape_ids"] = shape_id_array(sentences, features["mask"].shape[1])
        return features


FEATURIZERS: dict[str, Callable[[dict[str, Any], Path], Callable[[Sequence[Sequence[str]]], dict[str, Any]]]] = {
    "words": lambda spec, directory: WordFeatures(spec),
    "subwords": SubwordFeatures,
}
"""Featurizer kind (``Featurizer.export_spec``) -> the torch-free featurizer built from its spec and files."""


def _softmax(logits: Any) -> Any:
    import numpy as np

    values = logits.astype(np.float32)
    values = np.exp(values - values.max(axis=-1, keepdims=True))
    return values / values.sum(axis=-1, keepdims=True)


def _sigmoid(logits: Any) -> Any:
    import numpy as np

    return 1.0 / (1.0 + np.exp(-logits.astype(np.float32)))


def _log_softmax(logits: Any) -> Any:
    import numpy as np

    values = logits.astype(np.float32)
    shifted = values - values.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def viterbi(emissions: Any, transitions: Any, start: Any, end: Any) -> list[int]:
    """argmax over tag paths of start + Σ emissions + Σ transitions + end, for one sentence ``[T, C]`` (Viterbi 1967)."""
    import numpy as np

    score = start + emissions[0]
    pointers = []
    for t in range(1, len(emissions)):
        candidates = score[:, None] + transitions  # [previous, current]
        best = candidates.argmax(axis=0)
        score = candidates[best, np.arange(len(best))] + emissions[t]
        pointers.append(best)
    last = int((score + end).argmax())
    path = [last]
    for best in reversed(pointers):
        last = int(best[last])
        path.append(last)
    return path[::-1]


CHAIN_KINDS = {"argmax", "viterbi"}


def decode_tokens(spec: dict[str, Any], logits: Any, lengths: Sequence[int]) -> list[tuple[Any, Any]]:
    """Argmax per token, or the best path under the exported chain scores (a CRF, constrained decoding)."""
    import numpy as np

    names, decoder = spec["labels"], spec.get("decoder", {"kind": "argmax"})
    if decoder["kind"] == "argmax":
        return [([names[i] for i in row[:n]], None) for row, n in zip(logits.argmax(axis=-1).tolist(), lengths)]
    chain = [np.asarray(decoder[k], dtype=np.float32) for k in ("transitions", "start", "end")]
    emissions = _log_softmax(logits) if decoder.get("log_softmax") else logits.astype(np.float32)
    return [([names[i] for i in viterbi(row[:n], *chain)], None) for row, n in zip(emissions, lengths)]


def decode_classes(spec: dict[str, Any], logits: Any, lengths: Sequence[int]) -> list[tuple[Any, Any]]:
    names = spec["labels"]
    probabilities = _softmax(logits).tolist()
    return [(names[i], dict(zip(names, row))) for i, row in zip(logits.argmax(axis=-1).tolist(), probabilities)]


def decode_value(spec: dict[str, Any], logits: Any, lengths: Sequence[int]) -> list[tuple[Any, Any]]:
    mean, std = float(spec["mean"]), float(spec["std"])
    return [(v * std + mean, None) for v in logits.reshape(-1).astype("float32").tolist()]


def decode_label_set(spec: dict[str, Any], logits: Any, lengths: Sequence[int]) -> list[tuple[Any, Any]]:
    names, threshold = spec["labels"], float(spec.get("threshold", 0.5))
    probabilities = _sigmoid(logits)
    return [([n for n, p in zip(names, row) if p >= threshold], dict(zip(names, row)))
            for row in probabilities.tolist()]


DECODERS: dict[str, Callable[[dict[str, Any], Any, Sequence[int]], list[tuple[Any, Any]]]] = {
    "token_classification": decode_tokens,
    "sequence_classification": decode_classes,
    "regression": decode_value,
    "multilabel": decode_label_set,
}
"""Task type -> (label, scores) per example from that task's logits, as ``TaskType.decode``/``probabilities``."""


class OnnxPredictor:
    """``Predictor``'s interface over an export directory: ``predict(examples)`` -> one record per input."""

    def __init__(self, path: str | Path, manifest: dict[str, Any], batch_size: int = 128, threads: int | None = None):
        onnxruntime = require("onnxruntime", "predicting from an ONNX export", "onnx")
        from polytask.errors import PolytaskError

        self.path, self.manifest, self.batch_size = Path(path), manifest, batch_size
        kind = manifest["featurizer"].get("kind")
        if kind not in FEATURIZERS:
            raise PolytaskError(f"{path}: featurizer kind {kind!r} is not known to this polytask")
        unknown = sorted({t["type"] for t in manifest["tasks"].values()} - set(DECODERS))
        if unknown:
            raise PolytaskError(f"{path}: task type(s) {unknown} cannot be decoded by this polytask")
        chains = sorted({t.get("decoder", {}).get("kind", "argmax") for t in manifest["tasks"].values()} - CHAIN_KINDS)
        if chains:
            raise PolytaskError(f"{path}: tag decoder(s) {chains} are not known to this polytask")
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            self.session = onnxruntime.InferenceSession(str(self.path / MODEL_FILE), options,
                                                        providers=["CPUExecutionProvider"])
        except Exception as error:  # a truncated or foreign file
            raise PolytaskError(f"{self.path / MODEL_FILE}: not a loadable ONNX model "
                                f"({str(error).splitlines()[0]})") from None
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.featurize = FEATURIZERS[kind](manifest["featurizer"], self.path)

    @classmethod
    def from_dir(cls, path: str | Path, threads: int | None = None) -> OnnxPredictor:
        return cls(path, read_manifest(path), threads=threads)

    @property
    def task_names(self) -> list[str]:
        return list(self.manifest["tasks"])

    @property
    def pair_tasks(self) -> list[str]:
        """None: ``polytask export`` refuses models with sentence-pair tasks."""
        return []

    def describe_tasks(self) -> dict[str, dict[str, Any]]:
        """Per task: type, level and label space, as ``GET /tasks`` shows them."""
        keep = ("labels", "mean", "std")
        return {name: {"type": t["type"], "level": t["level"], **{k: t[k] for k in keep if k in t}}
                for name, t in self.manifest["tasks"].items()}

    def predict(self, inputs: Any) -> dict[str, Any] | list[dict[str, Any]]:
        """Tokens, and per task: labels (+ entity spans with a scheme) or a label with probabilities.

        ``inputs`` as ``Predictor.predict``: a text (one record) or a list of texts, token lists or examples;
        a sentence pair is refused (no exported task reads pairs).
        """
        from polytask.serving.inputs import as_examples, tasks_by_form
        from polytask.serving.records import prediction_records

        examples, single = as_examples(inputs)
        tasks_by_form(self.task_names, self.pair_tasks, examples)
        tasks = self.manifest["tasks"]
        outputs: dict[str, list[Any]] = {name: [None] * len(examples) for name in tasks}
        order = sorted(range(len(examples)), key=lambda i: len(examples[i].tokens))  # as the torch predictor
        for start in range(0, len(order), self.batch_size):
            indices = order[start : start + self.batch_size]
            features = self.featurize([examples[i].tokens for i in indices])
            logits = self.session.run(self.manifest["outputs"], {name: features[name] for name in self.inputs})
            lengths = [len(examples[i].tokens) for i in indices]
            for name, values in zip(self.manifest["outputs"], logits):
                for i, decoded in zip(indices, DECODERS[tasks[name]["type"]](tasks[name], values, lengths)):
                    outputs[name][i] = decoded
        records = prediction_records(examples, tasks, outputs)
        return records[0] if single else records
