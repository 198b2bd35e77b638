"""Which tag follows which under a tagging scheme, so that decoded chunks are always well formed.

Why: a per-token argmax can emit ``O I-PER`` (iob2) or ``B-PER O`` (iobes), tag sequences that
conlleval repairs in its own way; a decoder that only follows allowed transitions emits exactly
the canonical encoding of some set of chunks. The allowed transitions per scheme:

- ``iob2``: ``I-X`` only after ``B-X`` or ``I-X``; a sentence cannot start with ``I-``.
- ``iob1``: ``B-X`` only after ``B-X`` or ``I-X`` (it separates two adjacent ``X`` chunks); a
  sentence cannot start with ``B-``.
- ``iobes``: ``I-X``/``E-X`` only after ``B-X`` or ``I-X``; ``B``, ``S`` and ``O`` only after
  ``E``, ``S`` or ``O``; a sentence starts with ``B``, ``S`` or ``O`` and ends with ``E``, ``S`` or ``O``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from polytask.tasks.metrics.spans import Span, canonical_scheme, extract_spans, split_tag


@dataclass(frozen=True)
class TransitionConstraints:
    """Allowed transitions ``[C, C]`` (from row tag to column tag), first tags ``[C]`` and last tags ``[C]``."""

    transitions: Tensor
    start: Tensor
    end: Tensor

    @classmethod
    def none(cls, tags: int) -> TransitionConstraints:
        """Every transition allowed (an unconstrained chain)."""
        return cls(torch.ones(tags, tags, dtype=torch.bool), torch.ones(tags, dtype=torch.bool),
                   torch.ones(tags, dtype=torch.bool))


def _allowed(prev: tuple[str, str], tag: tuple[str, str], scheme: str) -> bool:
    (p, p_type), (t, t_type) = prev, tag
    continues = p in ("B", "I") and p_type == t_type  # the previous tag is inside a chunk of this type
    if scheme == "iob2":
        return t != "I" or continues
    if scheme == "iob1":
        return t != "B" or continues
    return continues if t in ("I", "E") else p in ("E", "S", "O")


def scheme_constraints(tags: Sequence[str], scheme: str) -> TransitionConstraints:
    """The transitions ``scheme`` allows between the label space's ``tags``."""
    scheme = canonical_scheme(scheme)
    parts = [split_tag(tag, scheme) for tag in tags]
    transitions = torch.tensor([[_allowed(p, t, scheme) for t in parts] for p in parts], dtype=torch.bool)
    outside = ("O", "")
    start = torch.tensor([_allowed(outside, t, scheme) for t in parts], dtype=torch.bool)
    end = torch.tensor([scheme != "iobes" or p in ("E", "S", "O") for p, _ in parts], dtype=torch.bool)
    return TransitionConstraints(transitions, start, end)


def encode_spans(spans: Sequence[Span], length: int, scheme: str) -> list[str]:
    """The canonical (well-formed) tags of ``length`` tokens holding the chunks ``spans``."""
    scheme = canonical_scheme(scheme)
    tags = ["O"] * length
    previous_end, previous_type = -1, None
    for type_, start, end in sorted(spans, key=lambda span: span[1]):
        if scheme == "iobes":
            tags[start:end] = [f"S-{type_}"] if end - start == 1 else \
                [f"B-{type_}"] + [f"I-{type_}"] * (end - start - 2) + [f"E-{type_}"]
        elif scheme == "iob2":
            tags[start:end] = [f"B-{type_}"] + [f"I-{type_}"] * (end - start - 1)
        else:
            first = "B" if previous_end == start and previous_type == type_ else "I"
            tags[start:end] = [f"{first}-{type_}"] + [f"I-{type_}"] * (end - start - 1)
        previous_end, previous_type = end, type_
    return tags


def well_formed(tags: Sequence[str], scheme: str) -> list[str]:
    """The canonical tags of the chunks conlleval reads in ``tags`` (the same chunks, well formed)."""
    return encode_spans(extract_spans(tags, scheme), len(tags), scheme)
