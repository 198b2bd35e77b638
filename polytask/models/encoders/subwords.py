"""Sub-word alignment: words to a fast tokenizer's pieces, and piece states back to word states.

Pretrained encoders read sub-word pieces; polytask's tasks label words. The featurizer keeps,
for every word, the span ``[start, end)`` of its pieces; the encoder pools each span into one
word state (``first`` piece, as in BERT's tagging set-up, Devlin et al. 2019, or the ``mean``
of the pieces), so word-level labels and metrics are unchanged.

A word the tokenizer turns into no piece at all (an empty string, a lone zero-width or control
character) still gets a state: it is given one *placeholder piece*, the tokenizer's unknown
token, so it is encoded in its context like any unknown word and never borrows a neighbour's
state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from polytask.data.pieces import WordPieces, group_pieces


def placeholder_piece(tokenizer: Any) -> int:
    """The piece given to words that tokenise to nothing: unknown, else mask, else padding."""
    for name in ("unk_token_id", "mask_token_id", "pad_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return 0


def split_into_pieces(tokenizer: Any, sentences: Sequence[Sequence[str]], placeholder: int) -> list[WordPieces]:
    """Tokenise pre-split words with a fast tokenizer (``word_ids``) and record each word's span."""
    # verbose=False: no "longer than the maximum" warning, the featurizer windows long inputs
    encoding = tokenizer([list(s) for s in sentences], is_split_into_words=True, add_special_tokens=False,
                         verbose=False)
    return [group_pieces(encoding["input_ids"][i], encoding.word_ids(i), len(sentence), placeholder)
            for i, sentence in enumerate(sentences)]


def first_piece(states: Tensor, piece_index: Tensor, starts: Tensor, ends: Tensor) -> Tensor:
    """The state of each word's first piece, gathered straight from ``states`` (no copy of every piece).

    ``states``: [..., positions, dim], every window's (or packed row's) pieces flattened; ``piece_index``:
    [batch, pieces], where each sentence's piece lies in ``states``; ``starts``/``ends``: [batch, words].
    """
    return states[..., piece_index.gather(1, starts), :]


def mean_of_pieces(states: Tensor, piece_index: Tensor, starts: Tensor, ends: Tensor) -> Tensor:
    """The mean state of each word's pieces, as one batched matrix product with a span-averaging matrix."""
    pieces = states[..., piece_index, :]  # [..., batch, pieces, dim]
    positions = torch.arange(pieces.shape[-2], device=pieces.device)
    inside = (positions >= starts.unsqueeze(-1)) & (positions < ends.unsqueeze(-1))  # [batch, words, pieces]
    weights = inside.to(pieces.dtype) / (ends - starts).clamp(min=1).unsqueeze(-1).to(pieces.dtype)
    return torch.matmul(weights, pieces)


SubwordPooling = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]
"""``(states, piece_index, starts, ends) -> word states [..., batch, words, dim]``."""

SUBWORD_POOLING: dict[str, SubwordPooling] = {"first": first_piece, "mean": mean_of_pieces}
