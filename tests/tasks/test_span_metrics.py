"""Span extraction and span P/R/F1 agree with conlleval (hand-worked) and with seqeval."""

from __future__ import annotations

import random

import pytest
from seqeval.metrics import f1_score, precision_score, recall_score
from seqeval.metrics.sequence_labeling import precision_recall_fscore_support

from polytask.tasks.metrics import (
    canonical_scheme,
    extract_spans,
    span_prf,
    span_prf_by_type,
)

TYPES = ["PER", "LOC", "ORG"]


# --- hand-worked chunks (conlleval's startOfChunk/endOfChunk) ----------------------------
@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),
        ([], []),
        (["O", "O"], []),
        # I- after O starts a chunk; B- of the same type splits; a type switch splits.
        (["O", "I-PER", "I-PER", "B-PER", "I-LOC", "O"], [("PER", 1, 3), ("PER", 3, 4), ("LOC", 4, 5)]),
        # I- at sentence start, and a chunk running to the end of the sentence.
        (["I-ORG", "I-ORG"], [("ORG", 0, 2)]),
        (["B-PER", "B-PER", "I-LOC"], [("PER", 0, 1), ("PER", 1, 2), ("LOC", 2, 3)]),
        # Types may contain dashes; conlleval splits at the first one.
        (["B-MISC-X", "I-MISC-X"], [("MISC-X", 0, 2)]),
    ],
)
def test_iob2_chunks(tags: list[str], expected: list[tuple[str, int, int]]) -> None:
    assert extract_spans(tags, "iob2") == expected
    assert extract_spans(tags, "bio") == expected


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        # IOB1: I- opens chunks, B- only separates adjacent chunks of one type.
        (
            ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG"],
            [("PER", 0, 2), ("PER", 2, 3), ("LOC", 4, 5), ("ORG", 5, 6)],
        ),
        # conlleval accepts a B- after O in IOB1 input too.
        (["O", "B-PER", "I-PER"], [("PER", 1, 3)]),
    ],
)
def test_iob1_chunks(tags: list[str], expected: list[tuple[str, int, int]]) -> None:
    assert extract_spans(tags, "iob1") == expected


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (
            ["S-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "O", "B-ORG", "E-ORG", "E-ORG"],
            [("PER", 0, 1), ("PER", 1, 2), ("LOC", 2, 5), ("ORG", 6, 8), ("ORG", 8, 9)],
        ),
        # Ill-formed: unterminated B-, I- opening a chunk, E- then I-, B- then S-, type switch.
        (["B-PER", "O"], [("PER", 0, 1)]),
        (["I-PER", "E-PER"], [("PER", 0, 2)]),
        (["E-PER", "I-PER"], [("PER", 0, 1), ("PER", 1, 2)]),
        (["B-PER", "S-PER"], [("PER", 0, 1), ("PER", 1, 2)]),
        (["B-PER", "E-LOC"], [("PER", 0, 1), ("LOC", 1, 2)]),
    ],
)
def test_iobes_chunks(tags: list[str], expected: list[tuple[str, int, int]]) -> None:
    assert extract_spans(tags, "iobes") == expected
    assert extract_spans(tags, "bioes") == expected


@pytest.mark.parametrize(
    ("tag", "scheme"), [("S-PER", "iob2"), ("E-PER", "iob1"), ("PER", "iob2"), ("B-", "iobes"), ("X-PER", "iobes")]
)
def test_tags_outside_the_scheme_are_rejected(tag: str, scheme: str) -> None:
    with pytest.raises(ValueError, match="not valid in scheme"):
        extract_spans(["O", tag], scheme)


def test_unknown_scheme() -> None:
    with pytest.raises(ValueError, match="unknown tagging scheme"):
        canonical_scheme("iob3")


def test_hand_computed_scores() -> None:
    gold = [["B-PER", "I-PER", "O"], ["B-LOC"]]
    pred = [["B-PER", "O", "B-ORG"], ["B-LOC"]]
    # gold chunks: PER(0,2), LOC; predicted: PER(0,1), ORG, LOC; correct: LOC only.
    scores = span_prf(gold, pred, "iob2")
    assert scores["precision"] == pytest.approx(100 / 3)
    assert scores["recall"] == pytest.approx(50.0)
    assert scores["f1"] == pytest.approx(2 * (100 / 3) * 50 / (100 / 3 + 50))
    by_type = span_prf_by_type(gold, pred, "iob2")
    assert list(by_type) == ["LOC", "ORG", "PER"]
    assert by_type["LOC"]["f1"] == 100.0
    assert (by_type["ORG"]["precision"], by_type["ORG"]["recall"], by_type["ORG"]["gold"]) == (0.0, 0.0, 0)
    assert (by_type["PER"]["correct"], by_type["PER"]["gold"], by_type["PER"]["predicted"]) == (0, 1, 1)


def test_no_chunks_scores_zero_like_conlleval() -> None:
    assert span_prf([["O"]], [["O"]], "iob2") == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_misaligned_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="sentence 0"):
        span_prf([["O", "O"]], [["O"]], "iob2")
    with pytest.raises(ValueError, match="gold sentences"):
        span_prf([["O"]], [], "iob2")


# --- agreement with seqeval's default (conlleval-compatible) mode ------------------------
def _random_tags(rng: random.Random, length: int, prefixes: str) -> list[str]:
    return ["O" if rng.random() < 0.4 else f"{rng.choice(prefixes)}-{rng.choice(TYPES)}" for _ in range(length)]


