"""Reading every task's data once per source, parsing labels and splitting deterministically.

Tasks whose ``data`` sections differ only in ``column`` read the same corpus: they share
examples, so one encoder pass serves all of them. A task whose ``data`` is a list reads
several sources; their examples labelled for it are merged (train, dev and test alike).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from polytask.config import DataConfig, ExperimentConfig, SplitConfig
from polytask.data.example import Example
from polytask.data.featurizer import LabelCodec
from polytask.errors import ConfigError, DataError

SPLITS = ("train", "dev", "test")


@dataclass
class Source:
    """One corpus read once, labelled for one or more tasks (``columns[task]`` says where)."""

    columns: dict[str, int | str | None]
    data: DataConfig
    splits: dict[str, list[Example]] = field(default_factory=dict)

    @property
    def tasks(self) -> list[str]:
        return list(self.columns)


@dataclass
class MultiTaskCorpus:
    """All sources of an experiment and the map from each task to its source."""

    sources: list[Source]

    @property
    def task_sources(self) -> dict[str, list[int]]:
        """Indices of the sources each task reads (several when the task merges sources)."""
        mapping: dict[str, list[int]] = {}
        for i, source in enumerate(self.sources):
            for task in source.tasks:
                mapping.setdefault(task, []).append(i)
        return mapping

    def examples(self, split: str) -> list[Example]:
        return [e for source in self.sources for e in source.splits.get(split, [])]

    def task_examples(self, task: str, split: str) -> list[Example]:
        return [e for i in self.task_sources[task] for e in self.sources[i].splits.get(split, []) if task in e.labels]


def group_sources(config: ExperimentConfig) -> list[Source]:
    groups: dict[tuple, Source] = {}
    for name, task in config.tasks.items():
        for data in task.sources():
            key = data.source_key()
            if key not in groups:
                groups[key] = Source({}, data)
            if name in groups[key].columns:
                raise ConfigError("the same source is listed twice for this task", field=f"tasks.{name}.data")
            groups[key].columns[name] = data.column
    return list(groups.values())


def _read_split(source: Source, path: str) -> list[Example]:
    from polytask.data.readers import read_examples

    data = source.data
    fields = dict(source.columns)
    options = {"encoding": data.encoding}
    if data.format == "conll":
        options.update(token_column=data.token_column, comment=data.comment)
    if data.format in ("tsv", "csv", "jsonl"):
        options.update(text_field=data.text_field, tokens_field=data.tokens_field)
        if data.reads_pairs:
            options.update(text_pair_field=data.text_pair_field, tokens_pair_field=data.tokens_pair_field)
    return read_examples(data.format, path, fields, **options)


def _read_source(source: Source) -> dict[str, list[Example]]:
    from polytask.data.readers import read_labelled_lines
    from polytask.data.splits import sample_examples, split_examples

    data, first = source.data, source.tasks[0]
    if data.format == "synthetic":
        from polytask.data.synthetic import generate_splits

        fields = dict(source.columns)
        splits = generate_splits(fields, **(data.synthetic or {}))
    elif data.format == "hf":
        from polytask.data.readers.hf import read_hf_splits

        splits = read_hf_splits(data, dict(source.columns))
    elif data.format == "lines":
        if len(source.tasks) > 1:
            raise ConfigError("format 'lines' gives one label per file: it serves one task", field=f"tasks.{source.tasks[1]}.data")
        splits = {"train": read_labelled_lines(data.files, first, encoding=data.encoding)}
    else:
        splits = {split: _read_split(source, getattr(data, split)) for split in SPLITS if getattr(data, split)}
    carve = {s: getattr(data.split, s) for s in ("dev", "test") if data.split and getattr(data.split, s) > 0 and s not in splits}
    if carve:
        splits.update(split_examples(splits["train"], carve, seed=data.split.seed))
    if "dev" not in splits:
        raise ConfigError("no dev set: give 'dev' or carve one with 'split: {dev: 0.1}'", field=f"tasks.{first}.data")
    seed = (data.split or SplitConfig()).seed
    if data.max_train:
        splits["train"] = sample_examples(splits["train"], data.max_train, seed)
    if data.max_eval:
        for split in ("dev", "test"):
            if split in splits:
                splits[split] = sample_examples(splits[split], data.max_eval, seed)
    return splits


def _parse_labels(examples: list[Example], tasks: Mapping[str, LabelCodec]) -> None:
    for example in examples:
        if not example.tokens:
            raise DataError.at(example.origin, "empty sentence")
        for name in list(example.labels):
            raw = example.labels[name]
            if raw is None or raw == "" or name not in tasks:
                del example.labels[name]
                continue
            label = tasks[name].parse_label(raw, example.origin)
            tasks[name].check_label(label, example.tokens, example.origin)
            example.labels[name] = label


def load_corpus(config: ExperimentConfig, tasks: Mapping[str, LabelCodec]) -> MultiTaskCorpus:
    """Read, label-parse and split every source; check every task has training data."""
    sources = group_sources(config)
    for source in sources:
        source.splits = _read_source(source)
        for examples in source.splits.values():
            _parse_labels(examples, tasks)
    corpus = MultiTaskCorpus(sources)
    for task in config.tasks:
        if not corpus.task_examples(task, "train"):
            raise ConfigError("the task has no labelled training examples", field=f"tasks.{task}.data")
    return corpus


