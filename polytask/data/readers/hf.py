"""Hugging Face ``datasets``: a dataset saved to disk, local data files, or a ``Dataset`` / ``DatasetDict`` in memory.

Why: many corpora come as ``datasets`` objects whose ``ClassLabel`` columns hold integer ids; this
reader maps them to their names (sentence-level ``ClassLabel`` and token-level lists of them), so
labels read as from any other format. Nothing is downloaded: a name that is not a local path is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from polytask.config import DataConfig, ExperimentConfig
from polytask.data.example import Example
from polytask.data.tokenize import simple_tokenize
from polytask.dependencies import require
from polytask.errors import ConfigError, DataError

SPLIT_NAMES: dict[str, tuple[str, ...]] = {"train": ("train",), "dev": ("validation", "dev", "valid"),
                                           "test": ("test",)}
"""A DatasetDict's split read as each polytask split when ``data.split_names`` does not say (the first present)."""

DATA_FILES: dict[str, tuple[str, dict[str, Any]]] = {
    ".json": ("json", {}), ".jsonl": ("json", {}), ".csv": ("csv", {}), ".tsv": ("csv", {"delimiter": "\t"}),
    ".parquet": ("parquet", {}), ".arrow": ("arrow", {}),
}
"""Local data files by suffix: the ``datasets`` builder that reads them and its options."""

TOKENS_COLUMN = "tokens"
"""The column read as tokens when ``tokens_field`` is not set and the dataset has it (as ``conll2003`` does)."""


def _datasets() -> Any:
    return require("datasets", "data format 'hf'", "hf")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def load_hf(value: Any, *, encoding: str = "utf-8") -> Any:
    """A ``Dataset`` or ``DatasetDict``: ``value`` itself, or read from a local path.

    A directory written by ``save_to_disk`` is loaded with ``load_from_disk``; another directory is a
    folder of data files (``train.jsonl``, ``test.csv``, ..., splits named by the files) and a file is
    one split, both through ``load_dataset`` with a local builder.
    """
    if not isinstance(value, str | Path):
        return value
    datasets = _datasets()
    path = Path(value)
    try:
        if path.is_dir():
            if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
                return datasets.load_from_disk(str(path))
            return datasets.load_dataset(str(path))
        if not path.is_file():
            raise DataError("not found: polytask reads local datasets only (save a hub dataset with "
                            "load_dataset(...).save_to_disk(DIR) and give DIR)", file=str(path))
        if path.suffix.lower() not in DATA_FILES:
            raise DataError(f"unknown data file type {path.suffix or '(no suffix)'!r}; format 'hf' reads "
                            f"{', '.join(DATA_FILES)} files and save_to_disk directories", file=str(path))
        builder, options = DATA_FILES[path.suffix.lower()]
        if builder in ("json", "csv"):
            options = {**options, "encoding": encoding}
        return datasets.load_dataset(builder, data_files=str(path), split="train", **options)
    except DataError:
        raise
    except Exception as error:  # datasets raises many types (FileNotFoundError, ArrowInvalid, DatasetGenerationError)
        raise DataError(f"cannot read the dataset ({_first_line(error)})", file=str(path)) from None


def describe(value: Any) -> str:
    """Where a dataset came from, for ``Example.origin`` and errors: its path, or ``<in-memory Dataset>``."""
    return str(value) if isinstance(value, str | Path) else f"<in-memory {type(value).__name__}>"


def _is_split_dict(dataset: Any) -> bool:
    return isinstance(dataset, Mapping) or type(dataset).__name__ == "DatasetDict"


def _label_decoder(feature: Any, column: str, where: str) -> Callable[[Any, str], Any]:
    """Raw values of ``column`` as labels: ``ClassLabel`` ids (alone or in a list) become their names."""
    datasets = _datasets()
    class_label = datasets.ClassLabel

    def name(label: Any, id_: Any, origin: str) -> str:
        if not isinstance(id_, int) or not 0 <= id_ < label.num_classes:
            raise DataError.at(origin, f"column {column!r}: ClassLabel id {id_!r} is out of range "
                                       f"({label.num_classes} names, ids 0-{label.num_classes - 1})")
        return label.int2str(id_)

    if isinstance(feature, class_label):  # -1 is datasets' "no label" (GLUE test sets): unlabelled
        return lambda value, origin: None if value is None or value == -1 else name(feature, value, origin)
    inner = getattr(feature, "feature", None)  # Sequence / List / LargeList of ClassLabel: token tags
    if isinstance(inner, class_label):
        return lambda value, origin: None if value is None else [name(inner, v, origin) for v in value]
    return lambda value, origin: value


