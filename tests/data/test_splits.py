"""split_examples: deterministic, seeded, disjoint and complete, with the promised sizes."""

from __future__ import annotations

import random

import pytest

from polytask.data.example import Example
from polytask.data.splits import split_examples


def _examples(count: int) -> list[Example]:
    """Distinguishable examples in a known order."""
    return [Example(tokens=[f"w{i}"], origin=f"f:{i + 1}") for i in range(count)]


def _origins(parts: dict[str, list[Example]]) -> dict[str, list[str]]:
    return {name: [e.origin for e in part] for name, part in parts.items()}


def test_parts_are_disjoint_complete_and_sized() -> None:
    examples = _examples(1000)
    parts = split_examples(examples, {"dev": 0.1, "test": 0.15}, seed=13)
    assert list(parts) == ["train", "dev", "test"]
    assert [len(parts[name]) for name in ("train", "dev", "test")] == [750, 100, 150]
    seen = [e.origin for part in parts.values() for e in part]
    assert sorted(seen) == sorted(e.origin for e in examples)
    for part in parts.values():  # each part keeps the input order
        assert part == sorted(part, key=examples.index)


def test_same_seed_same_split_regardless_of_global_rng() -> None:
    examples = _examples(200)
    random.seed(1)
    first = _origins(split_examples(examples, {"dev": 0.1, "test": 0.1}, seed=7))
    random.seed(999)
    random.random()
    second = _origins(split_examples(examples, {"test": 0.1, "dev": 0.1}, seed=7))
    assert first == second


def test_different_seed_different_split() -> None:
    examples = _examples(200)
    first = split_examples(examples, {"dev": 0.2}, seed=0)["dev"]
    second = split_examples(examples, {"dev": 0.2}, seed=1)["dev"]
    assert first != second


def test_pinned_split_for_a_known_seed() -> None:
    dev = split_examples(_examples(10), {"dev": 0.2}, seed=0)["dev"]
    order = list(range(10))
    random.Random(0).shuffle(order)
    assert [e.origin for e in dev] == [f"f:{i + 1}" for i in sorted(order[:2])]


def test_rounding_half_up() -> None:
    parts = split_examples(_examples(8936), {"dev": 0.1}, seed=0)
    assert len(parts["dev"]) == 894 and len(parts["train"]) == 8042


def test_empty_fractions_keep_everything_in_train() -> None:
    examples = _examples(5)
    assert split_examples(examples, {}, seed=0) == {"train": examples}


@pytest.mark.parametrize(
    "fractions",
    [{"dev": 0.5, "test": 0.5}, {"dev": 0.7, "test": 0.4}, {"dev": 0.0}, {"dev": -0.1}, {"dev": 1.0}, {"train": 0.8}],
)
def test_invalid_fractions(fractions: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        split_examples(_examples(10), fractions, seed=0)
