"""Serving: one-pass prediction of every task (CLI today, HTTP later)."""
