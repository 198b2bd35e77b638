"""Word shapes: the casing class of a word, torch-free (used by ``case_features`` and by the ONNX runtime)."""

from __future__ import annotations

SHAPES: tuple[str, ...] = ("all_caps", "initial_cap", "lower", "mixed", "digits", "punctuation", "other")
"""Shape classes; id ``i + 1`` is ``SHAPES[i]`` and id 0 is padding."""
def word_shape(word: str) -> str:
    """The casing class of a word: all caps ("USA", "U.S."), initial cap ("Paris"), lower, mixed ("iPhone"),
    digits (no letters, some digit: "1,000"), punctuation (neither letters nor digits) or other (uncased script)."""
    letters = [c for c in word if c.isalpha()]
    if not letters:
        return "digits" if any(c.isdigit() for c in word) else "punctuation"
    cased = [c for c in letters if c.isupper() or c.islower()]
    if not cased:
        return "other"
    if all(c.isupper() for c in cased):
        return "all_caps"
    if all(c.islower() for c in cased):
        return "lower"
    if cased[0].isupper() and all(c.islower() for c in cased[1:]):
        return "initial_cap"
    return "mixed"


SHAPE_IDS = {shape: i + 1 for i, shape in enumerate(SHAPES)}
