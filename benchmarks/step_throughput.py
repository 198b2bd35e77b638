"""Examples per second of the mixed multi-task step vs one task per step (MT-DNN style).

Same model, same run: the two step builders share one model and optimizer and alternate in
rounds, so machine load affects both alike. Mixed: every step holds a micro-batch of each
of the 3 heterogeneous tasks (CoNLL-2003 NER, CoNLL-2000 POS, sentence polarity) and one
encoder pass serves them; one-task: a round-robin sampler picks one task per step.

    POLYTASK_DATA=../shared/data python benchmarks/step_throughput.py [--steps 20] [--rounds 3] [--out FILE.json]
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


def build(tasks_per_step: str, budget: int):
    from polytask.config import load_config
    from polytask.training.setup import build_experiment

    overrides = [f"tasks.{t}.data.max_train={budget}" for t in ("ner", "pos", "sentiment")]
    overrides += [f"tasks.{t}.data.max_eval=50" for t in ("ner", "pos", "sentiment")]
    overrides += ["sampling.method=round_robin", f"sampling.tasks_per_step={tasks_per_step}"]
    return build_experiment(load_config(ROOT / "examples/ner-pos-sentiment.yaml", overrides))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round and mode")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=2000, help="training examples read per task")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not os.environ.get("POLYTASK_DATA"):
        sys.exit("set POLYTASK_DATA to the shared corpora folder")

    import torch
    from rich.console import Console
    from rich.table import Table

    from polytask.data.steps import StepBuilder
    from polytask.training.trainer import Trainer

    torch.set_num_threads(2)
    experiment = build("all", args.budget)
    trainer = Trainer(experiment, progress=False)
    one_config = experiment.config.model_copy(deep=True)
    one_config.sampling.tasks_per_step = 1
    builders = {
        "mixed (all 3 tasks per step)": trainer.steps,
        "one task per step": StepBuilder(one_config, experiment.corpus, experiment.tasks, experiment.model.encoder.featurizer),
    }
    rates: dict[str, list[float]] = {name: [] for name in builders}
    token_rates: dict[str, list[float]] = {name: [] for name in builders}
    step = 0
    for round_index in range(args.rounds + 1):  # round 0 warms up
        for name, builder in builders.items():
            batches = [builder.build(step + i, 10_000) for i in range(args.steps)]
            started = time.perf_counter()
            for batch in batches:
                trainer.train_step(batch)
            seconds = time.perf_counter() - started
            step += args.steps
            if round_index:
                rates[name].append(sum(len(b.examples) for b in batches) / seconds)
                token_rates[name].append(sum(sum(b.lengths) for b in batches) / seconds)
    records = [{"mode": name, "examples_per_second": statistics.median(values),
                "tokens_per_second": statistics.median(token_rates[name]), "steps": args.steps, "rounds": args.rounds,
                "threads": torch.get_num_threads()} for name, values in rates.items()]
    _mixed, single = (r["examples_per_second"] for r in records)
    for record in records:
        record["ratio_to_one_task"] = record["examples_per_second"] / single
    table = Table(title=f"step throughput (BiLSTM, {args.rounds} rounds × {args.steps} steps, median)")
    for column in ("mode", "examples/s", "tokens/s", "ratio (examples/s)"):
        table.add_column(column)
    for record in records:
        table.add_row(record["mode"], f"{record['examples_per_second']:.0f}", f"{record['tokens_per_second']:.0f}",
                      f"{record['ratio_to_one_task']:.2f}")
    Console().print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(records, indent=2) + "\n")


if __name__ == "__main__":
    main()
