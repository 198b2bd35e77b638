"""What an export directory holds: the file names and the manifest's format, shared by the exporter and the runtime."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from polytask.errors import PolytaskError

MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
FORMAT = "polytask-onnx"
VERSION = 1


def is_export_dir(path: str | Path) -> bool:
    """True for a directory written by ``polytask export`` (a manifest, and no training config)."""
    path = Path(path)
    return (path / MANIFEST_FILE).is_file() and not (path / "config.yaml").is_file()


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of an export directory; a missing, unreadable or foreign one is a one-line error naming the file."""
    file = Path(path) / MANIFEST_FILE
    if not file.is_file():
        raise PolytaskError(f"{path} is not an export directory: {MANIFEST_FILE} is missing")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise PolytaskError(f"{file}: not valid JSON ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PolytaskError(f"{file}: not a polytask export manifest")
    if manifest.get("version") != VERSION:
        raise PolytaskError(f"{file}: export format version {manifest.get('version')!r}; this polytask reads {VERSION}")
    if not (Path(path) / MODEL_FILE).is_file():
        raise PolytaskError(f"{path} is not a complete export directory: {MODEL_FILE} is missing")
    return manifest
