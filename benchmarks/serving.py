"""Requests per second and latency of ``polytask serve`` with and without batching across clients.

One run directory (the built-in synthetic benchmark's tasks, a 64-unit BiLSTM, 60 training
steps) is served by ``polytask serve`` in a separate process; a load generator in this process
keeps ``--clients`` requests in flight over loopback, each request holding 1–8 seeded random
sentences. Settings alternate in rounds so machine load affects them alike:

* ``unbatched``: ``--max-batch 1`` — every request runs through the model alone (as before
  batching: one request at a time);
* ``batched-W``: ``--max-batch 64 --max-wait-ms W`` — concurrent requests share model batches.

The load generator shares the machine's cores with the server: absolute numbers are low on 2
cores, the ratios between settings measured side by side are the result.

    python benchmarks/serving.py [--clients 16] [--requests 10000] [--rounds 2] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = {"unbatched": ["--max-batch", "1"], "batched-10ms": ["--max-batch", "64", "--max-wait-ms", "10"]}
TASKS = ("tag", "chunk", "mood")


def train_run(out: Path, tasks: tuple[str, ...] = TASKS) -> None:
    from polytask.config import validate_config
    from polytask.demo import demo_config
    from polytask.training.run import train_run as train

    data = demo_config(steps=60, epochs=1)
    data["tasks"] = {name: data["tasks"][name] for name in tasks}
    data["heads"] = {name: head for name, head in data.get("heads", {}).items() if name in tasks}
    data["encoder"].update({"hidden": 64})
    train(validate_config(data), out, progress=False)


def sentences(seed: int, n: int) -> list[list[str]]:
    words = ["the", "market", "rose", "sharply", "as", "prices", "of", "oil", "and", "gold", "fell", "in", "early",
             "trade", "on", "monday"]
    rng = random.Random(seed)
    return [[rng.choice(words) for _ in range(rng.randint(5, 25))] for _ in range(n)]


def rate(predictors: list, examples: list, rounds: int) -> float:
    """Median sentences/s of running every predictor on ``examples`` (one after another)."""
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        for predictor in predictors:
            predictor.predict(examples)
        timings.append(len(examples) / (time.perf_counter() - started))
    return statistics.median(timings)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def bodies(seed: int, n: int = 512) -> list[dict]:
    words = ["the", "market", "rose", "sharply", "as", "prices", "of", "oil", "and", "gold", "fell", "in", "early", "trade", "on", "monday"]
    rng = random.Random(seed)
    return [{"inputs": [{"tokens": [rng.choice(words) for _ in range(rng.randint(5, 25))]}
                        for _ in range(rng.randint(1, 8))]} for _ in range(n)]


async def load(base: str, clients: int, total: int, requests: list[dict]) -> dict:
    """``total`` requests over ``clients`` keep-alive connections, each with one request in flight.

    A raw asyncio client with the requests encoded beforehand: it shares the cores with the
    server, so it must cost far less than the server per request (an httpx client cost about as
    much as the server and capped what could be measured).
    """
    host, port = base.removeprefix("http://").split(":")
    encoded = []
    for body in requests:
        data = json.dumps(body).encode()
        encoded.append((b"POST /predict HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n" % (host.encode(), len(data)) + data, len(body["inputs"])))
    latencies: list[float] = []
    failures = sent = words = 0

    async def client() -> None:
        nonlocal failures, sent, words
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while sent < total:
                payload, inputs = encoded[sent % len(encoded)]
                sent += 1
                started = time.perf_counter()
                try:
                    writer.write(payload)
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length:"))
                    await reader.readexactly(length)
                    failures += head.split(b" ", 2)[1] != b"200"
                except (OSError, asyncio.IncompleteReadError, StopIteration):
                    failures += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, int(port))
                latencies.append(time.perf_counter() - started)
                words += inputs
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"requests": len(latencies), "failures": failures, "requests_per_second": len(latencies) / elapsed,
            "sentences_per_second": words / elapsed,
            "p50_ms": 1000 * latencies[len(latencies) // 2], "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)]}


def serve(run: Path, extra: list[str]) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "polytask.cli", "serve", str(run), "--port", str(port), *extra],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/ready").status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError("the server did not start")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=10_000, help="requests per HTTP setting and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from polytask.data.example import Example
    from polytask.export.onnx_export import export_run
    from polytask.serving.onnx_predictor import OnnxPredictor
    from polytask.serving.predictor import Predictor

    result: dict = {"clients": args.clients, "requests": args.requests, "rounds": args.rounds}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        train_run(root / "joint")
        for task in TASKS:
            train_run(root / task, (task,))
        examples = [Example(tokens=s) for s in sentences(seed=2, n=2000)]
        joint = Predictor.from_run(root / "joint")
        singles = [Predictor.from_run(root / task) for task in TASKS]
        joint_rate, singles_rate = rate([joint], examples, args.rounds + 1), rate(singles, examples, args.rounds + 1)
        result["in_process"] = {"sentences": len(examples), "one_3_task_model": joint_rate,
                                "three_single_task_models": singles_rate, "ratio": joint_rate / singles_rate}
        export_run(root / "joint", root / "export")
        onnx = OnnxPredictor.from_dir(root / "export")
        onnx_rate, torch_rate = rate([onnx], examples, args.rounds + 1), rate([joint], examples, args.rounds + 1)
        result["onnx"] = {"onnxruntime": onnx_rate, "torch": torch_rate, "ratio": onnx_rate / torch_rate}
        requests = bodies(seed=1)
        runs: dict[str, list[dict]] = {name: [] for name in SETTINGS}
        for round_ in range(args.rounds):
            for name, extra in SETTINGS.items():
                process, base = serve(root / "joint", extra)
                try:
                    asyncio.run(load(base, args.clients, 200, requests))  # warm-up
                    runs[name].append(asyncio.run(load(base, args.clients, args.requests, requests)))
                finally:
                    process.terminate()
                    process.wait(timeout=30)
                print(f"round {round_ + 1} {name}: {runs[name][-1]}", file=sys.stderr)
    rows = []
    for name, measured in runs.items():
        rows.append({"setting": name, **{key: statistics.median(m[key] for m in measured)
                                         for key in ("requests_per_second", "sentences_per_second", "p50_ms", "p99_ms")},
                     "failures": sum(m["failures"] for m in measured), "answered": sum(m["requests"] for m in measured)})
    for row in rows:
        row["ratio_to_unbatched"] = row["requests_per_second"] / rows[0]["requests_per_second"]
        row["ratio_to_in_process"] = row["sentences_per_second"] / result["in_process"]["one_3_task_model"]
    result["http"] = rows
    ip, ox = result["in_process"], result["onnx"]
    print(f"(a) in process, {ip['sentences']} sentences: one 3-task model {ip['one_3_task_model']:.0f}/s, three "
          f"single-task models {ip['three_single_task_models']:.0f}/s: {ip['ratio']:.2f}x")
    print(f"(c) onnxruntime {ox['onnxruntime']:.0f}/s vs torch {ox['torch']:.0f}/s: {ox['ratio']:.2f}x")
    print(f"(b) {'setting':<14}{'req/s':>9}{'sent/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'x unbatched':>13}"
          f"{'x in-process':>14}{'errors':>8}")
    for row in rows:
        print(f"    {row['setting']:<14}{row['requests_per_second']:>9.1f}{row['sentences_per_second']:>9.0f}"
              f"{row['p50_ms']:>9.0f}{row['p99_ms']:>9.0f}{row['ratio_to_unbatched']:>13.2f}"
              f"{row['ratio_to_in_process']:>14.2f}{row['failures']:>8}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
