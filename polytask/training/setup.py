"""Building an experiment from its config: tasks, corpus, fitted featurizer and model."""

from __future__ import annotations

from dataclasses import dataclass

from polytask.config import ExperimentConfig
from polytask.data.corpus import MultiTaskCorpus, load_corpus
from polytask.errors import ConfigError
from polytask.models.encoders import build_encoder
from polytask.models.multitask import MultiTaskModel
from polytask.models.sharing import build_sharing
from polytask.tasks import build_task
from polytask.tasks.base import TaskType
from polytask.tasks.registry import TASK_TYPES, task_options


@dataclass
class Experiment:
    """Everything a run needs besides the training loop itself."""

    config: ExperimentConfig
    tasks: dict[str, TaskType]
    model: MultiTaskModel
    corpus: MultiTaskCorpus | None = None


def build_tasks(config: ExperimentConfig) -> dict[str, TaskType]:
    """Every task's type; a sentence-pair source for a token task is a ConfigError naming its pair field."""
    tasks = {}
    for name, task in config.tasks.items():
        options = dict(task.options)
        if task.scheme is not None:
            options["scheme"] = task.scheme
        if task.label_names is not None:
            if task.type in TASK_TYPES and "label_names" not in task_options(task.type):
                raise ConfigError(f"label_names name class ids; task type {task.type!r} has no classes",
                                  field=f"tasks.{name}.label_names")
            options["label_names"] = task.label_names
        tasks[name] = build_task(task.type, name, **options)
        if task.reads_pairs and tasks[name].level == "token":
            source = task.sources()[0]
            field = "text_pair_field" if source.text_pair_field is not None else "tokens_pair_field"
            where = "data.0" if isinstance(task.data, list) else "data"
            raise ConfigError(f"sentence pairs are for sentence-level tasks; {task.type} labels words",
                              field=f"tasks.{name}.{where}.{field}")
    return tasks


def head_level(config: ExperimentConfig, name: str, task: TaskType) -> str:
    """``pair`` for a task reading sentence pairs, else its level (``MultiTaskModel`` picks the head by it)."""
    return "pair" if config.tasks[name].reads_pairs else task.level


def build_model(config: ExperimentConfig, encoder, tasks: dict[str, TaskType]) -> MultiTaskModel:
    """The encoder, the configured sharing architecture and one head (and decoder) per task."""
    specs = {name: (head_level(config, name, task), task.output_size, config.head(name)) for name, task in tasks.items()}
    decoders = {name: task.configure_decoder(config.head(name).decoder, config.head(name).constrained)
                for name, task in tasks.items()}
    return MultiTaskModel(encoder, specs, {name: d for name, d in decoders.items() if d is not None},
                          build_sharing(config.sharing, encoder, list(tasks)))


def build_experiment(config: ExperimentConfig, corpus: MultiTaskCorpus | None = None) -> Experiment:
    """Read the data (unless given), fit vocabularies and label spaces, build the model."""
    import torch

    torch.manual_seed(config.training.seed)
    tasks = build_tasks(config)
    corpus = corpus if corpus is not None else load_corpus(config, tasks)
    encoder = build_encoder(config.encoder)
    encoder.featurizer.fit(corpus.examples("train"))
    for name, task in tasks.items():
        task.fit_labels(corpus.task_examples(name, "train"))
    encoder.build()
    encoder.initialise_from_pretrained()
    return Experiment(config, tasks, build_model(config, encoder, tasks), corpus)