def _random_corpus(rng: random.Random, prefixes: str) -> tuple[list[list[str]], list[list[str]]]:
    gold, pred = [], []
    for _ in range(rng.randint(1, 6)):
        tags = _random_tags(rng, rng.randint(0, 12), prefixes)
        noisy = _random_tags(rng, len(tags), prefixes)
        # Mostly copy gold so that many chunks match; the rest is arbitrary (ill-formed) noise.
        keep = rng.random()
        gold.append(tags)
        pred.append([t if rng.random() < keep else n for t, n in zip(tags, noisy)])
    return gold, pred


# seqeval's default mode is the Python port of conlleval's chunk rules (plus S-/E-), so it
# handles IOB1 input exactly like conlleval: no separate expected values are needed.
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize(("scheme", "prefixes"), [("iob1", "BI"), ("iob2", "BI"), ("iobes", "BIES")])
def test_agrees_with_seqeval_on_random_sequences(scheme: str, prefixes: str) -> None:
    rng = random.Random(1234)
    for _ in range(400):
        gold, pred = _random_corpus(rng, prefixes)
        ours = span_prf(gold, pred, scheme)
        assert ours["precision"] / 100 == pytest.approx(precision_score(gold, pred), abs=1e-9)
        assert ours["recall"] / 100 == pytest.approx(recall_score(gold, pred), abs=1e-9)
        assert ours["f1"] / 100 == pytest.approx(f1_score(gold, pred), abs=1e-9)

        precision, recall, f1, support = precision_recall_fscore_support(gold, pred, average=None)
        by_type = span_prf_by_type(gold, pred, scheme)
        assert [by_type[t]["precision"] / 100 for t in by_type] == pytest.approx(list(precision), abs=1e-9)
        assert [by_type[t]["recall"] / 100 for t in by_type] == pytest.approx(list(recall), abs=1e-9)
        assert [by_type[t]["f1"] / 100 for t in by_type] == pytest.approx(list(f1), abs=1e-9)
        assert [by_type[t]["gold"] for t in by_type] == list(support)


def test_iob1_and_iob2_chunk_identically() -> None:
    # conlleval has one set of rules; the scheme only decides which prefixes are valid.
    rng = random.Random(7)
    for _ in range(200):
        tags = _random_tags(rng, rng.randint(0, 15), "BI")
        assert extract_spans(tags, "iob1") == extract_spans(tags, "iob2")


# --- agreement with a line-by-line port of conlleval.pl's counting loop ------------------
def _conlleval_end(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    end = (prev_tag, tag) in {("B", "B"), ("B", "O"), ("I", "B"), ("I", "O"), ("E", "E"), ("E", "I"), ("E", "O")}
    return end or (prev_tag not in ("O", ".") and prev_type != type_) or prev_tag in ("[", "]")


def _conlleval_start(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    start = (prev_tag, tag) in {("B", "B"), ("I", "B"), ("O", "B"), ("O", "I"), ("E", "E"), ("E", "I"), ("O", "E")}
    return start or (tag not in ("O", ".") and prev_type != type_) or tag in ("[", "]")


def _conlleval_counts(gold: list[list[str]], pred: list[list[str]]) -> tuple[int, int, int]:
    """conlleval.pl's main loop: (correctChunk, foundCorrect, foundGuessed); a blank line is O/O."""

    def split(tag: str) -> tuple[str, str]:
        prefix, dash, type_ = tag.partition("-")
        return (prefix, type_) if dash else (tag, "")

    lines = [pair for g, p in zip(gold, pred) for pair in [*zip(g, p), ("O", "O")]]
    correct_chunk = found_correct = found_guessed = 0
    in_correct = False
    last_c, last_ct, last_g, last_gt = "O", "", "O", ""
    for correct_tag, guessed_tag in lines:
        c, ct = split(correct_tag)
        g, gt = split(guessed_tag)
        if in_correct:
            end_c, end_g = _conlleval_end(last_c, c, last_ct, ct), _conlleval_end(last_g, g, last_gt, gt)
            if end_c and end_g and last_gt == last_ct:
                in_correct = False
                correct_chunk += 1
            elif end_c != end_g or gt != ct:
                in_correct = False
        start_c, start_g = _conlleval_start(last_c, c, last_ct, ct), _conlleval_start(last_g, g, last_gt, gt)
        if start_c and start_g and gt == ct:
            in_correct = True
        found_correct += start_c
        found_guessed += start_g
        last_c, last_ct, last_g, last_gt = c, ct, g, gt
    if in_correct:
        correct_chunk += 1
    return correct_chunk, found_correct, found_guessed


@pytest.mark.parametrize("scheme", ["iob1", "iob2"])
def test_agrees_with_conlleval_pl_loop(scheme: str) -> None:
    rng = random.Random(99)
    for _ in range(400):
        gold, pred = _random_corpus(rng, "BI")
        correct, found_correct, found_guessed = _conlleval_counts(gold, pred)
        p = 100.0 * correct / found_guessed if found_guessed else 0.0
        r = 100.0 * correct / found_correct if found_correct else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        assert span_prf(gold, pred, scheme) == pytest.approx({"precision": p, "recall": r, "f1": f}, abs=1e-9)
