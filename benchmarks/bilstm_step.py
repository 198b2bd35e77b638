"""Why the BiLSTM encoder runs each direction on padded sentences instead of ``pack_padded_sequence``.

Why: on CPU, a packed LSTM's backward pass runs step by step outside oneDNN (a zero-filled gradient,
copy and add per time step), while a plain padded one-way LSTM runs oneDNN's fused kernels forward and
backward. The encoder keeps the packed result to float rounding (the backward direction reads each sentence
reversed within its own length; ``tests/models/test_bilstm_export_module.py``). This script times a
forward + backward pass of both over the same batches of real sentences, checks they agree, prints a
table and writes JSON.

Usage: ``python benchmarks/bilstm_step.py [--out FILE.json] [--threads 1] [--batch 32] [--data FILE.conll]``
(default data: ``$POLYTASK_DATA/conll2003/train.txt``; without it, seeded sentences of 5–60 words).
Model: word 100 + char CNN 50 + case features, 2 layers of 128 per direction (examples/ner-pos-sentiment.yaml).
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
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import median_ms  # benchmarks/timing.py, beside this script

from polytask.config import EncoderConfig
from polytask.data.example import Example
from polytask.data.readers.conll import read_conll
from polytask.models.encoders.bilstm import BiLSTMEncoder


def sentences(path: str | None, count: int) -> list[list[str]]:
    if path and Path(path).is_file():
        return [example.tokens for example in read_conll(Path(path), {})[:count]]
    rng = random.Random(0)
    return [[f"w{rng.randrange(2000)}" for _ in range(rng.randint(5, 60))] for _ in range(count)]


def packed_layers(encoder: BiLSTMEncoder, inputs: dict) -> torch.Tensor:
    """The reference: every layer through torch's packed-sequence LSTM with the encoder's own modules."""
    mask = inputs["mask"]
    states = encoder.embed(inputs["word_ids"], inputs.get("char_ids"), inputs.get("shape_ids"))
    for lstm in encoder.lstms:
        packed = pack_padded_sequence(states, mask.sum(1), batch_first=True, enforce_sorted=False)
        states, _ = pad_packed_sequence(torch.nn.LSTM.forward(lstm, packed)[0], batch_first=True, total_length=mask.shape[1])
    return states


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=12)
    default = os.path.join(os.environ["POLYTASK_DATA"], "conll2003/train.txt") if os.environ.get("POLYTASK_DATA") else None
    parser.add_argument("--data", default=default)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    corpus = sentences(args.data, args.batch * args.batches)
    encoder = BiLSTMEncoder(EncoderConfig(type="bilstm", hidden=128, layers=2, case_features=True))
    encoder.featurizer.fit([Example(tokens=s) for s in corpus])
    encoder.build()
    encoder.eval()  # no dropout: both paths compute the same function
    batches = [encoder.featurizer(corpus[i:i + args.batch]) for i in range(0, len(corpus), args.batch)]
    with torch.no_grad():
        error = max((encoder(**b).layers[-1] - packed_layers(encoder, b)).abs().max().item() for b in batches)
    padded = median_ms(lambda b: encoder(**b).layers[-1].pow(2).sum().backward(), batches)
    packed = median_ms(lambda b: packed_layers(encoder, b).pow(2).sum().backward(), batches)
    words = statistics.mean(int(b["mask"].sum()) for b in batches)
    row = {"batch": args.batch, "mean_words_per_batch": words, "mean_width": statistics.mean(b["mask"].shape[1] for b in batches),
           "packed_ms": packed, "padded_ms": padded, "speedup": packed / padded, "max_abs_difference": error}
    print(f"{'path':8} {'fwd+bwd ms':>11}  (batches of {args.batch} sentences, {words:.0f} words; {args.threads} thread(s))")
    print(f"{'packed':8} {packed:11.1f}\n{'padded':8} {padded:11.1f}   {packed / padded:.2f}x faster, max |difference| {error:.1e}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"threads": args.threads, "torch": torch.__version__,
                                        "machine": platform.machine(), "data": args.data, "rows": [row]}, indent=2) + "\n")


if __name__ == "__main__":
    main()
