"""Vocabularies mapping strings to ids, saved as JSON in the run directory."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

PAD, UNK = "<pad>", "<unk>"
_DIGITS = re.compile(r"\d")


def normalise_word(word: str, lowercase: bool) -> str:
    """Digits become 0 (numbers share statistics); optionally lower-case."""
    word = _DIGITS.sub("0", word)
    return word.lower() if lowercase else word


class Vocabulary:
    """A string-to-id map with padding (id 0) and unknown (id 1) entries."""

    def __init__(self, items: Iterable[str] = ()):
        self.itos: list[str] = [PAD, UNK]
        self.stoi: dict[str, int] = {PAD: 0, UNK: 1}
        for item in items:
            self.add(item)

    @classmethod
    def from_counts(cls, counts: Counter[str], min_count: int = 1) -> Vocabulary:
        kept = sorted((item for item, n in counts.items() if n >= min_count), key=lambda s: (-counts[s], s))
        return cls(kept)

    def add(self, item: str) -> int:
        if item not in self.stoi:
            self.stoi[item] = len(self.itos)
            self.itos.append(item)
        return self.stoi[item]

    def __len__(self) -> int:
        return len(self.itos)

    def __getitem__(self, item: str) -> int:
        return self.stoi.get(item, 1)

    def to_json(self) -> list[str]:
        return list(self.itos)

    @classmethod
    def from_json(cls, data: list[str]) -> Vocabulary:
        vocab = cls()
        for item in data[2:]:
            vocab.add(item)
        return vocab

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Vocabulary) and self.itos == other.itos
