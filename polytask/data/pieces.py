"""Words to sub-word pieces: each word's span of pieces, torch-free (shared by the transformer featurizer and the ONNX runtime).

A word the tokenizer turns into no piece at all (an empty string, a lone zero-width or control
character) is given one *placeholder piece* (the tokenizer's unknown token), so it is encoded in
its context like any unknown word and never borrows a neighbour's state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class WordPieces:
    """One sentence as pieces (no special tokens) and each word's piece span ``[starts[i], ends[i])``."""

    ids: list[int]
    starts: list[int]
    ends: list[int]


def group_pieces(piece_ids: Sequence[int], word_ids: Sequence[int | None], words: int, placeholder: int) -> WordPieces:
    """The pieces of a tokenised sentence (``word_ids[k]``: the word of piece k, None for special tokens) by word."""
    per_word: list[list[int]] = [[] for _ in range(words)]
    for piece, word in zip(piece_ids, word_ids):
        if word is not None:
            per_word[word].append(piece)
    ids: list[int] = []
    starts, ends = [], []
    for pieces in per_word:
        starts.append(len(ids))
        ids.extend(pieces or [placeholder])
        ends.append(len(ids))
    return WordPieces(ids, starts, ends)
