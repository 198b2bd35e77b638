"""Accuracy and F1 metrics for single- and multi-label classification, in percent.

Why: every polytask accuracy/F1 is reported in percent (0-100), like conlleval, so that
task reports and the model-selection score read the same way for every task type.
Each function raises ValueError on empty input: no value would be meaningful.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Hashable, Sequence


def _check_aligned(gold: Sequence[object], predicted: Sequence[object]) -> None:
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predicted")
    if not gold:
        raise ValueError("no examples to score")


def accuracy(gold: Sequence[Hashable], predicted: Sequence[Hashable]) -> float:
    """Percent of examples whose predicted label equals the gold label."""
    _check_aligned(gold, predicted)
    return 100.0 * sum(g == p for g, p in zip(gold, predicted)) / len(gold)


def token_accuracy(gold_seqs: Sequence[Sequence[str | None]], pred_seqs: Sequence[Sequence[str]]) -> float:
    """Percent of tokens tagged correctly over all sentences; gold ``None`` tokens are skipped.

    Why: conlleval's ``accuracy`` line (every token, ``O`` included), with room for positions
    that carry no gold tag.
    """
    if len(gold_seqs) != len(pred_seqs):
        raise ValueError(f"{len(gold_seqs)} gold sentences but {len(pred_seqs)} predicted")
    correct = total = 0
    for i, (gold, pred) in enumerate(zip(gold_seqs, pred_seqs)):
        if len(gold) != len(pred):
            raise ValueError(f"sentence {i}: {len(gold)} gold tags but {len(pred)} predicted")
        for g, p in zip(gold, pred):
            if g is not None:
                total += 1
                correct += g == p
    if not total:
        raise ValueError("no labelled tokens to score")
    return 100.0 * correct / total


def macro_f1(gold: Sequence[Hashable], predicted: Sequence[Hashable]) -> float:
    """Unweighted mean of per-class F1 (percent) over the classes present in gold or predicted.

    Why: accuracy hides minority classes; this matches ``sklearn.metrics.f1_score(average="macro")``.
    """
    _check_aligned(gold, predicted)
    true_positive: Counter[Hashable] = Counter()
    false_positive: Counter[Hashable] = Counter()
    false_negative: Counter[Hashable] = Counter()
    for g, p in zip(gold, predicted):
        if g == p:
            true_positive[g] += 1
        else:
            false_negative[g] += 1
            false_positive[p] += 1
    classes = set(gold) | set(predicted)
    per_class = [
        2 * true_positive[c] / (2 * true_positive[c] + false_positive[c] + false_negative[c]) for c in classes
    ]
    return 100.0 * sum(per_class) / len(per_class)


def multilabel_micro_f1(gold: Sequence[Collection[str]], predicted: Sequence[Collection[str]]) -> float:
    """Micro F1 (percent) over every (example, class) decision; 0 when no class is gold or predicted.

    Why: the usual multi-label summary; it matches ``sklearn.metrics.f1_score(average="micro")``
    on binarised labels, including sklearn's 0 for the all-empty case.
    """
    _check_aligned(gold, predicted)
    true_positive = false_positive = false_negative = 0
    for g, p in zip(gold, predicted):
        g_set, p_set = set(g), set(p)
        true_positive += len(g_set & p_set)
        false_positive += len(p_set - g_set)
        false_negative += len(g_set - p_set)
    denominator = 2 * true_positive + false_positive + false_negative
    return 100.0 * 2 * true_positive / denominator if denominator else 0.0


def exact_match(gold: Sequence[Collection[str]], predicted: Sequence[Collection[str]]) -> float:
    """Percent of examples whose predicted label set equals the gold set (subset accuracy)."""
    _check_aligned(gold, predicted)
    return 100.0 * sum(set(g) == set(p) for g, p in zip(gold, predicted)) / len(gold)
