"""Why a word-level encoder runs a mixed multi-task step in length-sorted chunks (``encoder.chunk_rows``).

Why: a step with every task collates each task's micro-batch into one batch (CoNLL-2003 NER sentences
of ~14 words with CoNLL-2000 POS sentences of ~24 and polarity sentences of ~21), so one padded call
runs every row to the batch's longest. This script times forward + backward of the BiLSTM of
``examples/ner-pos-sentiment.yaml`` (word 100 + char CNN 50 + case features, 2 layers of 128 per
direction) over real mixed steps, one call against chunks of several sizes, checks the chunks give
the same states, prints a table and writes JSON.

Usage: ``python benchmarks/word_chunks.py [--out FILE.json] [--threads 1] [--batch 32] [--chunks 16,32,48]``
(reads the example's training splits through ``$POLYTASK_DATA``, as ``polytask train`` does).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import median_ms  # benchmarks/timing.py, beside this script

from polytask.config import load_config
from polytask.data.corpus import load_corpus
from polytask.data.example import Example
from polytask.models.encoders import build_encoder
from polytask.training.setup import build_tasks

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "ner-pos-sentiment.yaml"


def example_setup() -> tuple[object, dict[str, list[list[str]]]]:
    """The example's encoder settings and every task's training sentences, read as training reads them."""
    config = load_config(CONFIG, [])
    corpus = load_corpus(config, build_tasks(config))
    return config.encoder, {name: [e.tokens for e in corpus.task_examples(name, "train")] for name in config.tasks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32, help="sentences per task in a step")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--chunks", default="16,24,32,48")
    args = parser.parse_args()
    if not os.environ.get("POLYTASK_DATA"):
        sys.exit("set POLYTASK_DATA to the shared data folder (../shared/data)")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    settings, sentences = example_setup()
    rng = random.Random(0)
    steps = [[s for task in sentences.values() for s in rng.sample(task, args.batch)] for _ in range(args.steps)]
    one_call = len(steps[0])  # a chunk as large as the batch: one call (the default, null, is chunks of 32)
    sizes = [one_call] + [int(size) for size in args.chunks.split(",")]
    encoders = {}
    for size in sizes:
        torch.manual_seed(0)  # the same weights for every chunk size
        encoder = build_encoder(settings.model_copy(update={"chunk_rows": size}))
        encoder.featurizer.fit([Example(tokens=s) for task in sentences.values() for s in task])
        encoder.build()
        encoders[size] = encoder
    batches = [encoders[one_call].featurizer(step) for step in steps]
    errors = {}
    with torch.no_grad():  # in eval mode (no dropout) every chunk size computes the same function
        for encoder in encoders.values():
            encoder.eval()
        whole = [encoders[one_call](**b).layers[-1] * b["mask"].unsqueeze(-1) for b in batches]
        for size, encoder in encoders.items():
            errors[size] = max((encoder(**b).layers[-1] * b["mask"].unsqueeze(-1) - one).abs().max().item()
                               for b, one in zip(batches, whole, strict=True))
    rows = []
    whole_ms = None
    for size, encoder in encoders.items():
        error = errors[size]
        encoder.train()  # timed as in training: with dropout
        ms = median_ms(lambda b, e=encoder: e(**b).layers[-1].pow(2).sum().backward(), batches)
        whole_ms = whole_ms or ms
        rows.append({"chunk_rows": None if size == one_call else size, "fwd_bwd_ms": ms, "speedup": whole_ms / ms, "max_abs_difference": error})
    words = statistics.mean(int(b["mask"].sum()) for b in batches)
    width = statistics.mean(b["mask"].shape[1] for b in batches)
    print(f"mixed steps of 3 x {args.batch} sentences: {words:.0f} words, padded to {width:.1f}; {args.threads} thread(s)")
    print(f"{'chunk_rows':>10} {'fwd+bwd ms':>11} {'speedup':>8} {'max |diff|':>11}")
    for row in rows:
        print(f"{row['chunk_rows'] or 'one call'!s:>10} {row['fwd_bwd_ms']:11.1f} {row['speedup']:7.2f}x {row['max_abs_difference']:11.1e}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"threads": args.threads, "torch": torch.__version__, "machine": platform.machine(),
                                        "batch_per_task": args.batch, "mean_words_per_step": words,
                                        "mean_width": width, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
