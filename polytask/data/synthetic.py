"""A seeded synthetic multi-task benchmark: made-up sentences from a hidden Markov model, many labelings.

Why: the demo and the tests need tasks whose relatedness is known by construction, so that
"multi-task learning helped here and hurt there" can be checked rather than hoped for.

A *world* (fixed by ``seed``) has ``classes`` hidden word classes with sparse transitions,
a lexicon of made-up words (a fraction ``ambiguity`` of each class's words is also emitted
by another class, so context decides their class), and an unrelated structure over the same
words: a random hash class ``a(w)`` per word plus a random bit ``b(w)`` that shifts the next
word's class, ``u_i = (a(w_i) + b(w_{i-1})) mod classes``. It shares nothing with the hidden
classes. A *corpus* (``corpus``) is one seeded sample of sentences from that world; corpora
of one world share the grammar and lexicon, not the sentences.

Every labeling reads the per-token class sequence ``y``: ``y_i`` is the hidden class ``z_i``
when word ``w_i`` belongs to the related share ``relatedness`` of the vocabulary (a fixed
random subset that grows with it) and the unrelated class ``u_i`` otherwise. So at
``relatedness: 1`` every column is a function of the hidden classes and at ``relatedness: 0``
none is. Columns (``data.column``):

* ``tag``: ``y_i`` per token (``T0``, ``T1``, ...; token classification, like POS);
* ``chunk``: BIO spans over maximal runs of classes of one phrase group (``XP``, ``YP``, ``ZP``;
  the fourth group is outside), token classification with ``scheme: iob2``;
* ``mood``: which of two marker classes occur in the sentence (``none``, ``a``, ``b``, ``ab``;
  sequence classification);
* ``score``: ``score_scale`` times the share of tokens in group ``XP`` (regression, in
  ``[0, score_scale]``: left unnormalised it has a larger loss scale than the others);
* ``latent``: the hidden classes ``z_i`` themselves, whatever ``relatedness`` says (an oracle,
  for inspection and tests).
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from polytask.data.example import Example
from polytask.errors import ConfigError

COLUMNS = ("tag", "chunk", "mood", "score", "latent")
GROUPS = ("XP", "YP", "ZP", None)
"""Phrase group of class ``k`` is ``GROUPS[k % 4]``; ``None`` is outside every chunk."""

MOODS = ("none", "a", "b", "ab")
_CONSONANTS, _VOWELS = "bdfgklmnprstvz", "aeiou"


class SyntheticOptions(BaseModel):
    """Generator options (``data.synthetic``); unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(0, description="the world: grammar, lexicon and the unrelated structure")
    corpus: str = Field("main", description="which sample of sentences from the world")
    size: int = Field(1000, ge=1, description="training sentences")
    dev_size: int = Field(200, ge=1)
    test_size: int = Field(400, ge=1)
    relatedness: float = Field(1.0, ge=0.0, le=1.0,
                               description="share of the vocabulary whose labels follow the hidden classes")
    classes: int = Field(8, ge=4, le=64)
    words_per_class: int = Field(40, ge=2, le=1000)
    ambiguity: float = Field(0.3, ge=0.0, le=1.0, description="share of a class's words another class also emits")
    min_length: int = Field(6, ge=1, le=200)
    max_length: int = Field(14, ge=1, le=200)
    score_scale: float = Field(10.0, gt=0.0)

    @model_validator(mode="after")
    def _lengths(self) -> SyntheticOptions:
        if self.min_length > self.max_length:
            raise ValueError(f"min_length {self.min_length} is above max_length {self.max_length}")
        return self


