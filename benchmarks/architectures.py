"""Training-step time, peak memory and parameter count of every sharing architecture, as a ratio to hard sharing.

Why: an architecture that protects a task from negative transfer is only worth its cost if that cost is
known; this measures it on the tagger workload of ``balancing_overhead.py``, architectures interleaved in
rounds so that machine noise hits all of them alike.

Usage: ``python benchmarks/architectures.py [--out FILE.json] [--steps N] [--rounds R] [--threads T]
[--architectures hard,mmoe,...] [--methods ew,pcgrad] [--encoder bilstm|cnn]``.

Workload (``torch.set_num_threads(--threads)``, default 2; random fixed labels, 8 batches cycled, inputs
prepared before timing): the tagger of ``balancing_overhead.py`` built through polytask's own model:
word embeddings 10,000 × 100, a 2-layer BiLSTM (hidden 128 per direction; ``--encoder cnn``: 2 residual
convolutions of 256 channels), no character features, no dropout, token heads with 45, 23 and 9 classes
(``pos``, ``chunk``, ``ner``) reading the top layer; 32 sentences × 30 tokens; Adam; equal weighting
unless ``--methods`` says otherwise (gradient aggregators in exact mode).

Rows, each a polytask ``sharing`` section with its defaults unless stated: ``hard``; ``branched`` with
groups {pos, chunk} {ner} on the shared bottom layer; ``mmoe`` (4 experts: copies of the top layer);
``ple`` (two extraction levels, one shared and one task expert each); ``cgc`` (one level); ``cross_stitch``
(three full towers, embeddings included); ``soft`` (three encoders and the L2 penalty).

Time: wall-clock median of the full step (forward, balancing backward, the penalty's backward where there
is one, optimizer step) and the process CPU time. Peak memory: one extra step under ``torch.profiler``
with ``profile_memory=True`` (the peak of tensor bytes allocated during the step) plus the persistent
parameter and optimizer-state bytes, as in ``balancing_overhead.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # step_memory, also when loaded by path

from step_memory import step_peak_bytes

from polytask.balancing.balancer import StepContext
from polytask.balancing.registry import build_balancer
from polytask.config import EncoderConfig, HeadConfig, SharingConfig
from polytask.models.multitask import MultiTaskModel

TASKS = {"pos": 45, "chunk": 23, "ner": 9}
VOCABULARY = 10_000
ROWS = {
    "hard": {"type": "hard"},
    "branched": {"type": "branched", "groups": [["pos", "chunk"], ["ner"]]},
    "mmoe": {"type": "mmoe"},
    "ple": {"type": "ple"},
    "cgc": {"type": "cgc"},
    "cross_stitch": {"type": "cross_stitch"},
    "soft": {"type": "soft"},
}


def build_model(sharing: dict, encoder_type: str) -> MultiTaskModel:
    from polytask.data.vocab import Vocabulary
    from polytask.models.encoders import build_encoder
    from polytask.models.sharing import build_sharing

    torch.manual_seed(0)
    options = {"kernel_size": 3} if encoder_type == "cnn" else {}
    encoder = build_encoder(EncoderConfig(type=encoder_type, word_dim=100, chars=False, hidden=128 if encoder_type == "bilstm" else 256,
                                          layers=2, dropout=0.0, embedding_dropout=0.0, **options))
    encoder.featurizer.words = Vocabulary(f"w{i}" for i in range(VOCABULARY - 2))
    encoder.build()
    specs = {task: ("token", classes, HeadConfig(dropout=0.0)) for task, classes in TASKS.items()}
    return MultiTaskModel(encoder, specs, sharing=build_sharing(SharingConfig(**sharing), encoder, list(TASKS)))


def batches(n: int) -> list[dict[str, Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [{"word_ids": torch.randint(2, VOCABULARY, (32, 30), generator=g), "mask": torch.ones(32, 30, dtype=torch.bool),
             **{t: torch.randint(0, c, (32, 30), generator=g) for t, c in TASKS.items()}} for _ in range(n)]


@dataclass
class Row:
    architecture: str
    method: str
    model: MultiTaskModel
    optimizer: torch.optim.Optimizer
    balancer: object
    times: list[float] = field(default_factory=list)
    cpu_times: list[float] = field(default_factory=list)
    cursor: int = 0

    @classmethod
    def build(cls, architecture: str, method: str, encoder_type: str) -> Row:
        model = build_model(ROWS[architecture], encoder_type)
        balancer = build_balancer(method, list(TASKS))
        optimizer = torch.optim.Adam([*model.parameters(), *balancer.parameters()], lr=1e-3)
        balancer.attach(model.encoder)  # as the trainer: the embedding lookups are the balancer's to record
        return cls(architecture, method, model, optimizer, balancer)

    def step(self, data: list[dict[str, Tensor]], zero_grad: bool = True) -> None:
        batch = data[self.cursor % len(data)]
        self.cursor += 1
        if zero_grad:
            self.optimizer.zero_grad(set_to_none=True)
        inputs = {"word_ids": batch["word_ids"], "mask": batch["mask"]}
        with self.balancer.watch_forward():
            output = self.model(inputs)
        losses = {t: torch.nn.functional.cross_entropy(output.logits[t].flatten(0, 1), batch[t].flatten()) for t in TASKS}
        context = StepContext(shared_parameters=self.model.shared_parameters(), representation=output.representation,
                              step=self.cursor)
        self.balancer.backward(losses, context)
        penalty = self.model.penalty()
        if penalty is not None:
            penalty.backward()
        self.optimizer.step()
        self.balancer.after_optimizer_step({t: loss.detach() for t, loss in losses.items()}, context)

    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def peak_bytes(self, data: list[dict[str, Tensor]]) -> int:
        """Persistent bytes + the peak of tensor bytes allocated during one step."""
        return step_peak_bytes(self.model, self.optimizer, lambda: self.step(data, zero_grad=False))


def measure(architectures: list[str], methods: list[str], steps: int, rounds: int, encoder_type: str) -> list[dict]:
    data = batches(8)
    rows = [Row.build(a, m, encoder_type) for m in methods for a in architectures]
    for row in rows:  # warm-up: first-call allocations, the engine's VJP strategy
        for _ in range(2):
            row.step(data)
    for _ in range(rounds):
        for row in rows:
            for _ in range(steps):
                start, cpu = time.perf_counter(), time.process_time()
                row.step(data)
                row.times.append(time.perf_counter() - start)
                row.cpu_times.append(time.process_time() - cpu)
    peaks = {id(row): row.peak_bytes(data) for row in rows}
    records = []
    for row in rows:
        hard = next(r for r in rows if r.architecture == "hard" and r.method == row.method) \
            if any(r.architecture == "hard" and r.method == row.method for r in rows) else None
        median = statistics.median(row.times)
        record = {"workload": f"tagger-{encoder_type}", "architecture": row.architecture, "method": row.method,
                  "sharing": ROWS[row.architecture], "median_ms": round(median * 1e3, 3),
                  "cpu_median_ms": round(statistics.median(row.cpu_times) * 1e3, 3),
                  "peak_mb": round(peaks[id(row)] / 2**20, 2), "parameters": row.parameters(),
                  "shared_parameters": sum(p.numel() for p in row.model.shared_parameters().values()),
                  "steps": len(row.times)}
        if hard is not None:
            record.update(time_ratio_to_hard=round(median / statistics.median(hard.times), 3),
                          cpu_ratio_to_hard=round(statistics.median(row.cpu_times) / statistics.median(hard.cpu_times), 3),
                          peak_ratio_to_hard=round(peaks[id(row)] / peaks[id(hard)], 3),
                          parameter_ratio_to_hard=round(row.parameters() / hard.parameters(), 3))
        records.append(record)
    return records


def print_table(records: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Sharing architectures on the tagger workload (ratios to hard sharing in the same run)")
    for column in ("workload", "architecture", "method", "median ms", "× hard", "CPU × hard", "peak MB", "peak × hard",
                   "parameters", "× hard"):
        table.add_column(column, justify="left" if column in ("workload", "architecture", "method") else "right")
    for r in records:
        table.add_row(r["workload"], r["architecture"], r["method"], f"{r['median_ms']:.1f}",
                      f"{r.get('time_ratio_to_hard', float('nan')):.2f}", f"{r.get('cpu_ratio_to_hard', float('nan')):.2f}",
                      f"{r['peak_mb']:.1f}", f"{r.get('peak_ratio_to_hard', float('nan')):.2f}",
                      f"{r['parameters'] / 1e6:.2f}M", f"{r.get('parameter_ratio_to_hard', float('nan')):.2f}")
    Console(width=140).print(table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the records")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per row and round")
    parser.add_argument("--rounds", type=int, default=6, help="rounds over all rows")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--architectures", default=",".join(ROWS), help=f"comma-separated, of {', '.join(ROWS)}")
    parser.add_argument("--methods", default="ew", help="comma-separated balancing methods")
    parser.add_argument("--encoder", default="bilstm", choices=("bilstm", "cnn"))
    args = parser.parse_args(argv)
    architectures = [a.strip() for a in args.architectures.split(",") if a.strip()]
    unknown = sorted(set(architectures) - set(ROWS))
    if unknown:
        parser.error(f"unknown architectures {unknown}; choose from {sorted(ROWS)}")
    if "hard" not in architectures:
        architectures.insert(0, "hard")  # the reference of every ratio
    torch.set_num_threads(args.threads)
    records = measure(architectures, [m.strip() for m in args.methods.split(",") if m.strip()], args.steps,
                      args.rounds, args.encoder)
    print_table(records)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(records, indent=1) + "\n")


if __name__ == "__main__":
    main()
