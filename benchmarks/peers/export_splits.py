"""Write the exact train/dev/test examples a polytask config reads, one JSONL file per task and split.

Why: a peer (spaCy, Flair) must train and be scored on the same sentences as polytask. Reading the
config through polytask's own corpus loader gives its splits exactly (CoNLL-2000's seeded 10% dev,
polarity's seeded 80/10/10, ``max_train``/``max_eval`` samples), so no peer re-implements them.
Run it in polytask's environment; the peers read the files in theirs.

    POLYTASK_DATA=../shared/data python benchmarks/peers/export_splits.py \
        [--config examples/ner-pos-sentiment.yaml] [--out benchmarks/peers/data] [--set tasks.ner.data.max_train=500 ...]

Writes ``OUT/TASK/{train,dev,test}.jsonl`` (``{"tokens": [...], "label": ...}``: a tag list for
token tasks, a class for sentence tasks) and ``OUT/tasks.json`` (each task's type, scheme and
counts, plus the config and overrides it came from).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def export(config_path: Path, out: Path, overrides: list[str]) -> dict:
    from polytask.config import load_config
    from polytask.data.corpus import load_corpus
    from polytask.training.setup import build_tasks

    config = load_config(config_path, overrides)
    tasks = build_tasks(config)
    corpus = load_corpus(config, tasks)
    manifest: dict = {"config": str(config_path), "overrides": overrides, "tasks": {}}
    for name, task in tasks.items():
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        counts = {}
        for split in ("train", "dev", "test"):
            examples = corpus.task_examples(name, split)
            with (folder / f"{split}.jsonl").open("w", encoding="utf-8") as handle:
                for example in examples:
                    handle.write(json.dumps({"tokens": example.tokens, "label": example.labels[name]}) + "\n")
            counts[split] = len(examples)
        manifest["tasks"][name] = {"type": config.tasks[name].type, "scheme": getattr(task, "scheme", None),
                                   "counts": counts}
    (out / "tasks.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "examples/ner-pos-sentiment.yaml")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/peers/data")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="a config override, as `polytask train --set` (repeatable)")
    args = parser.parse_args()
    manifest = export(args.config, args.out, args.overrides)
    for name, task in manifest["tasks"].items():
        print(f"{name:10} {task['type']:24} " + " ".join(f"{s} {n}" for s, n in task["counts"].items()))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
