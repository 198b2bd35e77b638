"""Metrics for every task type: conlleval spans, classification (percent) and regression."""

from polytask.tasks.metrics.classification import (
    accuracy,
    exact_match,
    macro_f1,
    multilabel_micro_f1,
    token_accuracy,
)
from polytask.tasks.metrics.regression import mae, mse, pearson
from polytask.tasks.metrics.spans import (
    SCHEMES,
    SpanCounts,
    canonical_scheme,
    count_spans,
    extract_spans,
    span_prf,
    span_prf_by_type,
)

__all__ = [
    "SCHEMES",
    "SpanCounts",
    "accuracy",
    "canonical_scheme",
    "count_spans",
    "exact_match",
    "extract_spans",
    "macro_f1",
    "mae",
    "mse",
    "multilabel_micro_f1",
    "pearson",
    "span_prf",
    "span_prf_by_type",
    "token_accuracy",
]
