"""Word-level input for encoders trained from scratch: word ids, character ids and a mask."""

from __future__ import annotations

from abc import abstractmethod
from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from polytask.config import EncoderConfig
from polytask.data.example import Example
from polytask.data.vocab import Vocabulary, normalise_word
from polytask.data.word_arrays import (
    UNKNOWN_ID,
    affix_id_array,
    affixes,
    char_id_array,
    padding_mask,
    shape_id_array,
    word_id_array,
)
from polytask.models.encoders.affix_features import AFFIX_MIN_COUNT, AffixEmbedding
from polytask.models.encoders.base import Encoder, EncoderOutput, Featurizer
from polytask.models.encoders.case_features import CaseEmbedding
from polytask.models.encoders.chunks import SortedChunks
from polytask.models.encoders.pairs import fold_rows, fold_tensors, pair_rows

MAX_WORD_CHARS = 30
DEFAULT_CHUNK_ROWS = 32
"""Rows per call of a word-level encoder when ``encoder.chunk_rows`` is not set (benchmarks/word_chunks.py)."""


class WordFeaturizer(Featurizer):
    """Maps words (digits normalised, optionally lower-cased), their characters, shapes and affixes to ids."""

    def __init__(self, min_count: int = 1, lowercase: bool = False, chars: bool = True, case_features: bool = False,
                 affix_features: bool = False):
        self.min_count, self.lowercase, self.use_chars = min_count, lowercase, chars
        self.case_features, self.affix_features = case_features, affix_features
        self.words = Vocabulary()
        self.chars = Vocabulary()
        self.prefixes = Vocabulary()
        self.suffixes = Vocabulary()
        self.singletons_from = len(self.words)

    def fit(self, examples: Sequence[Example]) -> None:
        words: Counter[str] = Counter()
        chars: Counter[str] = Counter()
        prefixes: Counter[str] = Counter()
        suffixes: Counter[str] = Counter()
        for example in examples:
            for token in [*example.tokens, *(example.tokens_pair or ())]:
                words[normalise_word(token, self.lowercase)] += 1
                chars.update(token)
                if self.affix_features:
                    prefix, suffix = affixes(token)
                    prefixes[prefix] += 1
                    suffixes[suffix] += 1
        self.words = Vocabulary.from_counts(words, self.min_count)
        self.chars = Vocabulary.from_counts(chars, 1)
        self.prefixes = Vocabulary.from_counts(prefixes, AFFIX_MIN_COUNT)
        self.suffixes = Vocabulary.from_counts(suffixes, AFFIX_MIN_COUNT)
        # the vocabulary is sorted by falling count, so the words seen once are its last ids
        self.singletons_from = next((i for i, word in enumerate(self.words.itos[2:], 2) if words[word] == 1),
                                    len(self.words))

    def __call__(self, sentences: Sequence[Sequence[str]],
                 pairs: Sequence[Sequence[str] | None] | None = None) -> dict[str, Tensor]:
        """Row tensors of the sentences; with pairs, of every sentence of both sides (``pairs.pair_rows``), the
        row mask as ``row_mask`` and the example-level ``mask``, ``segments`` and ``fold_index``."""
        if pairs is None or all(pair is None for pair in pairs):
            return self.rows(sentences)
        rows, second = pair_rows(sentences, pairs)
        inputs = self.rows(rows)
        inputs["row_mask"] = inputs.pop("mask")
        inputs.update(fold_tensors(sentences, pairs, second, inputs["row_mask"].shape[1]))
        return inputs

    def rows(self, sentences: Sequence[Sequence[str]]) -> dict[str, Tensor]:
        """``word_ids``, ``mask`` [rows, words] and, if used, ``char_ids``, ``shape_ids`` and ``affix_ids``: one row
        per sentence."""
        mask = padding_mask(sentences)
        inputs = {"word_ids": torch.from_numpy(word_id_array(sentences, self.words.stoi, self.lowercase, mask)),
                  "mask": torch.from_numpy(mask)}
        if self.case_features:
            inputs["shape_ids"] = torch.from_numpy(shape_id_array(sentences, mask.shape[1]))
        if self.use_chars:
            inputs["char_ids"] = torch.from_numpy(char_id_array(sentences, self.chars.stoi, MAX_WORD_CHARS, mask))
        if self.affix_features:
            inputs["affix_ids"] = torch.from_numpy(affix_id_array(sentences, self.prefixes.stoi, self.suffixes.stoi, mask))
        return inputs

    def to_json(self) -> dict[str, Any]:
        return {"min_count": self.min_count, "lowercase": self.lowercase, "chars": self.use_chars,
                "case_features": self.case_features, "words": self.words.to_json(), "char_vocab": self.chars.to_json(),
                "singletons_from": self.singletons_from,
                **({"affix_features": True, "prefixes": self.prefixes.to_json(), "suffixes": self.suffixes.to_json()}
                   if self.affix_features else {})}

    def export_axes(self, sample: dict[str, Tensor]) -> dict[str, dict[int, str]]:
        axes = super().export_axes(sample)
        if "affix_ids" in axes:
            del axes["affix_ids"][2]  # a prefix and a suffix: always 2
        return axes

    def export_spec(self, directory: Any) -> dict[str, Any]:
        return {"kind": "words", **self.to_json(), "max_word_chars": MAX_WORD_CHARS}

    def load_json(self, data: dict[str, Any]) -> None:
        self.min_count, self.lowercase, self.use_chars = data["min_count"], data["lowercase"], data["chars"]
        self.case_features = data.get("case_features", False)
        self.words = Vocabulary.from_json(data["words"])
        self.chars = Vocabulary.from_json(data["char_vocab"])
        self.singletons_from = data.get("singletons_from", len(self.words))  # runs saved before: none known
        self.affix_features = data.get("affix_features", False)
        if self.affix_features:
            self.prefixes, self.suffixes = Vocabulary.from_json(data["prefixes"]), Vocabulary.from_json(data["suffixes"])


