"""Training and inference throughput (words per second) of the BiLSTM, CNN and MiniLM encoders.

Why: a pretrained transformer costs far more per word than the from-scratch encoders; training
budgets (examples/minilm-ner-pos-sentiment.yaml) are set from these numbers.

Usage: ``python benchmarks/encoder_throughput.py [--out benchmarks/results/encoder_throughput.json]
[--steps N] [--warmup W] [--threads T] [--encoders bilstm,cnn,minilm] [--data FILE.conll]``.

Workload: every encoder with one token head (45 classes, random fixed labels), AdamW, the same
batches of 32 sequences × 30 words: consecutive 30-word chunks of a CoNLL file (default
``$POLYTASK_DATA/conll2000/train.txt``; without it, the seeded synthetic benchmark's words,
which a word-piece tokenizer splits more than English). A training step is featurization (the
collate-time work: vocabulary look-ups, or sub-word tokenisation and windowing), forward,
backward and the optimizer step; an inference step is featurization and a forward pass under
``torch.no_grad()`` in eval mode. Reported: the median over ``--steps`` steps after ``--warmup``
steps, as words per second (960 words per step), with ``torch.set_num_threads(--threads)``.

Encoders: ``bilstm`` (word 100 + char CNN 50, 2 layers of 128 per direction; as in
examples/ner-pos-sentiment.yaml), ``cnn`` (same input, 200 channels, 3 layers) and ``minilm``
(all-MiniLM-L6-v2, 6 layers of 384, first-piece pooling, every weight trained).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from polytask.config import EncoderConfig
from polytask.data.example import Example
from polytask.models.encoders import build_encoder

BATCH, WORDS, CLASSES = 32, 30, 45
ENCODERS = {
    "bilstm": {"type": "bilstm", "hidden": 128, "layers": 2},
    "cnn": {"type": "cnn", "hidden": 200, "layers": 3},
    "minilm": {"type": "transformer", "model": "minilm"},
}


def corpus_words(path: str | None) -> list[str]:
    if path:
        words = [line.split()[0] for line in Path(path).read_text(encoding="utf-8").splitlines()
                 if line.strip() and not line.startswith("-DOCSTART-")]
        if words:
            return words
    from polytask.data.synthetic import generate_splits

    splits = generate_splits({"tag": "tag"})
    return [w for e in splits["train"] for w in e.tokens]


def make_batches(words: list[str], count: int) -> list[list[list[str]]]:
    """``count`` batches of 32 consecutive 30-word chunks (cycling over the corpus)."""
    need = count * BATCH * WORDS
    stream = (words * (need // len(words) + 1))[:need]
    chunks = [stream[i : i + WORDS] for i in range(0, need, WORDS)]
    return [chunks[i : i + BATCH] for i in range(0, len(chunks), BATCH)]


def measure(name: str, batches: list[list[list[str]]], steps: int, warmup: int) -> dict[str, float]:
    torch.manual_seed(0)
    encoder = build_encoder(EncoderConfig(**ENCODERS[name]))
    encoder.featurizer.fit([Example(tokens=s) for batch in batches for s in batch])
    encoder.build()
    head = nn.Linear(encoder.layer_dims[-1], CLASSES)
    parameters = [p for p in list(encoder.parameters()) + list(head.parameters()) if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=1e-5)
    labels = torch.randint(0, CLASSES, (BATCH, WORDS), generator=torch.Generator().manual_seed(1))

    def train_step(batch: list[list[str]]) -> None:
        inputs = encoder.featurizer(batch)
        states = encoder(**inputs).layers[-1]
        loss = nn.functional.cross_entropy(head(states).flatten(0, 1), labels.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    @torch.no_grad()
    def inference_step(batch: list[list[str]]) -> None:
        head(encoder(**encoder.featurizer(batch)).layers[-1])

    def timed(step, training: bool) -> list[float]:
        encoder.train(training)
        times = []
        for i in range(warmup + steps):
            start = time.perf_counter()
            step(batches[i % len(batches)])
            if i >= warmup:
                times.append(time.perf_counter() - start)
        return times

    train, infer = timed(train_step, True), timed(inference_step, False)
    featurize = []
    for batch in batches[:steps]:
        start = time.perf_counter()
        encoder.featurizer(batch)
        featurize.append(time.perf_counter() - start)
    words = BATCH * WORDS
    return {
        "train_words_per_s": words / statistics.median(train),
        "inference_words_per_s": words / statistics.median(infer),
        "train_step_ms": 1000 * statistics.median(train),
        "inference_step_ms": 1000 * statistics.median(infer),
        "featurize_ms": 1000 * statistics.median(featurize),
        "trainable_parameters": sum(p.numel() for p in parameters),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--encoders", default=",".join(ENCODERS))
    default_data = os.path.join(os.environ["POLYTASK_DATA"], "conll2000", "train.txt") if os.environ.get("POLYTASK_DATA") else None
    parser.add_argument("--data", default=default_data, help="a CoNLL file whose first column gives the words")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.encoders.split(",") if n.strip()]
    unknown = sorted(set(names) - set(ENCODERS))
    if unknown:
        parser.error(f"unknown encoders {unknown}; choose from {sorted(ENCODERS)}")
    batches = make_batches(corpus_words(args.data), max(args.steps + args.warmup, 1))
    results = {}
    print(f"{'encoder':8} {'train words/s':>14} {'infer words/s':>14} {'train ms':>9} {'infer ms':>9} {'featurize ms':>13} {'params':>11}")
    for name in names:
        r = results[name] = measure(name, batches, args.steps, args.warmup)
        print(f"{name:8} {r['train_words_per_s']:14.0f} {r['inference_words_per_s']:14.0f} {r['train_step_ms']:9.1f} "
              f"{r['inference_step_ms']:9.1f} {r['featurize_ms']:13.2f} {r['trainable_parameters']:11,d}")
    if args.out:
        record = {"batch": [BATCH, WORDS], "steps": args.steps, "warmup": args.warmup, "threads": args.threads,
                  "data": args.data or "synthetic", "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
                  "encoders": results}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
