"""Every reader, fed arbitrary bytes or arbitrary lines: examples, or a DataError naming the file — never another exception.

Property tests with hypothesis (bounded examples, no deadline: the machine may be busy).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polytask.data.example import Example
from polytask.data.readers import READERS, read_examples
from polytask.errors import DataError

FIELDS = {  # per format: what a task reads, as a config would say it
    "conll": {"pos": 1, "chunk": 2},
    "conllu": {"pos": "upos", "head": "deprel"},
    "lines": {"sentiment": "positive"},
    "tsv": {"label": "label", "score": "score"},
    "csv": {"label": "label", "score": "score"},
    "jsonl": {"label": "label", "tags": "tags"},
}
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SEPARATORS = st.sampled_from(["\t", " ", ",", "\n", "\r\n", "", "#", '"', "{", "}", ":", "-", "_", "1", "."])
LINE_TEXT = st.lists(st.one_of(SEPARATORS, st.text(max_size=6)), max_size=12).map("".join)
TEXT_FILES = st.lists(LINE_TEXT, max_size=12).map("\n".join)


def test_every_reader_is_covered() -> None:
    assert set(FIELDS) == set(READERS)


def check(fmt: str, content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"data.{fmt}"
        path.write_bytes(content)
        try:
            examples = read_examples(fmt, path, FIELDS[fmt])
        except DataError as error:
            assert str(path) in str(error), f"the error names no file: {error}"
            assert "\n" not in str(error), "a DataError is one line"
            return
        assert isinstance(examples, list) and all(isinstance(e, Example) for e in examples)
        for example in examples:
            assert example.tokens and all(isinstance(t, str) and t for t in example.tokens), example
            assert example.origin.startswith(str(path))


@pytest.mark.parametrize("fmt", sorted(FIELDS))
@SETTINGS
@given(content=st.binary(max_size=300))
def test_arbitrary_bytes(fmt: str, content: bytes) -> None:
    check(fmt, content)


@pytest.mark.parametrize("fmt", sorted(FIELDS))
@SETTINGS
@given(text=TEXT_FILES)
def test_arbitrary_lines(fmt: str, text: str) -> None:
    check(fmt, text.encode("utf-8", "surrogatepass"))
