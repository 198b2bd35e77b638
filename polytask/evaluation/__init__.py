"""Evaluation: metrics on splits, model selection, baselines, Δm, affinity and reports."""