def read_hf_dataset(dataset: Any, fields: Mapping[str, str | int], *, where: str, text_field: str | None = "text",
                    tokens_field: str | None = None) -> list[Example]:
    """The rows of one ``Dataset`` as examples; ``fields`` maps each task to its column, ``where`` names the split.

    Tokens come from ``tokens_field`` if given, else the ``tokens`` column when there is one, else
    ``simple_tokenize`` of ``text_field``. A ``None`` or ``""`` label leaves the row unlabelled for its
    task. Each example's origin is ``where:ROW`` (1-based).
    """
    columns = list(dataset.column_names)
    for task, column in fields.items():
        if not isinstance(column, str) or column not in columns:
            raise DataError(f"task {task!r}: no column {column!r}; the dataset has: {', '.join(columns)}", file=where)
    tokens_column = tokens_field if tokens_field is not None else (TOKENS_COLUMN if TOKENS_COLUMN in columns else None)
    if tokens_column is not None and tokens_column not in columns:
        raise DataError(f"no column {tokens_column!r} (tokens_field); the dataset has: {', '.join(columns)}", file=where)
    text_column = text_field if text_field in columns else None
    if tokens_column is None and text_column is None:
        raise DataError(f"no {text_field!r} column (text_field) and no {TOKENS_COLUMN!r} column; the dataset has: "
                        f"{', '.join(columns)}", file=where)
    decoders = {task: _label_decoder(dataset.features[str(column)], str(column), where) for task, column in fields.items()}
    wanted = sorted({*map(str, fields.values()), *(c for c in (tokens_column, text_column) if c is not None)})
    rows = dataset.select_columns(wanted).to_dict()
    examples = []
    for index in range(len(dataset)):
        origin = f"{where}:{index + 1}"
        text = rows[text_column][index] if text_column is not None else None
        if text is not None and not isinstance(text, str):
            raise DataError.at(origin, f"column {text_column!r} must hold strings, got {text!r}")
        if tokens_column is not None:
            tokens = rows[tokens_column][index]
            if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) and t for t in tokens):
                raise DataError.at(origin, f"column {tokens_column!r} must hold non-empty lists of non-empty "
                                           f"strings, got {tokens!r}")
        else:
            tokens = simple_tokenize(text or "")
            if not tokens:
                raise DataError.at(origin, f"no tokens in the text of column {text_column!r}")
        labels = {}
        for task, column in fields.items():
            label = decoders[task](rows[str(column)][index], origin)
            if label is not None and label != "":
                labels[task] = label
        examples.append(Example(tokens=list(tokens), labels=labels, origin=origin, text=text))
    if not examples:
        raise DataError("no examples (the dataset has no rows)", file=where)
    return examples


def _choose_splits(dataset: Any, data: DataConfig, where: str) -> dict[str, tuple[str, Any]]:
    """The DatasetDict's splits read as train, dev and test: ``split -> (its name, Dataset)``.

    ``data.split_names`` names them; a split it does not name is the first of ``SPLIT_NAMES`` present.
    """
    available = list(dataset.keys())
    given = data.split_names or {}
    chosen = {}
    for split, defaults in SPLIT_NAMES.items():
        if split in given:
            if given[split] not in available:
                raise DataError(f"split_names.{split}: the dataset has no split {given[split]!r}; its splits: "
                                f"{', '.join(available)}", file=where)
            chosen[split] = given[split]
        else:
            name = next((n for n in defaults if n in available), None)
            if name is not None:
                chosen[split] = name
    if "train" not in chosen:
        raise DataError(f"no training split: the dataset has {', '.join(available)}; name it with "
                        "split_names: {train: NAME}", file=where)
    return {split: (name, dataset[name]) for split, name in chosen.items()}


def read_hf_splits(data: DataConfig, fields: Mapping[str, str | int]) -> dict[str, list[Example]]:
    """Every split of an ``hf`` source: ``data.dataset`` (its splits by name) or ``data.train`` / ``dev`` / ``test``."""
    options = {"text_field": data.text_field, "tokens_field": data.tokens_field}
    if data.dataset is not None:
        where = describe(data.dataset)
        loaded = load_hf(data.dataset, encoding=data.encoding)
        if not _is_split_dict(loaded):
            return {"train": read_hf_dataset(loaded, fields, where=where, **options)}
        return {split: read_hf_dataset(ds, fields, where=f"{where}[{name}]", **options)
                for split, (name, ds) in _choose_splits(loaded, data, where).items()}
    splits = {}
    for split in ("train", "dev", "test"):
        path = getattr(data, split)
        if not path:
            continue
        loaded = load_hf(path, encoding=data.encoding)
        if _is_split_dict(loaded):
            if len(loaded) != 1:
                raise DataError(f"holds the splits {', '.join(loaded)}: give it as data.dataset (its splits are "
                                "read by name) instead of data." + split, file=str(path))
            loaded = next(iter(loaded.values()))
        splits[split] = read_hf_dataset(loaded, fields, where=str(path), **options)
    return splits


def config_dump(config: ExperimentConfig, directory: Path) -> dict[str, Any]:
    """The config as JSON-able data, each in-memory dataset saved under ``directory`` and named by its path.

    Why: a run's ``config.yaml`` must read its data again (``resume``, ``evaluate``); a ``Dataset``
    passed in memory is kept as ``directory/datasets/N`` (``save_to_disk``), once however many tasks read it.
    """
    dump = config.model_dump(mode="json")
    saved: dict[int, str] = {}
    for name, task in config.tasks.items():
        for index, data in enumerate(task.sources()):
            if data.dataset is None or isinstance(data.dataset, str):
                continue
            if id(data.dataset) not in saved:
                target = directory / "datasets" / str(len(saved))
                try:
                    data.dataset.save_to_disk(str(target))
                except Exception as error:  # a dataset that cannot be written (disk full, unpicklable features)
                    raise ConfigError(f"cannot keep the in-memory dataset in {target} ({_first_line(error)})",
                                      field=f"tasks.{name}.data.dataset") from None
                saved[id(data.dataset)] = str(target.absolute())
            section = dump["tasks"][name]["data"]
            (section[index] if isinstance(section, list) else section)["dataset"] = saved[id(data.dataset)]
    return dump
