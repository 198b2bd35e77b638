"""The affinity output directory's result file, and the refusal to replace an earlier measurement there."""

from __future__ import annotations

from pathlib import Path

from polytask.config import AFFINITY_JSON
from polytask.errors import PolytaskError

__all__ = ["AFFINITY_JSON", "check_affinity_out"]  # the file name lives in config: sharing.groups: {from: DIR} reads it


def check_affinity_out(out: Path, measure: str, overwrite: bool) -> None:
    """Refuse to replace an earlier measurement in ``out`` without ``overwrite``.

    A pairwise measurement may find its own earlier result: rerunning it resumes its runs.
    """
    import json

    existing = Path(out) / AFFINITY_JSON
    if overwrite or not existing.is_file():
        return
    try:
        earlier = json.loads(existing.read_text()).get("measure", "lookahead")
    except (OSError, ValueError, AttributeError):
        earlier = "unreadable"
    if measure == "pairs" and earlier == "pairs":
        return
    raise PolytaskError(f"{out} already holds {AFFINITY_JSON} (measure: {earlier}); choose another --out "
                        "or pass --overwrite")
