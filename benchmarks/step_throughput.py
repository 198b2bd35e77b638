"""Examples and words per second of the real mixed multi-task step vs one task per step and vs uniform batches.

Same model, same run: the step builders share one model, trainer and optimizer and alternate in
rounds, so machine load affects all alike. Mixed: every step holds a micro-batch of each of the 3
heterogeneous tasks (CoNLL-2003 NER, CoNLL-2000 POS, sentence polarity) and one encoder pass serves
them; one-task: a round-robin sampler picks one task per step; uniform: ``encoder_throughput.py``'s
workload through the same trainer, batches of ``batch_size`` consecutive 30-word chunks of the POS
task's training words (labelled for POS), the batches a transformer pads least.

    POLYTASK_DATA=../shared/data python benchmarks/step_throughput.py [--config examples/ner-pos-sentiment.yaml]
        [--modes mixed,one-task,uniform] [--steps 20] [--rounds 3] [--threads 2] [--clock wall|cpu] [--compare-packing]
        [--set FIELD=VALUE] [--out FILE.json]

``--compare-packing`` (transformer configs) adds the mixed and uniform modes with window packing
switched off on the same model, so the effect of packing is measured in the same rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TASKS = ("ner", "pos", "sentiment")
MODES = ("mixed", "one-task", "uniform")
CHUNK_WORDS = 30


def build(config: Path, budget: int, overrides: list[str]):
    from polytask.config import load_config
    from polytask.training.setup import build_experiment

    sets = [f"tasks.{t}.data.max_train={budget}" for t in TASKS] + [f"tasks.{t}.data.max_eval=50" for t in TASKS]
    sets += ["sampling.method=round_robin", "sampling.tasks_per_step=all", *overrides]
    return build_experiment(load_config(config, sets))


def uniform_batches(experiment, count: int, batch_size: int) -> list:
    """``count`` batches of ``batch_size`` consecutive 30-word chunks of the POS training words, POS-labelled."""
    from polytask.data.batching import collate
    from polytask.data.example import Example

    words, tags = [], []
    for example in experiment.corpus.task_examples("pos", "train"):
        words += example.tokens
        tags += example.labels["pos"]
    need = count * batch_size * CHUNK_WORDS
    words, tags = (words * (need // len(words) + 1))[:need], (tags * (need // len(tags) + 1))[:need]
    chunks = [Example(tokens=words[i : i + CHUNK_WORDS], labels={"pos": tags[i : i + CHUNK_WORDS]})
              for i in range(0, need, CHUNK_WORDS)]
    featurizer, codec = experiment.model.encoder.featurizer, {"pos": experiment.tasks["pos"]}
    return [collate(chunks[i : i + batch_size], featurizer, codec) for i in range(0, len(chunks), batch_size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "examples/ner-pos-sentiment.yaml")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round and mode")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=2000, help="training examples read per task")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compare-packing", action="store_true")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: this process's CPU seconds (with --threads 1, steadier than wall time on a shared machine)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not os.environ.get("POLYTASK_DATA"):
        sys.exit("set POLYTASK_DATA to the shared corpora folder")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if set(modes) - set(MODES):
        parser.error(f"unknown modes {sorted(set(modes) - set(MODES))}; choose from {list(MODES)}")

    import torch
    from rich.console import Console
    from rich.table import Table

    from polytask.data.steps import StepBuilder
    from polytask.training.trainer import Trainer

    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    experiment = build(args.config, args.budget, [*args.overrides, f"training.threads={args.threads}"])
    trainer = Trainer(experiment, progress=False)
    encoder = experiment.model.encoder
    one_config = experiment.config.model_copy(deep=True)
    one_config.sampling.tasks_per_step = 1
    single = StepBuilder(one_config, experiment.corpus, experiment.tasks, encoder.featurizer)
    batch_size = experiment.config.training.batch_size
    sources = {"mixed": lambda step: trainer.steps.build(step, 10_000), "one-task": lambda step: single.build(step, 10_000)}
    uniform = uniform_batches(experiment, args.steps, batch_size) if "uniform" in modes else []
    sources["uniform"] = lambda step: uniform[step % len(uniform)]
    runs = [(mode, True) for mode in modes]
    packing = bool(getattr(encoder, "packing", False))
    if args.compare_packing:
        if not packing:
            sys.exit("--compare-packing needs a transformer encoder that packs (encoder.packing)")
        runs += [(mode, False) for mode in modes if mode != "one-task"]
    label = {(m, p): m + ("" if p or not args.compare_packing else " (packing off)") for m, p in runs}
    rates: dict[tuple, list[float]] = {run: [] for run in runs}
    word_rates: dict[tuple, list[float]] = {run: [] for run in runs}
    step = 0
    for round_index in range(args.rounds + 1):  # round 0 warms up
        for run in runs:
            mode, packed = run
            batches = [sources[mode](step + i) for i in range(args.steps)]
            if hasattr(encoder, "packing"):
                encoder.packing = packing and packed
            started = clock()
            for batch in batches:
                trainer.train_step(batch)
            seconds = clock() - started
            step += args.steps
            if round_index:
                rates[run].append(sum(len(b.examples) for b in batches) / seconds)
                word_rates[run].append(sum(sum(b.lengths) for b in batches) / seconds)
    records = [{"mode": label[run], "examples_per_second": statistics.median(rates[run]),
                "words_per_second": statistics.median(word_rates[run]), "tokens_per_second": statistics.median(word_rates[run]),
                "round_words_per_second": word_rates[run], "steps": args.steps, "rounds": args.rounds,
                "threads": torch.get_num_threads(), "clock": args.clock, "config": str(args.config),
                "encoder": experiment.config.encoder.type, "packing": bool(packing and run[1])} for run in runs]
    by_label = {r["mode"]: r for r in records}
    for record in records:
        if "one-task" in by_label:
            record["ratio_to_one_task"] = record["examples_per_second"] / by_label["one-task"]["examples_per_second"]
        twin = record["mode"].replace("mixed", "uniform")
        if "mixed" in record["mode"] and twin in by_label:  # mixed / uniform words per second, same packing setting
            per_round = [a / b for a, b in zip(record["round_words_per_second"], by_label[twin]["round_words_per_second"])]
            record["words_ratio_to_uniform"] = statistics.median(per_round)
    table = Table(title=f"step throughput ({experiment.config.encoder.type}, {args.rounds} rounds × {args.steps} steps, median)")
    for column in ("mode", "examples/s", "words/s", "ratio to one-task (examples/s)", "ratio to uniform (words/s)"):
        table.add_column(column)
    for r in records:
        table.add_row(r["mode"], f"{r['examples_per_second']:.1f}", f"{r['words_per_second']:.0f}",
                      f"{r['ratio_to_one_task']:.2f}" if "ratio_to_one_task" in r else "",
                      f"{r['words_ratio_to_uniform']:.2f}" if "words_ratio_to_uniform" in r else "")
    Console().print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(records, indent=2) + "\n")


if __name__ == "__main__":
    main()
