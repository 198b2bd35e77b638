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


def window_arrays(pieces: Sequence[WordPieces], prefix: Sequence[int], suffix: Sequence[int], pad: int,
                  capacity: int, stride: int) -> dict:
    """The transformer's input arrays (numpy, int64/bool) for sentences split into pieces.

    ``input_ids``/``attention_mask`` [windows, length] (windows of at most ``capacity`` pieces,
    ``stride`` apart, each framed by the special tokens); ``piece_index`` [batch, pieces], the flat
    position in the windows each piece is read from (its most central window); ``word_start``/
    ``word_end``/``mask`` [batch, words].
    """
    import numpy as np

    from polytask.data.windows import plan_windows

    prefix, suffix = list(prefix), list(suffix)
    plans = [plan_windows(len(p.ids), capacity, stride) for p in pieces]
    rows = [prefix + p.ids[s:e] + suffix for p, plan in zip(pieces, plans) for s, e in plan.windows]
    width = max(len(r) for r in rows)
    input_ids = np.full((len(rows), width), pad, dtype=np.int64)
    attention_mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = row
        attention_mask[i, : len(row)] = 1
    batch = len(pieces)
    n_pieces = max((len(p.ids) for p in pieces), default=0)
    n_words = max((len(p.starts) for p in pieces), default=0)
    piece_index = np.zeros((batch, max(n_pieces, 1)), dtype=np.int64)
    word_start = np.zeros((batch, max(n_words, 1)), dtype=np.int64)
    word_end = np.ones((batch, max(n_words, 1)), dtype=np.int64)
    mask = np.zeros((batch, max(n_words, 1)), dtype=bool)
    base = 0
    for i, (p, plan) in enumerate(zip(pieces, plans)):
        piece_index[i, : len(p.ids)] = [(base + w) * width + len(prefix) + piece - plan.windows[w][0]
                                        for piece, w in enumerate(plan.source)]
        word_start[i, : len(p.starts)] = p.starts
        word_end[i, : len(p.ends)] = p.ends
        mask[i, : len(p.starts)] = True
        base += len(plan.windows)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "piece_index": piece_index,
            "word_start": word_start, "word_end": word_end, "mask": mask}
