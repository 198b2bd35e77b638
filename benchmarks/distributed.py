"""Examples per second at 1 and 2 data-parallel processes (CPU, gloo), and bytes all-reduced per step.

For EW, UW, PCGrad and UPGrad in exact and representation modes (the gradient methods in both):
each configuration runs in its own group of spawned processes with one torch thread each (gloo on
CPU: two processes use two cores where one uses one; ``--device cuda``: NCCL, one GPU per process;
``--precisions fp32,bf16`` compares autocast dtypes). Bytes communicated are counted by the
balancer's reduce hook (``GradientReduce.communicated``: the all-reduced buffers, the row-union
gathers). Workload: the CoNLL-2000 POS + chunking BiLSTM tagger (``--data conll2000``, needs
``$POLYTASK_DATA``) or the test fixtures' tiny tagger (``--data fixtures``).

    POLYTASK_DATA=../shared/data python benchmarks/distributed.py [--steps 20] [--out FILE.json]
    POLYTASK_DATA=../shared/data python benchmarks/distributed.py --device cuda --precisions fp32,bf16 --processes 1
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = [("ew", "exact"), ("uw", "exact"), ("pcgrad", "exact"), ("pcgrad", "representation"),
            ("upgrad", "exact"), ("upgrad", "representation")]


def config_dict(data: str, method: str, mode: str, batch_size: int, device: str = "cpu",
                precision: str = "fp32") -> dict[str, Any]:
    """The workload's config (dropout off) for one method and mode."""
    import yaml

    if data == "conll2000":
        config = yaml.safe_load((ROOT / "examples/conll2000-pos-chunk.yaml").read_text())
        for task in config["tasks"].values():
            task["data"]["max_train"] = 2000
            task["data"]["max_eval"] = 50
    else:
        conll = str(ROOT / "tests/fixtures/conll2000_tiny.txt")
        config = {"tasks": {
            "pos": {"type": "token_classification", "data": {"format": "conll", "train": conll, "dev": conll, "column": 1}},
            "chunk": {"type": "token_classification", "scheme": "iob2",
                      "data": {"format": "conll", "train": conll, "dev": conll, "column": 2}}},
            "encoder": {"type": "bilstm", "word_dim": 16, "char_dim": 8, "char_filters": 8, "hidden": 16}}
    config.setdefault("encoder", {}).update(dropout=0.0, embedding_dropout=0.0)
    config["balancing"] = {"method": method, "mode": mode}
    config.setdefault("training", {}).update(batch_size=batch_size, threads=1, device=device, precision=precision,
                                             epochs=1000)
    return config


def worker(rank: int, world: int, port: int, out: str, job: dict[str, Any]) -> None:
    import torch
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from polytask.training.device import collective_backend, is_cuda, resolve_device

    device = resolve_device(job["config"]["training"]["device"], local_rank=rank)
    if is_cuda(device):
        torch.cuda.set_device(device)
    dist.init_process_group(collective_backend(device), rank=rank, world_size=world)
    from polytask.config import validate_config
    from polytask.training.distributed import DataParallel
    from polytask.training.setup import build_experiment
    from polytask.training.trainer import Trainer

    trainer = Trainer(build_experiment(validate_config(job["config"])), progress=False, parallel=DataParallel.current())

    def step() -> int:
        selected, examples = trainer.steps.draw(trainer.step, trainer.total_steps)
        batches = trainer.parallel.step_batches(selected, examples, trainer.model.encoder.featurizer, trainer.tasks)
        trainer.train_step(batches)
        return len(examples)

    for _ in range(job["warmup"]):
        step()
    if is_cuda(device):
        torch.cuda.synchronize()
    dist.barrier()
    sent = trainer.reduce.communicated
    started, examples = time.perf_counter(), 0
    for _ in range(job["steps"]):
        examples += step()
    if is_cuda(device):
        torch.cuda.synchronize()
    dist.barrier()
    seconds = time.perf_counter() - started
    if rank == 0:
        record = {"examples_per_s": round(examples / seconds, 1), "seconds": round(seconds, 3),
                  "bytes_per_step": (trainer.reduce.communicated - sent) // job["steps"],
                  "parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)}
        Path(out).write_text(json.dumps(record))
    dist.destroy_process_group()


def measure(config: dict[str, Any], processes: int, steps: int, warmup: int, scratch: Path) -> dict[str, Any]:
    import torch.multiprocessing as mp

    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:  # the spawned processes import this file's module by name to find ``worker``
        sys.path.insert(0, here)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = scratch / f"result-{port}.json"
    mp.spawn(worker, args=(processes, port, str(out), {"config": config, "steps": steps, "warmup": warmup}),
             nprocs=processes, join=True)
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=["conll2000", "fixtures"],
                        default="conll2000" if os.environ.get("POLYTASK_DATA") else "fixtures")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32, help="global per-task batch")
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--settings", default=",".join(f"{m}:{mode}" for m, mode in SETTINGS),
                        help="method:mode pairs")
    parser.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL, one GPU per process)")
    parser.add_argument("--precisions", default="fp32", help="comma-separated: fp32,bf16,fp16")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.data == "conll2000" and not os.environ.get("POLYTASK_DATA"):
        sys.exit("set POLYTASK_DATA to the shared corpora folder (or pass --data fixtures)")
    import tempfile

    records = []
    with tempfile.TemporaryDirectory() as scratch:
        for setting in args.settings.split(","):
            method, mode = setting.split(":")
            for precision in args.precisions.split(","):
                for processes in (int(p) for p in args.processes.split(",")):
                    config = config_dict(args.data, method, mode, args.batch_size, args.device, precision)
                    result = measure(config, processes, args.steps, args.warmup, Path(scratch))
                    record = {"workload": args.data, "method": method, "mode": mode, "processes": processes,
                              "device": args.device, "precision": precision, "threads_per_process": 1,
                              "batch_size": args.batch_size, "steps": args.steps, **result}
                    records.append(record)
                    print(json.dumps(record), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(records, indent=2) + "\n")
    return records


if __name__ == "__main__":
    main()
