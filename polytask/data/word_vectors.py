"""Reading pretrained word vectors (GloVe, word2vec text, fastText ``.vec``) for a vocabulary.

Why: a from-scratch encoder learns far faster from pretrained word embeddings (Lample et al.
2016 used skip-n-gram vectors; Ma & Hovy 2016 GloVe). Vector files hold millions of words, so
the file is read line by line and only the vocabulary's words are kept (memory: two vectors per
vocabulary word at most, never the file). A word missing from the file falls back to the first
vector whose word matches it lower-cased (digits as 0, as in the vocabulary); words found
neither way keep their random initialisation.

Formats: ``glove``: ``word v1 ... vD`` per line, no header; ``word2vec`` (text format) and
``fasttext`` (``.vec``): the same after a header line ``N D``. A ``.gz`` file is read through gzip.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from polytask.data.vocab import normalise_word
from polytask.errors import DataError

FORMATS: tuple[str, ...] = ("glove", "word2vec", "fasttext")
_HEADER = {"glove": False, "word2vec": True, "fasttext": True}


@dataclass
class WordVectors:
    """Vectors ``[V, D]`` for a vocabulary's words and which rows the file gave (exactly or lower-cased)."""

    vectors: Tensor
    found: Tensor
    exact: int
    lowercased: int


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield number, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                raise DataError("not UTF-8 text", file=str(path), line=number) from None


def read_word_vectors(path: str | Path, format: str, words: Sequence[str], dim: int,
                      skip: int = 2) -> WordVectors:
    """Vectors of ``words`` (a vocabulary's strings by id; the first ``skip`` are padding/unknown, left zero).

    A missing file, a dimension other than ``dim`` or a malformed line is a one-line ``DataError``
    naming ``file:line``.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown word-vector format {format!r}; choose one of {', '.join(FORMATS)}")
    path = Path(path)
    if not path.is_file():
        raise DataError(f"word vectors file not found: {path}")
    exact_ids = {word: i for i, word in enumerate(words) if i >= skip}
    lower_ids: dict[str, list[int]] = {}
    for word, i in exact_ids.items():
        lower_ids.setdefault(normalise_word(word, lowercase=True), []).append(i)
    vectors = torch.zeros(len(words), dim)
    exact: set[int] = set()
    lowered: set[int] = set()
    lines = _lines(path)
    if _HEADER[format]:
        _check_header(next(lines, (1, "")), format, dim, path)
    for number, line in lines:
        if not line.strip():
            continue
        parts = line.rstrip().split(" ")
        _check_length(parts, format, dim, path, number, first=number == 1)
        word = " ".join(parts[:-dim])  # a few GloVe words contain spaces
        i = exact_ids.get(word)
        candidates = [j for j in lower_ids.get(normalise_word(word, True), ()) if j != i and j not in exact and j not in lowered]
        if i is None and not candidates:
            continue
        vector = _parse(parts[-dim:], path, number)
        if i is not None:
            vectors[i] = vector
            exact.add(i)
            lowered.discard(i)
        for j in candidates:
            vectors[j] = vector
            lowered.add(j)
    found = torch.zeros(len(words), dtype=torch.bool)
    found[sorted(exact | lowered)] = True
    return WordVectors(vectors, found, len(exact), len(lowered))


def _check_length(parts: Sequence[str], format: str, dim: int, path: Path, number: int, first: bool) -> None:
    """A word and ``dim`` numbers (GloVe: the first line fixes the dimension; later words may hold spaces)."""
    numbers = len(parts) - 1
    if numbers == dim or (numbers > dim and format == "glove" and not first):
        return
    if first and format == "glove" and numbers == 1:
        raise DataError(f"a header line 'N D'? then use format word2vec or fasttext (encoder.word_dim is {dim})",
                        file=str(path), line=number)
    what = "the vectors have" if first and format == "glove" else "the line has"
    raise DataError(f"{what} {numbers} numbers after the word, encoder.word_dim is {dim}", file=str(path), line=number)


def _check_header(first: tuple[int, str], format: str, dim: int, path: Path) -> None:
    number, line = first
    parts = line.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise DataError(f"format {format!r} starts with a header line 'N D' (count, dimension), got {line[:40]!r}"
                        " (no header? then use format glove)", file=str(path), line=number)
    if int(parts[1]) != dim:
        raise DataError(f"the vectors have {parts[1]} dimensions, encoder.word_dim is {dim}", file=str(path), line=number)


def _parse(numbers: Sequence[str], path: Path, line: int) -> Tensor:
    try:
        return torch.tensor([float(x) for x in numbers])
    except ValueError:
        bad = next(x for x in numbers if not _is_float(x))
        raise DataError(f"{bad[:20]!r} is not a number", file=str(path), line=line) from None


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
