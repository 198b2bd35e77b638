"""Data: readers, vocabularies, batching and task samplers."""
