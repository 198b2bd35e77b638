"""Chunk (span) extraction and span precision/recall/F1, exactly as CoNLL's ``conlleval``.

Why: published chunking/NER F1 scores are conlleval scores, so ours must agree with it on
every input, ill-formed predictions (``I-X`` after ``O``, type switches) included.

Reference: the CoNLL-2000 evaluation script ``conlleval.pl`` (Tjong Kim Sang & Buchholz,
2000), functions ``startOfChunk``/``endOfChunk``. conlleval.pl predates IOBES and knows no
``S-`` tag; for ``iobes`` we use the extension of its rules that the Python ports use
(``conlleval.py``, seqeval's default mode): a chunk always ends after ``E-``/``S-`` and
always starts at ``B-``/``S-``. For ``iob1``/``iob2`` (which use only ``B-``, ``I-`` and
``O``) those extra rules never fire, so the result is conlleval.pl's.

Spans are ``(type, start, end)`` with ``end`` exclusive, so ``tokens[start:end]`` is the
span. Scores are percentages in [0, 100], as conlleval prints them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Span = tuple[str, int, int]

SCHEMES: dict[str, str] = {"iob1": "iob1", "iob2": "iob2", "bio": "iob2", "iobes": "iobes", "bioes": "iobes"}
_PREFIXES: dict[str, frozenset[str]] = {
    "iob1": frozenset("BI"),
    "iob2": frozenset("BI"),
    "iobes": frozenset("BIES"),
}


def canonical_scheme(scheme: str) -> str:
    """The canonical name (``iob1``, ``iob2``, ``iobes``) of a scheme or its alias."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown tagging scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    return SCHEMES[scheme]


def split_tag(tag: str, scheme: str) -> tuple[str, str]:
    """``(prefix, type)`` of a tag, as conlleval splits it (at the first ``-``); ``O`` → ``("O", "")``.

    Why: a tag outside the scheme (``S-X`` under iob2, ``PER`` without prefix) would be
    silently mis-chunked by conlleval, so it is rejected with a ValueError instead.
    """
    if tag == "O":
        return "O", ""
    prefix, dash, type_ = tag.partition("-")
    if not dash or not type_ or prefix not in _PREFIXES[canonical_scheme(scheme)]:
        allowed = ", ".join(f"{p}-TYPE" for p in sorted(_PREFIXES[canonical_scheme(scheme)]))
        raise ValueError(f"tag {tag!r} is not valid in scheme {scheme!r}: expected O, {allowed}")
    return prefix, type_


def _chunk_ends(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    """conlleval's ``endOfChunk``: did a chunk end between the previous and this token?"""
    if prev_tag in ("E", "S"):  # IOBES extension
        return True
    if prev_tag in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev_tag != "O" and prev_type != type_


def _chunk_starts(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    """conlleval's ``startOfChunk``: did a chunk start at this token?"""
    if tag in ("B", "S"):
        return True
    if prev_tag in ("E", "S", "O") and tag in ("I", "E"):
        return True
    return tag != "O" and prev_type != type_


_SPLITS: dict[str, dict[str, tuple[str, str]]] = {}


def extract_spans(tags: Sequence[str], scheme: str) -> list[Span]:
    """The chunks of one tag sequence as ``(type, start, end)``, end exclusive, conlleval's way."""
    spans: list[Span] = []
    prev_tag, prev_type, start = "O", "", 0
    splits = _SPLITS.setdefault(scheme, {})  # a label space has few tags: split each once
    for i, tag in enumerate([*tags, "O"]):  # the trailing O closes a final chunk, like a sentence boundary
        parts = splits.get(tag)
        if parts is None:
            parts = splits[tag] = split_tag(tag, scheme)
        prefix, type_ = parts
        if _chunk_ends(prev_tag, prefix, prev_type, type_):
            spans.append((prev_type, start, i))
        if _chunk_starts(prev_tag, prefix, prev_type, type_):
            start = i
        prev_tag, prev_type = prefix, type_
    return spans


@dataclass
class SpanCounts:
    """Chunk counts for one type (or all types): correct, in gold and predicted."""

    correct: int = 0
    gold: int = 0
    predicted: int = 0

    def scores(self) -> dict[str, float]:
        """Precision, recall and F1 in percent, with conlleval's 0 for an empty denominator."""
        precision = 100.0 * self.correct / self.predicted if self.predicted else 0.0
        recall = 100.0 * self.correct / self.gold if self.gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": precision, "recall": recall, "f1": f1}


def count_spans(
    gold_seqs: Sequence[Sequence[str]], pred_seqs: Sequence[Sequence[str]], scheme: str
) -> dict[str, SpanCounts]:
    """Per-type chunk counts over aligned gold/predicted sentences (types sorted)."""
    if len(gold_seqs) != len(pred_seqs):
        raise ValueError(f"{len(gold_seqs)} gold sentences but {len(pred_seqs)} predicted")
    counts: dict[str, SpanCounts] = {}
    for i, (gold, pred) in enumerate(zip(gold_seqs, pred_seqs)):
        if len(gold) != len(pred):
            raise ValueError(f"sentence {i}: {len(gold)} gold tags but {len(pred)} predicted")
        gold_spans, pred_spans = set(extract_spans(gold, scheme)), set(extract_spans(pred, scheme))
        for type_, _, _ in gold_spans:
            counts.setdefault(type_, SpanCounts()).gold += 1
        for type_, _, _ in pred_spans:
            counts.setdefault(type_, SpanCounts()).predicted += 1
        for type_, _, _ in gold_spans & pred_spans:
            counts[type_].correct += 1
    return dict(sorted(counts.items()))


def span_prf(gold_seqs: Sequence[Sequence[str]], pred_seqs: Sequence[Sequence[str]], scheme: str) -> dict[str, float]:
    """Micro precision, recall and F1 (percent) of chunks over all sentences, as conlleval."""
    per_type = count_spans(gold_seqs, pred_seqs, scheme).values()
    total = SpanCounts(
        correct=sum(c.correct for c in per_type),
        gold=sum(c.gold for c in per_type),
        predicted=sum(c.predicted for c in per_type),
    )
    return total.scores()


def span_prf_by_type(
    gold_seqs: Sequence[Sequence[str]], pred_seqs: Sequence[Sequence[str]], scheme: str
) -> dict[str, dict[str, float]]:
    """Per-type precision, recall, F1 (percent) and counts, for reports (conlleval's per-type lines)."""
    return {
        type_: {**counts.scores(), "correct": counts.correct, "gold": counts.gold, "predicted": counts.predicted}
        for type_, counts in count_spans(gold_seqs, pred_seqs, scheme).items()
    }
