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


@dataclass(frozen=True)
class PairTemplate:
    """How a tokenizer frames a sentence pair, ``prefix A middle B suffix`` (BERT: ``[CLS] A [SEP] B [SEP]``).

    ``types`` are the token type (segment) ids of the five parts, ``(prefix, A, middle, B, suffix)``,
    for models that take them, else None. ``capacity`` is the pieces of A and B that fit in one input.
    """

    prefix: list[int]
    middle: list[int]
    suffix: list[int]
    types: tuple[list[int], int, list[int], int, list[int]] | None
    capacity: int


def truncate_longest_first(first: int, second: int, capacity: int) -> tuple[int, int]:
    """Pieces kept of a pair of ``first`` and ``second`` pieces so that both fit in ``capacity``.

    Hugging Face fast tokenizers' ``truncation="longest_first"``: a sentence shorter than half the
    capacity is kept whole and the other takes the rest; otherwise the longer takes the larger half
    (on a tie, the second sentence).
    """
    if first + second <= capacity:
        return first, second
    half = capacity // 2
    if min(first, second) <= half:
        return (first, capacity - first) if first <= second else (capacity - second, second)
    return (capacity - half, half) if first > second else (half, capacity - half)


@dataclass
class _Rows:
    """The transformer rows of a batch as they are built: ids, token types, and per example its pieces' places."""

    ids: list[list[int]]
    types: list[list[int]]
    places: list[list[tuple[int, int]]]  # per example, per piece: (row, column)
    spans: list[tuple[list[int], list[int], list[bool], list[int]]]  # per example: starts, ends, kept, segment


def _single_rows(rows: _Rows, p: WordPieces, prefix: list[int], suffix: list[int], capacity: int, stride: int) -> None:
    from polytask.data.windows import plan_windows

    plan = plan_windows(len(p.ids), capacity, stride)
    base = len(rows.ids)
    for s, e in plan.windows:
        rows.ids.append(prefix + p.ids[s:e] + suffix)
        rows.types.append([0] * len(rows.ids[-1]))
    rows.places.append([(base + w, len(prefix) + piece - plan.windows[w][0]) for piece, w in enumerate(plan.source)])
    rows.spans.append((list(p.starts), list(p.ends), [True] * len(p.starts), [0] * len(p.starts)))


def _pair_row(rows: _Rows, a: WordPieces, b: WordPieces, template: PairTemplate) -> None:
    """One row holding both sentences, truncated longest-first; a word whose pieces are all cut is masked."""
    keep_a, keep_b = truncate_longest_first(len(a.ids), len(b.ids), template.capacity)
    row = len(rows.ids)
    rows.ids.append(template.prefix + a.ids[:keep_a] + template.middle + b.ids[:keep_b] + template.suffix)
    prefix_t, type_a, middle_t, type_b, suffix_t = template.types or ([0] * len(template.prefix), 0,
                                                                      [0] * len(template.middle), 0,
                                                                      [0] * len(template.suffix))
    rows.types.append(prefix_t + [type_a] * keep_a + middle_t + [type_b] * keep_b + suffix_t)
    second = len(template.prefix) + keep_a + len(template.middle)
    rows.places.append([(row, len(template.prefix) + k) for k in range(keep_a)] +
                       [(row, second + k) for k in range(keep_b)])
    starts, ends, kept, segment = [], [], [], []
    for pieces, keep, offset, side in ((a, keep_a, 0, 0), (b, keep_b, keep_a, 1)):
        for start, end in zip(pieces.starts, pieces.ends):
            inside = start < keep
            starts.append(offset + start if inside else 0)
            ends.append(offset + min(end, keep) if inside else 1)
            kept.append(inside)
            segment.append(side)
    rows.spans.append((starts, ends, kept, segment))


def window_arrays(pieces: Sequence[WordPieces], prefix: Sequence[int], suffix: Sequence[int], pad: int,
                  capacity: int, stride: int, pairs: Sequence[WordPieces | None] | None = None,
                  template: PairTemplate | None = None) -> dict:
    """The transformer's input arrays (numpy, int64/bool) for sentences split into pieces.

    ``input_ids``/``attention_mask`` [windows, length] (windows of at most ``capacity`` pieces,
    ``stride`` apart, each framed by the special tokens); ``piece_index`` [batch, pieces], the flat
    position in the windows each piece is read from (its most central window); ``word_start``/
    ``word_end``/``mask`` [batch, words].

    With ``pairs`` (``pairs[i]``: the second sentence of example i, or None), a pair is one row framed
    by ``template``, truncated longest-first (never windowed: a window would hold part of one
    sentence), and its words are its first sentence's, then its second's; the arrays then also hold
    ``segments`` [batch, words] and, where the template has token types, ``token_type_ids``.
    """
    import numpy as np

    prefix, suffix = list(prefix), list(suffix)
    pairs = list(pairs) if pairs is not None and any(pair is not None for pair in pairs) else None
    if pairs is not None and template is None:
        raise ValueError("sentence pairs need the tokenizer's PairTemplate")
    rows = _Rows([], [], [], [])
    for i, p in enumerate(pieces):
        if pairs is not None and pairs[i] is not None:
            _pair_row(rows, p, pairs[i], template)
        else:
            _single_rows(rows, p, prefix, suffix, capacity, stride)
    width = max(len(r) for r in rows.ids)
    input_ids = np.full((len(rows.ids), width), pad, dtype=np.int64)
    attention_mask = np.zeros((len(rows.ids), width), dtype=np.int64)
    token_type_ids = np.zeros((len(rows.ids), width), dtype=np.int64)
    for i, (row, types) in enumerate(zip(rows.ids, rows.types)):
        input_ids[i, : len(row)] = row
        attention_mask[i, : len(row)] = 1
        token_type_ids[i, : len(row)] = types
    batch = len(pieces)
    n_pieces = max((len(places) for places in rows.places), default=0)
    n_words = max((len(span[0]) for span in rows.spans), default=0)
    piece_index = np.zeros((batch, max(n_pieces, 1)), dtype=np.int64)
    word_start = np.zeros((batch, max(n_words, 1)), dtype=np.int64)
    word_end = np.ones((batch, max(n_words, 1)), dtype=np.int64)
    mask = np.zeros((batch, max(n_words, 1)), dtype=bool)
    segments = np.zeros((batch, max(n_words, 1)), dtype=np.int64)
    for i, (places, (starts, ends, kept, segment)) in enumerate(zip(rows.places, rows.spans)):
        piece_index[i, : len(places)] = [row * width + column for row, column in places]
        word_start[i, : len(starts)] = starts
        word_end[i, : len(ends)] = ends
        mask[i, : len(kept)] = kept
        segments[i, : len(segment)] = segment
    arrays = {"input_ids": input_ids, "attention_mask": attention_mask, "piece_index": piece_index,
              "word_start": word_start, "word_end": word_end, "mask": mask}
    if pairs is not None:
        arrays["segments"] = segments
        if template.types is not None:
            arrays["token_type_ids"] = token_type_ids
    return arrays