@dataclass(frozen=True)
class World:
    """The fixed part of the benchmark: hidden Markov model, lexicon and unrelated word structure.

    ``start``, ``transitions`` and each class's emission weights are cumulative. ``hash_class``
    is a(w), ``shift`` is b(w), ``gate`` the draw that puts a word in the related share, and
    ``markers`` the two classes the ``mood`` column looks for.
    """

    classes: int
    start: tuple[float, ...]
    transitions: tuple[tuple[float, ...], ...]
    emissions: tuple[tuple[tuple[str, ...], tuple[float, ...]], ...]
    hash_class: Mapping[str, int]
    shift: Mapping[str, int]
    gate: Mapping[str, float]
    markers: tuple[int, int]

    def unrelated_classes(self, words: Sequence[str]) -> list[int]:
        """``u_i = (a(w_i) + b(w_{i-1})) mod classes``: word identity mixed with position, no hidden class."""
        previous = [0] + [self.shift[w] for w in words[:-1]]
        return [(self.hash_class[w] + p) % self.classes for w, p in zip(words, previous)]


def _cumulative(weights: Sequence[float]) -> list[float]:
    return list(itertools.accumulate(weights))


def _draw(rng: random.Random, cumulative: Sequence[float]) -> int:
    return min(bisect.bisect_right(cumulative, rng.random() * cumulative[-1]), len(cumulative) - 1)


def _sparse_distribution(rng: random.Random, size: int) -> list[float]:
    """A random distribution with a few large entries (Dirichlet(0.3)) and a small floor."""
    weights = [rng.gammavariate(0.3, 1.0) + 1e-3 for _ in range(size)]
    total = sum(weights)
    return [0.97 * w / total + 0.03 / size for w in weights]


def _make_words(rng: random.Random, count: int) -> list[str]:
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < count:
        syllables = rng.choice((2, 2, 3))
        word = "".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(syllables))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


@lru_cache(maxsize=16)
def build_world(seed: int, classes: int, words_per_class: int, ambiguity: float) -> World:
    """The world of ``seed``; the same arguments always give the same world."""
    rng = random.Random(f"polytask-synthetic:{seed}:grammar")
    start = _sparse_distribution(rng, classes)
    transitions = [_sparse_distribution(rng, classes) for _ in range(classes)]
    vocabulary = _make_words(rng, classes * words_per_class)
    lexicon = [vocabulary[k * words_per_class : (k + 1) * words_per_class] for k in range(classes)]
    shared = round(ambiguity * words_per_class)
    borrowed: list[list[str]] = [[] for _ in range(classes)]
    for k in range(classes):
        for word in rng.sample(lexicon[k], shared):
            other = rng.choice([c for c in range(classes) if c != k])
            borrowed[other].append(word)
    emissions = []
    for k in range(classes):
        words = lexicon[k] + borrowed[k]
        rng.shuffle(words)
        emissions.append((tuple(words), tuple(_cumulative([1.0 / (rank + 1) ** 0.7 for rank in range(len(words))]))))
    # The unrelated structure has its own random stream, so it shares nothing with the grammar.
    foreign = random.Random(f"polytask-synthetic:{seed}:unrelated")
    hash_class = {w: foreign.randrange(classes) for w in vocabulary}
    shift = {w: foreign.randrange(2) for w in vocabulary}
    gate = {w: foreign.random() for w in vocabulary}
    world = World(classes, tuple(_cumulative(start)), tuple(tuple(_cumulative(t)) for t in transitions),
                  tuple(emissions), hash_class, shift, gate, markers=(0, 1))
    return replace(world, markers=_balanced_markers(world, random.Random(f"polytask-synthetic:{seed}:markers")))


def _sample_sentence(world: World, rng: random.Random, length: int) -> tuple[list[str], list[int]]:
    hidden = [_draw(rng, world.start)]
    for _ in range(length - 1):
        hidden.append(_draw(rng, world.transitions[hidden[-1]]))
    words = []
    for k in hidden:
        vocabulary, cumulative = world.emissions[k]
        words.append(vocabulary[_draw(rng, cumulative)])
    return words, hidden


def _balanced_markers(world: World, rng: random.Random) -> tuple[int, int]:
    """The two non-outside classes whose presence in a sentence is closest to a coin flip."""
    sentences = [_sample_sentence(world, rng, rng.randint(6, 14))[1] for _ in range(400)]
    candidates = [k for k in range(world.classes) if GROUPS[k % len(GROUPS)] is not None]
    presence = {k: sum(k in s for s in sentences) / len(sentences) for k in candidates}
    ranked = sorted(candidates, key=lambda k: (abs(presence[k] - 0.5), k))
    return ranked[0], ranked[1]


