"""Chunking F1 of the three decoders on the same training budget: softmax, softmax + constraints, CRF.

One seeded slice of CoNLL-2000 chunking (iob2), one small BiLSTM, per seed: a softmax run and a
CRF run with identical data, steps and initial encoder weights; the softmax run is also decoded
under the scheme's constraints (decoding only: its training is the softmax run's). Records the
dev and test span F1, the test sentences with ill-formed chunks, and the training run's seconds.

    POLYTASK_DATA=../shared/data python benchmarks/decoders.py [--max-train 3000] [--epochs 4] [--seeds 1,2] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def chunk_config(train: str, test: str, max_train: int, epochs: int, seed: int, decoder: str, threads: int,
                 dev: float = 0.1):
    from polytask.config import validate_config

    return validate_config({
        "tasks": {"chunk": {"type": "token_classification", "scheme": "iob2",
                            "data": {"format": "conll", "train": train, "test": test, "column": 2,
                                     "split": {"dev": dev, "seed": 13}, "max_train": max_train}}},
        "encoder": {"type": "bilstm", "word_dim": 50, "char_filters": 30, "hidden": 64, "layers": 1},
        "heads": {"chunk": {"decoder": decoder}},
        "training": {"epochs": epochs, "batch_size": 32, "lr": 0.004, "threads": threads, "seed": seed,
                     "early_stopping": {"patience": None}},
    })


def scores(run: Path, config) -> dict[str, float]:
    from polytask.data.corpus import load_corpus
    from polytask.evaluation.scoring import evaluate, predict
    from polytask.tasks.tag_constraints import well_formed
    from polytask.training.run_dir import load_run

    def measure(experiment) -> dict[str, float]:
        corpus = load_corpus(config, experiment.tasks)
        test = corpus.examples("test")
        predicted = predict(experiment.model, experiment.tasks, test)["chunk"]
        return {"dev_f1": evaluate(experiment.model, experiment.tasks, corpus.examples("dev"))["chunk"]["f1"],
                "test_f1": evaluate(experiment.model, experiment.tasks, test)["chunk"]["f1"],
                "ill_formed_test_sentences": sum(p != well_formed(p, "iob2") for p in predicted)}

    experiment = load_run(run)
    plain = measure(experiment)
    if config.head("chunk").decoder != "softmax":
        return {"plain": plain}
    experiment.tasks["chunk"].configure_decoder("softmax", True)  # the same weights, decoded under the constraints
    return {"plain": plain, "constrained": measure(experiment)}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = os.environ.get("POLYTASK_DATA", "")
    parser.add_argument("--train", default=f"{data}/conll2000/train.txt")
    parser.add_argument("--test", default=f"{data}/conll2000/test.txt")
    parser.add_argument("--max-train", type=int, default=3000, help="seeded training sentences")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dev", type=float, default=0.1, help="fraction of train carved off as dev (seed 13)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    from polytask.training.run import train_run

    records = []
    with tempfile.TemporaryDirectory() as scratch:
        for seed in (int(s) for s in args.seeds.split(",")):
            for decoder in ("softmax", "crf"):
                config = chunk_config(args.train, args.test, args.max_train, args.epochs, seed, decoder, args.threads,
                                      args.dev)
                run = Path(scratch) / f"{decoder}-{seed}"
                start = time.perf_counter()
                train_run(config, run, progress=False)
                seconds = time.perf_counter() - start
                for variant, result in scores(run, config).items():
                    name = "softmax+constrained" if variant == "constrained" else decoder
                    records.append({"seed": seed, "decoder": name, **result,
                                    "train_seconds": round(seconds, 1) if variant == "plain" else None})
                    print(json.dumps(records[-1]), file=sys.stderr, flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(records, indent=2) + "\n")
    return records


if __name__ == "__main__":
    main()
