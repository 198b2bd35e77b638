"""Shared fixtures: tiny configs over the hand-written files in tests/fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

FIXTURES = Path(__file__).parent / "fixtures"


def tiny_config_dict() -> dict:
    """POS + chunking on one tiny CoNLL file (shared examples) and polarity lines (another source)."""
    conll = str(FIXTURES / "conll2000_tiny.txt")
    return {
        "tasks": {
            "pos": {"type": "token_classification",
                    "data": {"format": "conll", "train": conll, "dev": conll, "test": conll, "column": 1}},
            "chunk": {"type": "token_classification", "scheme": "iob2",
                      "data": {"format": "conll", "train": conll, "dev": conll, "test": conll, "column": 2}},
            "sentiment": {"type": "sequence_classification",
                          "data": {"format": "lines", "files": {"pos": str(FIXTURES / "polarity_tiny.pos"),
                                                                "neg": str(FIXTURES / "polarity_tiny.neg")},
                                   "split": {"dev": 0.4, "seed": 3}}},
        },
        "encoder": {"type": "bilstm", "word_dim": 16, "char_dim": 8, "char_filters": 8, "hidden": 16, "layers": 2},
        "heads": {"pos": {"layer": 1}},
        "training": {"epochs": 2, "batch_size": 4, "seed": 7, "log_every": 1},
    }


@pytest.fixture
def keep_torch_threads():
    """Training in this process may set torch's thread count (training.threads); later tests must not inherit it."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_config_dict_fixture() -> dict:
    return tiny_config_dict()


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config_dict()))
    return path


def data_dir() -> Path | None:
    value = os.environ.get("POLYTASK_DATA")
    return Path(value) if value else None


requires_data = pytest.mark.skipif(data_dir() is None, reason="POLYTASK_DATA is not set (real corpora not available)")