# --------------------------------------------------------------------------------------
# Labelings of a class sequence


def tag_labels(classes: Sequence[int]) -> list[str]:
    """One tag per token: ``T<class>``."""
    return [f"T{k}" for k in classes]


def chunk_labels(classes: Sequence[int]) -> list[str]:
    """IOB2 tags over maximal runs of classes in one phrase group."""
    tags, previous = [], None
    for k in classes:
        group = GROUPS[k % len(GROUPS)]
        tags.append("O" if group is None else (f"I-{group}" if group == previous else f"B-{group}"))
        previous = group
    return tags


def mood_label(classes: Sequence[int], markers: tuple[int, int]) -> str:
    """``none``, ``a``, ``b`` or ``ab``: which of the two marker classes the sentence contains."""
    a, b = markers[0] in classes, markers[1] in classes
    return MOODS[int(a) + 2 * int(b)]


def score_value(classes: Sequence[int], scale: float) -> float:
    """``scale`` times the share of tokens whose class is in phrase group ``XP``."""
    share = sum(GROUPS[k % len(GROUPS)] == GROUPS[0] for k in classes) / len(classes)
    return round(scale * share, 4)


def _column(column: str, labelled: list[int], hidden: list[int], world: World, settings: SyntheticOptions) -> Any:
    if column == "tag":
        return tag_labels(labelled)
    if column == "chunk":
        return chunk_labels(labelled)
    if column == "mood":
        return mood_label(labelled, world.markers)
    if column == "score":
        return score_value(labelled, settings.score_scale)
    return tag_labels(hidden)


# --------------------------------------------------------------------------------------


def _options(fields: Mapping[str, Any], options: Mapping[str, Any]) -> SyntheticOptions:
    first = next(iter(fields), "?")
    for task, column in fields.items():
        if column not in COLUMNS:
            raise ConfigError(f"unknown synthetic column {column!r}; choose one of {', '.join(COLUMNS)}",
                              field=f"tasks.{task}.data.column")
    try:
        return SyntheticOptions.model_validate(dict(options))
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(p) for p in problem["loc"])
        message = "unknown option (check its spelling)" if problem["type"] == "extra_forbidden" else problem["msg"]
        message = message.removeprefix("Value error, ")
        field = f"tasks.{first}.data.synthetic" + (f".{where}" if where else "")
        raise ConfigError(message, field=field) from None


def generate_splits(fields: Mapping[str, Any], **options: Any) -> dict[str, list[Example]]:
    """Train, dev and test sentences of one corpus, labelled with ``fields`` (task -> column).

    Bad options raise a ConfigError naming ``tasks.<task>.data.synthetic.<option>``; an unknown
    column names ``tasks.<task>.data.column``. The same options always give the same examples.
    """
    settings = _options(fields, options)
    world = build_world(settings.seed, settings.classes, settings.words_per_class, settings.ambiguity)
    sizes = {"train": settings.size, "dev": settings.dev_size, "test": settings.test_size}
    return {split: _generate(world, settings, fields, split, count) for split, count in sizes.items()}


def _generate(world: World, settings: SyntheticOptions, fields: Mapping[str, Any], split: str,
              count: int) -> list[Example]:
    rng = random.Random(f"polytask-synthetic:{settings.seed}:{settings.corpus}:{split}")
    examples = []
    for index in range(count):
        words, hidden = _sample_sentence(world, rng, rng.randint(settings.min_length, settings.max_length))
        unrelated = world.unrelated_classes(words)
        labelled = [z if world.gate[w] < settings.relatedness else u for w, z, u in zip(words, hidden, unrelated)]
        labels = {task: _column(column, labelled, hidden, world, settings) for task, column in fields.items()}
        examples.append(Example(tokens=words, labels=labels, origin=f"synthetic:{settings.corpus}:{split}:{index + 1}"))
    return examples
