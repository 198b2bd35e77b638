"""A pretrained Hugging Face transformer encoder with word-aligned states for every layer.

``encoder: {type: transformer, model: minilm | FOLDER | HUB_ID}``. The featurizer splits the
pre-tokenised words into sub-word pieces (``subwords``), cuts sentences longer than the model's
limit into overlapping windows (``windows``) and records where each word's pieces are; the
encoder runs the transformer over the windows, gathers every piece's state from its most
central window and pools each word's pieces. ``layers[0]`` is the embedding output,
``layers[k]`` transformer layer k (Devlin et al. 2019, BERT; Wang et al. 2020, MiniLM).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from polytask.config import EncoderConfig
from polytask.data.example import Example
from polytask.data.pieces import PairTemplate, window_arrays
from polytask.errors import ConfigError, PolytaskError
from polytask.models.encoders.base import Encoder, EncoderOutput, Featurizer
from polytask.models.encoders.case_features import CaseEmbedding, shape_ids
from polytask.models.encoders.chunks import SortedChunks
from polytask.models.encoders.packing import pack_windows
from polytask.models.encoders.pretrained import (
    load_model_config,
    load_pretrained,
    load_tokenizer,
)
from polytask.models.encoders.subwords import (
    SUBWORD_POOLING,
    placeholder_piece,
    split_into_pieces,
)

SHARED_ADAPTER = "shared"
EXPORT_TOKENIZER = "tokenizer.json"
DEFAULT_CHUNK_ROWS = 16
"""Windows per transformer call when ``encoder.chunk_rows`` is not set."""
_LAYER_INDEX = re.compile(r"(?:^|\.)(?:layer|layers|h|block|blocks)\.(\d+)\.")
_UNUSED = re.compile(r"(?:^|\.)pooler\.")  # word states come from hidden states; the pooler never runs into a loss


def pair_template(tokenizer: Any) -> PairTemplate:
    """How ``tokenizer`` frames a sentence pair (its special tokens and token types), read off a pair it encodes."""
    template = tokenizer([["x"]], [["y"]], is_split_into_words=True)
    ids, sides = template["input_ids"][0], template.sequence_ids(0)
    first = [k for k, side in enumerate(sides) if side == 0]
    second = [k for k, side in enumerate(sides) if side == 1]
    a, b = (first[0], first[-1] + 1), (second[0], second[-1] + 1)
    types = None
    if "token_type_ids" in getattr(tokenizer, "model_input_names", ()) and "token_type_ids" in template:
        t = list(template["token_type_ids"][0])
        types = (t[: a[0]], t[a[0]], t[a[1] : b[0]], t[b[0]], t[b[1] :])
    return PairTemplate(list(ids[: a[0]]), list(ids[a[1] : b[0]]), list(ids[b[1] :]), types, capacity=0)


def position_limit(tokenizer: Any, model_config: Any) -> int | None:
    """The most pieces (special tokens included) the model accepts in one sequence."""
    limits = [getattr(model_config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    limits = [int(n) for n in limits if isinstance(n, int) and 0 < n < 1_000_000]
    return min(limits) if limits else None


class TransformerFeaturizer(Featurizer):
    """Words -> sub-word windows (ids, attention mask), each piece's source position and each word's piece span.

    Tensors: ``input_ids``/``attention_mask`` [windows, length]; ``piece_index`` [batch, pieces]
    (flat position in the windows where each piece is read); ``word_start``/``word_end``
    [batch, words] (piece span); ``mask`` [batch, words]; with ``case_features``, ``shape_ids`` [batch, words].
    """

    def __init__(self, model: str, max_length: int | None = None, window_stride: int | None = None,
                 case_features: bool = False):
        self.case_features = case_features
        self.load_tokenizer(model)
        self.configure(max_length, window_stride)

    def load_tokenizer(self, model: str) -> None:
        """The model's tokenizer, its special-token template and position limit."""
        self.model = model
        self.tokenizer = load_tokenizer(model)
        self.placeholder = placeholder_piece(self.tokenizer)
        template = self.tokenizer([["x"]], is_split_into_words=True)
        ids, words = template["input_ids"][0], template.word_ids(0)
        first = next(i for i, w in enumerate(words) if w is not None)
        last = max(i for i, w in enumerate(words) if w is not None)
        self.prefix, self.suffix = list(ids[:first]), list(ids[last + 1 :])
        self.pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.limit = position_limit(self.tokenizer, load_model_config(model))
        self.pair_template = pair_template(self.tokenizer)

    @property
    def pair_capacity(self) -> int:
        """Pieces of both sentences of a pair that fit in ``max_length`` besides the pair's special tokens."""
        template = self.pair_template
        return self.max_length - len(template.prefix) - len(template.middle) - len(template.suffix)

    def configure(self, max_length: int | None, window_stride: int | None) -> None:
        """Resolve the window length (default: the model's limit) and stride (default: half a window)."""
        if max_length is None and self.limit is None:
            raise ConfigError(f"{self.model!r} states no position limit: set encoder.max_length", field="encoder.max_length")
        if max_length is not None and self.limit is not None and max_length > self.limit:
            raise ConfigError(f"{max_length} exceeds {self.model!r}'s limit of {self.limit} positions", field="encoder.max_length")
        self.max_length = max_length or self.limit
        self.capacity = self.max_length - len(self.prefix) - len(self.suffix)
        if self.capacity < 1:
            raise ConfigError(f"{self.max_length} leaves no room for pieces besides the model's "
                              f"{len(self.prefix) + len(self.suffix)} special tokens", field="encoder.max_length")
        self.stride = window_stride or max(1, self.capacity // 2)
        if self.stride > self.capacity:
            raise ConfigError(f"a stride of {self.stride} would skip pieces: windows hold {self.capacity} pieces "
                              f"(max_length minus special tokens)", field="encoder.window_stride")

    def fit(self, examples: Sequence[Example]) -> None:
        """Nothing to fit: the vocabulary is the pretrained tokenizer's."""

    def __call__(self, sentences: Sequence[Sequence[str]],
                 pairs: Sequence[Sequence[str] | None] | None = None) -> dict[str, Tensor]:
        """Windows of the sentences; a sentence pair is one input in the tokenizer's pair template (its
        ``token_type_ids`` where the model has them), truncated longest-first to ``max_length``."""
        sentences = [list(s) for s in sentences]
        pieces = split_into_pieces(self.tokenizer, sentences, self.placeholder)
        second: list[Any] | None = None
        template = None
        if pairs is not None and any(pair is not None for pair in pairs):
            if self.pair_capacity < 2:
                raise ConfigError(f"{self.max_length} positions leave no room for a sentence pair besides the "
                                  f"model's {self.max_length - self.pair_capacity} special tokens",
                                  field="encoder.max_length")
            template = dataclasses.replace(self.pair_template, capacity=self.pair_capacity)
            present = [i for i, pair in enumerate(pairs) if pair is not None]
            split = split_into_pieces(self.tokenizer, [list(pairs[i]) for i in present], self.placeholder)
            second = [None] * len(sentences)
            for i, word_pieces in zip(present, split):
                second[i] = word_pieces
        arrays = window_arrays(pieces, self.prefix, self.suffix, self.pad, self.capacity, self.stride, second,
                               template)
        inputs = {name: torch.from_numpy(array) for name, array in arrays.items()}
        mask = inputs["mask"]
        if self.case_features:
            words = [s + list(pairs[i]) if second is not None and second[i] is not None else s
                     for i, s in enumerate(sentences)]
            inputs["shape_ids"] = shape_ids(words, mask.shape[1])
        return inputs

    def export_spec(self, directory: Any) -> dict[str, Any]:
        """The fast tokenizer (``tokenizer.json`` in ``directory``) and the window settings, for the ONNX runtime."""
        from pathlib import Path

        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise PolytaskError(f"ONNX export needs a fast tokenizer; {self.model!r} has none")
        backend.save(str(Path(directory) / EXPORT_TOKENIZER))
        return {"kind": "subwords", "tokenizer": EXPORT_TOKENIZER, "prefix": self.prefix, "suffix": self.suffix,
                "pad": self.pad, "placeholder": self.placeholder, "capacity": self.capacity, "stride": self.stride,
                "case_features": self.case_features}

    def export_axes(self, sample: dict[str, Tensor]) -> dict[str, dict[int, str]]:
        words = {0: "batch", 1: "words"}
        return {"input_ids": {0: "windows", 1: "length"}, "attention_mask": {0: "windows", 1: "length"},
                "piece_index": {0: "batch", 1: "pieces"}, "word_start": words, "word_end": words, "mask": words,
                **({"shape_ids": words} if "shape_ids" in sample else {})}

    def to_json(self) -> dict[str, Any]:
        """The model reference and window settings; the tokenizer itself is read from the model."""
        return {"model": self.model, "max_length": self.max_length, "window_stride": self.stride,
                "placeholder": "unk", "vocab_size": len(self.tokenizer)}

    def load_json(self, data: dict[str, Any]) -> None:
        if data["model"] != self.model:
            self.load_tokenizer(data["model"])
        self.configure(data["max_length"], data["window_stride"])
        if data.get("vocab_size") not in (None, len(self.tokenizer)):
            raise PolytaskError(f"the tokenizer of {self.model!r} has {len(self.tokenizer)} pieces, "
                                f"the model was trained with {data['vocab_size']}: not the same tokenizer")


class TransformerEncoder(Encoder):
    """A pretrained transformer (any ``AutoModel`` with hidden states), fine-tuned or adapted with LoRA.

    With ``adapters.per_task`` the encoder is task-conditioned: each task has its own LoRA adapter
    and ``forward(..., task=NAME)`` encodes with it, so the model encodes once per task. A sentence
    pair is encoded jointly, as the model was pretrained to read pairs (``pair_encoding = "joint"``).
    """

    pair_encoding = "joint"

    def __init__(self, config: EncoderConfig):
        super().__init__()
        if not config.model:
            raise ConfigError("encoder type 'transformer' needs 'model' (a folder, a hub id or minilm)", field="encoder.model")
        self.config = config
        self.featurizer = TransformerFeaturizer(config.model, config.max_length, config.window_stride,
                                                config.case_features)
        self.pool = SUBWORD_POOLING[config.subword_pooling]
        self.adapters = config.adapters
        self.task_conditioned = bool(self.adapters and self.adapters.per_task)
        self.chunk_rows = config.chunk_rows or DEFAULT_CHUNK_ROWS
        self.packing = False  # decided in build(): config.packing, or (null) whether the model packs exactly
        self._frozen: set[int] = set()

    def build(self) -> None:
        model = load_pretrained(self.config.model)
        train_base = self.adapters is None or self.adapters.train_encoder
        for name, p in model.named_parameters():
            p.requires_grad_(train_base and not _UNUSED.search(name))
        self._frozen = {id(p) for p in model.parameters() if not p.requires_grad}
        self.model = model
        self.packing = self.config.packing is not False and self.packs_exactly()
        if self.config.packing and not self.packing:
            raise ConfigError(f"{self.config.model!r} does not give packed windows the states it gives them apart "
                              f"(its position ids or attention masks work otherwise): set encoder.packing to false or null",
                              field="encoder.packing")
        if self.adapters is not None and not self.task_conditioned:
            self._add_adapter(SHARED_ADAPTER)
        self.case = CaseEmbedding() if self.config.case_features else None  # joined to every layer's word states
        width = int(model.config.hidden_size) + (self.case.output_dim if self.case is not None else 0)
        self._dims = [width] * (int(model.config.num_hidden_layers) + 1)

    def _add_adapter(self, name: str) -> None:
        from polytask.models.encoders.adapters import add_lora

        self.model = add_lora(self.model, name, self.adapters)

    @property
    def layer_dims(self) -> list[int]:
        return list(self._dims)

    def add_task(self, task: str) -> None:
        """Per-task adapters: give ``task`` its own LoRA adapter."""
        if self.task_conditioned and task not in self.task_adapters():
            self._add_adapter(task)

    def task_adapters(self) -> list[str]:
        return list(getattr(self.model, "peft_config", {}))

    def task_parameters(self, task: str) -> dict[str, nn.Parameter]:
        """The parameters of ``task``'s own adapter (per-task adapters), else none."""
        if not self.task_conditioned:
            return {}
        from polytask.models.encoders.adapters import adapter_parameters

        return adapter_parameters(self.model, task, prefix="model.")

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """Trainable parameters from the bottom: embeddings, then transformer layer k (LoRA weights included).

        Parameters frozen by design (the unused pooler; base weights under adapters without
        ``train_encoder``) belong to no group; anything outside the layers and embeddings (a
        final norm, the case-feature embedding) joins the top group.
        """
        groups: list[list[nn.Parameter]] = [[] for _ in self._dims]
        for name, p in self.model.named_parameters():
            if id(p) in self._frozen:
                continue
            match = _LAYER_INDEX.search(name)
            if match:
                index = int(match.group(1)) + 1
                if index >= len(groups):
                    raise PolytaskError(f"cannot tell the layers of {self.config.model!r} apart: {name} "
                                        f"is past its {len(groups) - 1} layers")
                groups[index].append(p)
            elif "embed" in name:
                groups[0].append(p)
            else:
                groups[-1].append(p)
        if self.case is not None:
            groups[-1].extend(self.case.parameters())
        return groups

    def export_module(self) -> nn.Module:
        """One traceable call over all windows; a shared LoRA adapter is merged into a copy of the weights first.

        Per-task adapters are refused in one line: each task would need its own encoder pass in the graph.
        """
        if self.task_conditioned:
            raise PolytaskError("ONNX export of an encoder with per-task LoRA adapters is not supported yet "
                                "(a shared adapter, adapters.per_task: false, is)")
        if self.adapters is None:
            return TransformerExport(self, self.model).eval()
        from polytask.models.encoders.adapters import merged_copy

        return TransformerExport(self, merged_copy(self.model)).eval()

    def _encode_windows(self, input_ids: Tensor, attention_mask: Tensor, piece_index: Tensor,
                        token_type_ids: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Every layer's states of the windows' positions, [layers, rows, length, dim], and ``piece_index`` into them.

        With packing, short windows share rows first (``packing.pack_windows``); then the rows run
        sorted by length in chunks of ``chunk_rows``, each cut to its own longest row, so a short
        sentence batched with long ones (a mixed multi-task step) is not padded to their length.
        Position ids and the attention mask make the states of real pieces the same either way.
        """
        if self.packing and input_ids.shape[0] > 1:
            packed = pack_windows(input_ids, attention_mask, piece_index, self.featurizer.pad, token_type_ids,
                                  self.model.dtype)
            if packed.input_ids.shape[0] < input_ids.shape[0]:
                return self._encode_rows(packed.lengths, packed.input_ids.shape[1], packed.piece_index, packed.inputs)
        return self._encode_rows(attention_mask.sum(1), input_ids.shape[1], piece_index,
                                 _padded_inputs(input_ids, attention_mask, token_type_ids))

    def _encode_rows(self, lengths: Tensor, width: int, piece_index: Tensor,
                     inputs: Callable[[Tensor | slice, int], dict[str, Tensor]]) -> tuple[Tensor, Tensor]:
        """The transformer over rows of ``lengths`` real positions in length-sorted chunks; ``inputs(rows, used)`` slices them.

        The states stay in sorted order and ``piece_index`` (flat positions in rows of ``width``) is renumbered to match.
        """
        count = lengths.shape[0]
        if count <= self.chunk_rows:
            used = max(int(lengths.max()), 1) if count else width
            output = self.model(**inputs(slice(None), used), output_hidden_states=True)
            return _pad_length(torch.stack(output.hidden_states), width), piece_index
        sorted_rows = SortedChunks(lengths, self.chunk_rows)
        chunks = [_pad_length(torch.stack(self.model(**inputs(rows, used), output_hidden_states=True).hidden_states),
                              width) for rows, used in sorted_rows]
        position = sorted_rows.position()  # row r is row position[r] of the sorted states
        return torch.cat(chunks, 1), position[piece_index // width] * width + piece_index % width

    def packs_exactly(self) -> bool:
        """Whether the model gives windows packed in one row the states it gives them apart (eval mode, a few pieces).

        Packing passes position ids counted from 0 in each window and a 4-D additive attention mask
        (and packed token types where the model has several); a model that numbers positions
        otherwise (RoBERTa starts after its padding id), takes no position ids or 4-D masks, or
        whose attention implementation reads masks otherwise fails the check. The probe is one
        window as long as the featurizer allows (at most 16 pieces) and two that share a row.
        """
        length = min(self.featurizer.max_length, 16)
        if length < 2:
            return False
        words = ["a", "packing", "probe", "of", "a", "few", "words", ",", "cut", "to", "one", "window", "."] * 2
        ids = self.featurizer([words])["input_ids"][0, :length]
        half = length // 2
        input_ids = torch.full((3, length), self.featurizer.pad, dtype=ids.dtype)
        attention_mask = torch.zeros((3, length), dtype=torch.long)
        for row, piece_ids in enumerate((ids, ids[:half], ids[half:].flip(0))):
            input_ids[row, : len(piece_ids)] = piece_ids
            attention_mask[row, : len(piece_ids)] = 1
        types = None
        if getattr(self.model.config, "type_vocab_size", 1) > 1:
            types = (torch.arange(3 * length).view(3, length) % 2) * attention_mask
        piece_index = torch.arange(3 * length).view(3, length)[attention_mask.bool()].unsqueeze(0)
        packed = pack_windows(input_ids, attention_mask, piece_index, self.featurizer.pad, types, self.model.dtype)
        if packed.input_ids.shape[0] >= input_ids.shape[0]:
            return False  # nothing shared a row: the probe would prove nothing
        training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                apart = self.model(**_padded_inputs(input_ids, attention_mask, types)(slice(None), length),
                                   output_hidden_states=True).hidden_states
                together = self.model(**packed.inputs(slice(None), length), output_hidden_states=True).hidden_states
        except (TypeError, ValueError, RuntimeError, IndexError):  # the model's forward takes no packed inputs
            return False
        finally:
            self.model.train(training)
        a = torch.stack(apart).flatten(1, 2)[:, piece_index]
        b = torch.stack(together).flatten(1, 2)[:, packed.piece_index]
        return bool(torch.allclose(a, b, atol=1e-4, rtol=1e-3))

    def forward(self, input_ids: Tensor, attention_mask: Tensor, piece_index: Tensor, word_start: Tensor,
                word_end: Tensor, mask: Tensor, shape_ids: Tensor | None = None, task: str | None = None,
                token_type_ids: Tensor | None = None, segments: Tensor | None = None) -> EncoderOutput:
        if self.task_conditioned:
            from polytask.models.encoders.adapters import activate

            if task is None:
                raise ValueError("an encoder with per-task adapters needs forward(..., task=NAME)")
            activate(self.model, task)
        hidden, piece_index = self._encode_windows(input_ids, attention_mask, piece_index, token_type_ids)
        return self.words_from_windows(hidden, piece_index, word_start, word_end, mask, shape_ids, segments)

    def words_from_windows(self, hidden: Tensor, piece_index: Tensor, word_start: Tensor, word_end: Tensor,
                           mask: Tensor, shape_ids: Tensor | None = None,
                           segments: Tensor | None = None) -> EncoderOutput:
        """Word states of every layer from the windows' (or packed rows') states ``[layers, rows, length, dim]``."""
        flat = hidden.flatten(1, 2)
        words = self.pool(flat, piece_index, word_start, word_end)  # pieces, each from its central window
        words = words * mask.unsqueeze(-1).to(hidden.dtype)
        layers = list(words.unbind(0))
        if self.case is not None:
            if shape_ids is None:
                raise ValueError("an encoder with case_features needs the featurizer's shape_ids")
            case = self.case(shape_ids).to(words.dtype) * mask.unsqueeze(-1).to(words.dtype)
            layers = [torch.cat([layer, case], dim=-1) for layer in layers]
        return EncoderOutput(layers=layers, mask=mask, segments=segments)


class TransformerExport(nn.Module):
    """``TransformerEncoder.forward`` for ``torch.export``: every window in one call (no chunking by length,
    which the attention mask makes equal), then the same piece gathering and pooling."""

    def __init__(self, encoder: TransformerEncoder, model: nn.Module):
        """``model``: the encoder's transformer, or a copy of it with a shared adapter merged in."""
        super().__init__()
        self.encoder, self.model = encoder, model

    def forward(self, input_ids: Tensor, attention_mask: Tensor, piece_index: Tensor, word_start: Tensor,
                word_end: Tensor, mask: Tensor, shape_ids: Tensor | None = None) -> EncoderOutput:
        hidden = torch.stack(self.model(input_ids=input_ids, attention_mask=attention_mask,
                                        output_hidden_states=True).hidden_states)
        return self.encoder.words_from_windows(hidden, piece_index, word_start, word_end, mask, shape_ids)


def _padded_inputs(input_ids: Tensor, attention_mask: Tensor,
                   token_type_ids: Tensor | None) -> Callable[[Tensor | slice, int], dict[str, Tensor]]:
    """``inputs(rows, used)``: the model's keyword inputs for padded windows ``rows``, cut to ``used`` positions."""

    def inputs(rows: Tensor | slice, used: int) -> dict[str, Tensor]:
        types = {"token_type_ids": token_type_ids[rows, :used]} if token_type_ids is not None else {}
        return {"input_ids": input_ids[rows, :used], "attention_mask": attention_mask[rows, :used], **types}

    return inputs


def _pad_length(hidden: Tensor, width: int) -> Tensor:
    """[layers, rows, used, dim] states zero-padded on the right to ``width`` positions."""
    missing = width - hidden.shape[2]
    return hidden if missing == 0 else torch.nn.functional.pad(hidden, (0, 0, 0, missing))