class CharCNN(nn.Module):
    """Character-level word encoder: embeddings, one convolution, max-pool (Ma & Hovy 2016)."""

    def __init__(self, num_chars: int, char_dim: int, filters: int, kernel_size: int = 3):
        super().__init__()
        self.embedding = nn.Embedding(num_chars, char_dim, padding_idx=0)
        self.conv = nn.Conv1d(char_dim, filters, kernel_size, padding=kernel_size // 2)
        self.output_dim = filters

    def forward(self, char_ids: Tensor) -> Tensor:
        batch, words, chars = char_ids.shape
        flat = char_ids.view(batch * words, chars)
        states = self.conv(self.embedding(flat).transpose(1, 2))
        states = states.masked_fill((flat == 0).unsqueeze(1), float("-inf")).amax(dim=2)
        return states.masked_fill(torch.isinf(states), 0.0).view(batch, words, -1)


class WordRepresentation(nn.Module):
    """Concatenated word embedding, character-level word vector and (optionally) shape and affix embeddings, with
    dropout.

    With ``singleton_unknown_rate`` p > 0, in training each word seen once in the training data is read as
    the unknown word with probability p (its characters and shape are kept), so the unknown word's vector
    is trained for the words a test set brings that training never saw (Lample et al. 2016, p = 0.5).
    """

    def __init__(self, featurizer: WordFeaturizer, word_dim: int, char_dim: int, char_filters: int, dropout: float,
                 singleton_unknown_rate: float = 0.0):
        super().__init__()
        self.singletons_from, self.singleton_unknown_rate = featurizer.singletons_from, singleton_unknown_rate
        self.words = nn.Embedding(len(featurizer.words), word_dim, padding_idx=0)
        self.chars = CharCNN(len(featurizer.chars), char_dim, char_filters) if featurizer.use_chars else None
        self.case = CaseEmbedding() if featurizer.case_features else None
        self.affixes = AffixEmbedding(len(featurizer.prefixes), len(featurizer.suffixes)) \
            if featurizer.affix_features else None
        self.dropout = nn.Dropout(dropout)
        self.output_dim = word_dim + sum(part.output_dim for part in (self.chars, self.case, self.affixes)
                                         if part is not None)

    def forward(self, word_ids: Tensor, char_ids: Tensor | None = None, shape_ids: Tensor | None = None,
                affix_ids: Tensor | None = None) -> Tensor:
        if self.training and self.singleton_unknown_rate > 0:
            word_ids = self.unknown_singletons(word_ids)
        parts = [self.words(word_ids)]
        if self.chars is not None and char_ids is not None:
            parts.append(self.chars(char_ids))
        if self.case is not None:
            if shape_ids is None:
                raise ValueError("an encoder with case_features needs the featurizer's shape_ids")
            parts.append(self.case(shape_ids))
        if self.affixes is not None:
            if affix_ids is None:
                raise ValueError("an encoder with affix_features needs the featurizer's affix_ids")
            parts.append(self.affixes(affix_ids))
        return self.dropout(torch.cat(parts, dim=-1))

    def unknown_singletons(self, word_ids: Tensor) -> Tensor:
        """``word_ids`` with each singleton's id replaced by the unknown word's (1) with the rate's probability."""
        drawn = torch.rand(word_ids.shape, device=word_ids.device) < self.singleton_unknown_rate
        return word_ids.masked_fill(drawn & (word_ids >= self.singletons_from), UNKNOWN_ID)


class WordLevelEncoder(Encoder):
    """Base of encoders trained from scratch: a word featurizer and word + character input vectors.

    Subclasses implement ``encode_rows``; ``forward`` folds the rows of a batch with sentence pairs
    back into one row per example (each sentence encoded alone: ``pair_encoding = "separate"``).
    """

    pair_encoding = "separate"

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.featurizer = WordFeaturizer(config.min_word_count, config.lowercase, config.chars, config.case_features,
                                         config.affix_features)

    def build_input(self) -> WordRepresentation:
        c = self.config
        embed = WordRepresentation(self.featurizer, c.word_dim, c.char_dim, c.char_filters, c.embedding_dropout,
                                   c.singleton_unknown_rate)
        if c.word_vectors is not None and c.word_vectors.freeze:
            embed.words.weight.requires_grad_(False)
        return embed

    def initialise_from_pretrained(self) -> None:
        """``encoder.word_vectors``: the vocabulary's rows from the vector file (others keep their random init)."""
        vectors = self.config.word_vectors
        if vectors is None:
            return
        from polytask.data.word_vectors import read_word_vectors

        table = self.embed.words.weight
        read = read_word_vectors(vectors.path, vectors.format, self.featurizer.words.itos, table.shape[1])
        with torch.no_grad():
            table[read.found] = read.vectors[read.found].to(table.dtype)

    @abstractmethod
    def encode_rows(self, word_ids: Tensor, mask: Tensor, char_ids: Tensor | None = None,
                    shape_ids: Tensor | None = None, affix_ids: Tensor | None = None) -> list[Tensor]:
        """Every layer's states ``[rows, words, dim]``, one row per sentence."""

    def forward(self, word_ids: Tensor, mask: Tensor, char_ids: Tensor | None = None, shape_ids: Tensor | None = None,
                affix_ids: Tensor | None = None, row_mask: Tensor | None = None, fold_index: Tensor | None = None,
                segments: Tensor | None = None) -> EncoderOutput:
        if fold_index is None:
            return EncoderOutput(layers=self.encode_chunks(word_ids, mask, char_ids, shape_ids, affix_ids), mask=mask)
        layers = self.encode_chunks(word_ids, row_mask, char_ids, shape_ids, affix_ids)
        return EncoderOutput(layers=[fold_rows(layer, fold_index, mask) for layer in layers], mask=mask,
                             segments=segments)

    def encode_chunks(self, word_ids: Tensor, mask: Tensor, char_ids: Tensor | None = None,
                      shape_ids: Tensor | None = None, affix_ids: Tensor | None = None) -> list[Tensor]:
        """``encode_rows`` over the rows sorted by length in chunks of ``encoder.chunk_rows``, each cut to its longest.

        Rows are encoded independently, so every real word gets the states of one call (to float rounding;
        why: ``chunks``); positions past a chunk's longest row come out 0. ``chunk_rows`` null: chunks of 32
        rows. A traced export sees a batch no larger than a chunk: one call, valid for any batch size.
        """
        rows = self.config.chunk_rows or DEFAULT_CHUNK_ROWS
        if word_ids.shape[0] <= rows:
            return self.encode_rows(word_ids, mask, char_ids, shape_ids, affix_ids)
        sorted_rows = SortedChunks(mask.sum(dim=1), rows)
        chunks = [self.encode_rows(*[None if t is None else t[part, :used]
                                     for t in (word_ids, mask, char_ids, shape_ids, affix_ids)])
                  for part, used in sorted_rows]
        position, width = sorted_rows.position(), mask.shape[1]
        return [torch.cat([nn.functional.pad(chunk[layer], (0, 0, 0, width - chunk[layer].shape[1]))
                           for chunk in chunks])[position] for layer in range(len(chunks[0]))]
