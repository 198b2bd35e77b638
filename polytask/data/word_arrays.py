"""Word, character, affix and shape ids of a batch of sentences as padded numpy arrays, torch-free.

Why one implementation: the from-scratch featurizer (``models/encoders/words.py``) and the ONNX
runtime (``serving/onnx_predictor.py``) must give a model the same ids, and both run on every
request a server answers, so the lookup is vectorised (one flat pass, one scatter per array)
rather than one small tensor per word.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from polytask.data.vocab import normalise_word
from polytask.data.word_shapes import SHAPE_IDS, word_shape

UNKNOWN_ID = 1
"""The id of a word or character outside its vocabulary (``Vocabulary``'s ``<unk>``)."""

AFFIX_CHARS = 3
"""Characters in a word's prefix and in its suffix (``affix_id_array``; a shorter word is its own affixes)."""


def affixes(word: str) -> tuple[str, str]:
    """The prefix and suffix ``affix_id_array`` looks up: the digit-normalised, lower-cased word's first and
    last ``AFFIX_CHARS`` characters."""
    word = normalise_word(word, lowercase=True)
    return word[:AFFIX_CHARS], word[-AFFIX_CHARS:]


def padding_mask(sentences: Sequence[Sequence[str]]) -> np.ndarray:
    """``[batch, max(length, 1)]``: True where a sentence has a word."""
    lengths = np.fromiter((len(s) for s in sentences), dtype=np.int64, count=len(sentences))
    width = max(int(lengths.max(initial=0)), 1)
    return np.arange(width)[None, :] < lengths[:, None]


def word_id_array(sentences: Sequence[Sequence[str]], words: Mapping[str, int], lowercase: bool,
                  mask: np.ndarray) -> np.ndarray:
    """``[batch, width]`` word ids (digits normalised, optionally lower-cased; 0 is padding)."""
    flat = [words.get(normalise_word(w, lowercase), UNKNOWN_ID) for s in sentences for w in s]
    ids = np.zeros(mask.shape, dtype=np.int64)
    ids[mask] = flat  # boolean indexing fills row by row: the flat order
    return ids


def char_id_array(sentences: Sequence[Sequence[str]], chars: Mapping[str, int], max_word_chars: int,
                  mask: np.ndarray) -> np.ndarray:
    """``[batch, width, chars]`` character ids of each word's first ``max_word_chars`` characters (0 is padding)."""
    words = [w[:max_word_chars] for s in sentences for w in s]
    lengths = np.fromiter((len(w) for w in words), dtype=np.int64, count=len(words))
    width = max(int(lengths.max(initial=0)), 1)
    per_word = np.zeros((len(words), width), dtype=np.int64)
    per_word[np.arange(width)[None, :] < lengths[:, None]] = [chars.get(c, UNKNOWN_ID) for w in words for c in w]
    ids = np.zeros((*mask.shape, width), dtype=np.int64)
    ids[mask] = per_word
    return ids


def affix_id_array(sentences: Sequence[Sequence[str]], prefixes: Mapping[str, int], suffixes: Mapping[str, int],
                   mask: np.ndarray) -> np.ndarray:
    """``[batch, width, 2]`` prefix and suffix ids of each word (``affixes``; 0 is padding, 1 an unknown affix)."""
    flat = [affixes(w) for s in sentences for w in s]
    ids = np.zeros((*mask.shape, 2), dtype=np.int64)
    ids[mask] = np.array([[prefixes.get(p, UNKNOWN_ID), suffixes.get(x, UNKNOWN_ID)] for p, x in flat],
                         dtype=np.int64).reshape(-1, 2)
    return ids


def shape_id_array(sentences: Sequence[Sequence[str]], width: int) -> np.ndarray:
    """``[batch, width]`` shape ids (``word_shapes.SHAPE_IDS``; 0 past each sentence's end)."""
    ids = np.zeros((len(sentences), width), dtype=np.int64)
    clipped = [s[:width] for s in sentences]
    ids[np.arange(width)[None, :] < np.array([len(s) for s in clipped], dtype=np.int64)[:, None]] = \
        [SHAPE_IDS[word_shape(w)] for s in clipped for w in s]
    return ids
