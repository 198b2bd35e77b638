"""Seeded, deterministic train/dev/test splits for corpora that ship without one, and seeded subsets.

CoNLL-2000 has no dev set and the Pang & Lee sets have no split at all; results must be reproducible.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence

from polytask.data.example import Example


def split_examples(
    examples: Sequence[Example], fractions: Mapping[str, float], seed: int
) -> dict[str, list[Example]]:
    """Split into ``"train"`` plus one part per entry of ``fractions`` (e.g. ``{"dev": 0.1, "test": 0.1}``).

    A ``random.Random(seed)`` permutation of the indices decides membership, so the same input order
    and seed give the same split whatever the global RNG state or the order of ``fractions``.
    Part sizes are ``round(fraction * n)`` (half up); each part keeps the input order.
    """
    if "train" in fractions:
        raise ValueError("fractions name the held-out parts; 'train' is the remainder and cannot be given")
    for name, fraction in fractions.items():
        if not isinstance(fraction, int | float) or isinstance(fraction, bool) or not 0 < fraction < 1:
            raise ValueError(f"fraction for {name!r} must be a number in (0, 1), got {fraction!r}")
    total = sum(fractions.values())
    if total >= 1:
        raise ValueError(f"fractions must sum to less than 1 (train is the rest), got {total:g}")

    count = len(examples)
    order = list(range(count))
    random.Random(seed).shuffle(order)
    parts: dict[str, list[int]] = {}
    start = 0
    for name in sorted(fractions):
        size = math.floor(fractions[name] * count + 0.5)
        parts[name] = order[start : start + size]
        start += size
    train = order[start:]
    result = {"train": [examples[i] for i in sorted(train)]}
    for name in fractions:
        result[name] = [examples[i] for i in sorted(parts[name])]
    return result


def sample_examples(examples: list[Example], size: int, seed: int) -> list[Example]:
    """A seeded random subset of ``size`` examples, in corpus order.

    Why not the first N: many corpora are grouped (one file per label, documents by topic), so
    a prefix would be one label or one domain.
    """
    if size >= len(examples):
        return examples
    chosen = sorted(random.Random(seed).sample(range(len(examples)), size))
    return [examples[i] for i in chosen]
