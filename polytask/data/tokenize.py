"""A small Penn-Treebank-style tokenizer for raw-text inputs.

From-scratch encoders (word embeddings, BiLSTM, CNN) use it to turn the ``text`` of tsv/csv/jsonl
inputs into tokens; pretrained encoders use their own subword tokenizer on ``Example.text``.
"""

from __future__ import annotations

import re

_APOSTROPHE = "['\u2019]"
_CLITIC = rf"{_APOSTROPHE}(?:s|re|ve|ll|d|m)\b"

_TOKEN = re.compile(
    "|".join(
        [
            r"\d+(?:[.,:/]\d+)+",  # 3.5  1,000  10:30  1/2
            r"(?:[^\W\d_]\.){2,}",  # U.S.  e.g.
            rf"\w+(?=n{_APOSTROPHE}t\b)",  # "do" of "don't", "ca" of "can't"
            rf"n{_APOSTROPHE}t\b",  # n't
            rf"(?<=\w){_CLITIC}",  # 's 're 've 'll 'd 'm after a word
            rf"\w+(?:(?:-|{_APOSTROPHE}(?!(?:s|re|ve|ll|d|m|t)\b))\w+)*",  # words, co-writer, o'clock
            r"\.{2,}|-{2,}",  # ellipsis, dashes
            r"[^\w\s]",  # any other symbol on its own
        ]
    ),
    re.IGNORECASE,
)


def simple_tokenize(text: str) -> list[str]:
    """Split text into words and punctuation, PTB-style: ``"Don't stop."`` -> ``["Do", "n't", "stop", "."]``.

    Clitics (``n't``, ``'s``, ``'re``, ``'ve``, ``'ll``, ``'d``, ``'m``) become separate tokens;
    numbers (``3.5``, ``1,000``), abbreviations (``U.S.``) and hyphenated words stay whole.
    Quotes are kept as typed (no PTB ````/''`` rewriting) and the text is not lower-cased.
    """
    return _TOKEN.findall(text)
