"""Pretrained word vectors: each format read back, lower-case fallback, freezing, and one-line errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import torch

from polytask.config import validate_config
from polytask.data.word_vectors import read_word_vectors
from polytask.errors import ConfigError, DataError
from polytask.training.setup import build_experiment
from polytask.training.trainer import Trainer
from tests.conftest import tiny_config_dict

WORDS = ["<pad>", "<unk>", "the", "Paris", "paris", "London", "0000"]
ROWS = {"the": [0.5, -1.0, 2.0], "paris": [1.0, 2.0, 3.0], "london": [4.0, 5.0, 6.0], "1990": [7.0, 8.0, 9.0],
        "Unrelated": [0.0, 0.0, 1e3]}


def write(path: Path, rows: dict[str, list[float]], header: bool, extra: str = "") -> Path:
    lines = [f"{len(rows)} 3"] if header else []
    lines += [" ".join([word, *map(str, vector)]) + (" " if header else "") for word, vector in rows.items()]
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


@pytest.mark.parametrize(("format", "header"), [("glove", False), ("word2vec", True), ("fasttext", True)])
def test_each_format_round_trips_with_lowercase_fallback(tmp_path: Path, format: str, header: bool) -> None:
    read = read_word_vectors(write(tmp_path / "v.txt", ROWS, header), format, WORDS, 3)
    assert read.vectors[2].tolist() == ROWS["the"]
    assert read.vectors[4].tolist() == ROWS["paris"]  # exact
    assert read.vectors[3].tolist() == ROWS["paris"]  # Paris: lower-case fallback
    assert read.vectors[5].tolist() == ROWS["london"]  # London: fallback
    assert read.vectors[6].tolist() == ROWS["1990"]  # digits normalised like the vocabulary
    assert read.found.tolist() == [False, False, True, True, True, True, True]
    assert (read.exact, read.lowercased) == (2, 3)


def test_an_exact_match_beats_an_earlier_lowercase_one_and_gzip_is_read(tmp_path: Path) -> None:
    rows = {"paris": [1.0, 1.0, 1.0], "Paris": [2.0, 2.0, 2.0]}
    path = tmp_path / "v.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in rows.items()))
    read = read_word_vectors(path, "glove", ["<pad>", "<unk>", "Paris"], 3)
    assert read.vectors[2].tolist() == [2.0, 2.0, 2.0] and (read.exact, read.lowercased) == (1, 0)


def test_errors_name_the_file_and_line(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.txt", {"the": [1.0, 2.0, 3.0]}, header=False, extra="paris 1.0 x 3.0\n")
    with pytest.raises(DataError, match=r"bad.txt:2: 'x' is not a number"):
        read_word_vectors(bad, "glove", WORDS, 3)
    with pytest.raises(DataError, match=r"v.txt:1: the vectors have 3 numbers after the word, encoder.word_dim is 5"):
        read_word_vectors(write(tmp_path / "v.txt", ROWS, header=False), "glove", WORDS, 5)
    with pytest.raises(DataError, match=r"w.txt:1: the vectors have 3 dimensions, encoder.word_dim is 5"):
        read_word_vectors(write(tmp_path / "w.txt", ROWS, header=True), "word2vec", WORDS, 5)
    with pytest.raises(DataError, match=r"h.txt:1: a header line"):
        read_word_vectors(write(tmp_path / "h.txt", ROWS, header=True), "glove", WORDS, 3)
    with pytest.raises(DataError, match=r"g.txt:1: format 'fasttext' starts with a header"):
        read_word_vectors(write(tmp_path / "g.txt", ROWS, header=False), "fasttext", WORDS, 3)
    short = write(tmp_path / "s.txt", ROWS, header=True, extra="paris 1.0\n")
    with pytest.raises(DataError, match=r"s.txt:7: the line has 1 numbers"):
        read_word_vectors(short, "word2vec", WORDS, 3)
    with pytest.raises(DataError, match="not found"):
        read_word_vectors(tmp_path / "missing.txt", "glove", WORDS, 3)
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9 1 2 3\n")
    with pytest.raises(DataError, match=r"latin1.txt:1: not UTF-8"):
        read_word_vectors(tmp_path / "latin1.txt", "glove", WORDS, 3)


def vector_config(tmp_path: Path, freeze: bool) -> dict:
    data = tiny_config_dict()
    rows = {"the": [0.25] * 16, "shares": [0.5] * 16}  # "Shares" in the fixture: lower-case fallback
    path = tmp_path / "vectors.vec"
    path.write_text("2 16\n" + "".join(f"{w} {' '.join(map(str, v))}\n" for w, v in rows.items()))
    data["encoder"]["word_vectors"] = {"path": str(path), "format": "fasttext", "freeze": freeze}
    data["training"].update(max_steps=2, epochs=1, lr=0.05)
    return data


@pytest.mark.parametrize("freeze", [False, True])
def test_vectors_initialise_the_encoder_and_freeze_keeps_them(tmp_path: Path, freeze: bool) -> None:
    trainer = Trainer(build_experiment(validate_config(vector_config(tmp_path, freeze))), progress=False)
    words = trainer.model.encoder.featurizer.words
    table = trainer.model.encoder.embed.words.weight
    assert table[words["the"]].tolist() == [0.25] * 16 and table[words["Shares"]].tolist() == [0.5] * 16
    before = table.detach().clone()
    for step in range(2):
        trainer.train_step(trainer.steps.build(step, 2))
    assert torch.equal(table, before) == freeze
    assert table.requires_grad == (not freeze)


def test_the_config_checks_the_vectors_path_and_fields(tmp_path: Path) -> None:
    data = vector_config(tmp_path, False)
    assert validate_config(validate_config(data).model_dump(mode="json")).encoder.word_vectors.format == "fasttext"
    data["encoder"]["word_vectors"]["path"] = str(tmp_path / "none.vec")
    with pytest.raises(ConfigError, match="encoder.word_vectors.path: file not found"):
        validate_config(data)
    data["encoder"] = {"type": "transformer", "model": "minilm", "word_vectors": {"path": "x", "format": "glove"}}
    with pytest.raises(ConfigError, match="word_vectors does not apply to encoder type 'transformer'"):
        validate_config(data)
