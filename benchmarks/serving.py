"""Requests per second and latency of ``polytask serve`` with and without batching across clients.

Each model (``--models``; the built-in synthetic benchmark's tag, chunk and mood tasks, 60 training
steps) is measured in process against three single-task models of the same size, torch against
onnxruntime, and over HTTP: served by ``polytask serve`` in a separate process, a load generator in
this process keeps ``--clients`` requests in flight over loopback, each request holding 1–8 seeded
random sentences. The models:

* ``demo-cnn``: the demo's encoder, a 2-layer CNN of 64 channels on 32-dimensional word vectors —
  so small that per-request Python work (HTTP, JSON, records) costs more than the model;
* ``bilstm``: the flagship examples' encoder, a 2-layer BiLSTM of 128 per direction on 100-dimensional
  word vectors and character features (``examples/ner-pos-sentiment.yaml``'s size).

HTTP settings alternate in rounds so machine load affects them alike:

* ``unbatched``: ``--max-batch 1`` — every request runs through the model alone (as before
  batching: one request at a time);
* ``batched-W``: ``--max-batch 64 --max-wait-ms W`` — concurrent requests share model batches.

The load generator shares the machine's cores with the server: absolute numbers are low on 2
cores, the ratios between settings measured side by side are the result. Beside them, the ceiling:
the same requests predicted in process, request by request against batches of consecutive requests
(what batching could gain with HTTP and the client costing nothing).

    python benchmarks/serving.py [--clients 16] [--requests 10000] [--rounds 2] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

MAX_BATCH = 64
SETTINGS = {"unbatched": ["--max-batch", "1"],
            "batched-10ms": ["--max-batch", str(MAX_BATCH), "--max-wait-ms", "10"]}
TASKS = ("tag", "chunk", "mood")
MODELS = {
    "demo-cnn": {"type": "cnn", "word_dim": 32, "hidden": 64, "layers": 2},
    "bilstm": {"type": "bilstm", "word_dim": 100, "chars": True, "hidden": 128, "layers": 2},
}


def train_run(out: Path, encoder: dict, tasks: tuple[str, ...] = TASKS) -> None:
    from polytask.config import validate_config
    from polytask.demo import demo_config
    from polytask.training.run import train_run as train

    data = demo_config(steps=60, epochs=1)
    data["tasks"] = {name: data["tasks"][name] for name in tasks}
    data["heads"] = {name: head for name, head in data.get("heads", {}).items() if name in tasks}
    data["encoder"] = dict(encoder)
    train(validate_config(data), out, progress=False)


def sentences(seed: int, n: int) -> list[list[str]]:
    words = ["the", "market", "rose", "sharply", "as", "prices", "of", "oil", "and", "gold", "fell", "in", "early",
             "trade", "on", "monday"]
    rng = random.Random(seed)
    return [[rng.choice(words) for _ in range(rng.randint(5, 25))] for _ in range(n)]


def alternate(contenders: dict[str, Callable[[], object]], sentences: int, rounds: int) -> dict[str, list[float]]:
    """Sentences/s of every contender in each of ``rounds`` rounds (after one warm-up round).

    The contenders alternate within every round, so a change of machine load affects them alike and the
    ratio of one round is measured side by side.
    """
    measured: dict[str, list[float]] = {name: [] for name in contenders}
    for round_ in range(rounds + 1):
        for name, run in contenders.items():
            started = time.perf_counter()
            run()
            if round_:
                measured[name].append(sentences / (time.perf_counter() - started))
    return measured


def rates(contenders: dict[str, list], examples: list, rounds: int) -> dict[str, float]:
    """Median sentences/s of each contender (its predictors run one after another on ``examples``), and the
    median per-round ratio of the first to each other one (``ratio_to_NAME``)."""
    measured = alternate({name: functools.partial(predict_all, predictors, examples)
                          for name, predictors in contenders.items()}, len(examples), rounds)
    first, *others = contenders
    result = {name: statistics.median(values) for name, values in measured.items()}
    for other in others:
        result[f"ratio_to_{other}"] = statistics.median(a / b for a, b in zip(measured[first], measured[other]))
    return result


def predict_all(predictors: list, examples: list) -> None:
    for predictor in predictors:
        predictor.predict(examples)


def batching_ceiling(predictor, requests: list[dict], max_batch: int, rounds: int) -> dict[str, float]:
    """In process, on the HTTP load's requests: predicting request by request against batches of consecutive
    requests (at most ``max_batch`` inputs, as the server forms them). No HTTP, no client: the most that
    batching across clients can gain for this model on this machine.
    """
    from polytask.data.example import Example

    per_request = [[Example(tokens=item["tokens"]) for item in body["inputs"]] for body in requests]
    batches: list[list] = [[]]
    for examples in per_request:
        if batches[-1] and len(batches[-1]) + len(examples) > max_batch:
            batches.append([])
        batches[-1].extend(examples)
    measured = alternate({"request_by_request": lambda: [predictor.predict(e) for e in per_request],
                          "batched": lambda: [predictor.predict(e) for e in batches]},
                         sum(len(examples) for examples in per_request), rounds)
    one, batched = measured["request_by_request"], measured["batched"]
    return {"max_batch": max_batch, "request_by_request": statistics.median(one), "batched": statistics.median(batched),
            "ratio": statistics.median(b / a for a, b in zip(one, batched))}


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


def measure(model: str, root: Path, args: argparse.Namespace) -> dict:
    """(a), (c) and (b) for one model size."""
    from polytask.data.example import Example
    from polytask.export.onnx_export import export_run
    from polytask.serving.onnx_predictor import OnnxPredictor
    from polytask.serving.predictor import Predictor

    result: dict = {"encoder": MODELS[model]}
    train_run(root / "joint", MODELS[model])
    for task in TASKS:
        train_run(root / task, MODELS[model], (task,))
    examples = [Example(tokens=s) for s in sentences(seed=2, n=2000)]
    joint = Predictor.from_run(root / "joint")
    singles = [Predictor.from_run(root / task) for task in TASKS]
    export_run(root / "joint", root / "export")
    onnx = OnnxPredictor.from_dir(root / "export")
    measured = rates({"joint": [joint], "singles": singles, "onnx": [onnx]}, examples, args.in_process_rounds)
    result["in_process"] = {"sentences": len(examples), "rounds": args.in_process_rounds,
                            "one_3_task_model": measured["joint"], "three_single_task_models": measured["singles"],
                            "ratio": measured["ratio_to_singles"]}
    result["onnx"] = {"onnxruntime": measured["onnx"], "torch": measured["joint"],
                      "ratio": 1 / measured["ratio_to_onnx"]}
    requests = bodies(seed=1)
    result["batching_ceiling"] = batching_ceiling(joint, requests, MAX_BATCH, max(1, args.in_process_rounds // 2))
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
            print(f"{model} round {round_ + 1} {name}: {runs[name][-1]}", file=sys.stderr)
    rows = []
    for name, measured in runs.items():
        rows.append({"setting": name, **{key: statistics.median(m[key] for m in measured)
                                         for key in ("requests_per_second", "sentences_per_second", "p50_ms", "p99_ms")},
                     "failures": sum(m["failures"] for m in measured), "answered": sum(m["requests"] for m in measured)})
    for row in rows:
        row["ratio_to_unbatched"] = row["requests_per_second"] / rows[0]["requests_per_second"]
        row["ratio_to_in_process"] = row["sentences_per_second"] / result["in_process"]["one_3_task_model"]
    result["http"] = rows
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=10_000, help="requests per HTTP setting and round")
    parser.add_argument("--rounds", type=int, default=2, help="HTTP rounds")
    parser.add_argument("--in-process-rounds", type=int, default=7, help="in-process rounds (2,000 sentences each)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models or set(models) - set(MODELS):
        parser.error(f"--models takes names from {', '.join(MODELS)}")
    result: dict = {"clients": args.clients, "requests": args.requests, "rounds": args.rounds, "models": {}}
    for model in models:
        with tempfile.TemporaryDirectory() as tmp:
            result["models"][model] = measure(model, Path(tmp), args)
    for model, measured in result["models"].items():
        ip, ox = measured["in_process"], measured["onnx"]
        print(f"{model}: {measured['encoder']}")
        print(f"(a) in process, {ip['sentences']} sentences: one 3-task model {ip['one_3_task_model']:.0f}/s, three "
              f"single-task models {ip['three_single_task_models']:.0f}/s: {ip['ratio']:.2f}x")
        print(f"(c) onnxruntime {ox['onnxruntime']:.0f}/s vs torch {ox['torch']:.0f}/s: {ox['ratio']:.2f}x")
        bc = measured["batching_ceiling"]
        print(f"(b) the ceiling, in process on the same requests: request by request {bc['request_by_request']:.0f} "
              f"sentences/s, batches of <= {bc['max_batch']} inputs {bc['batched']:.0f}/s: {bc['ratio']:.2f}x")
        print(f"    {'setting':<14}{'req/s':>9}{'sent/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'x unbatched':>13}"
              f"{'x in-process':>14}{'errors':>8}")
        for row in measured["http"]:
            print(f"    {row['setting']:<14}{row['requests_per_second']:>9.1f}{row['sentences_per_second']:>9.0f}"
                  f"{row['p50_ms']:>9.0f}{row['p99_ms']:>9.0f}{row['ratio_to_unbatched']:>13.2f}"
                  f"{row['ratio_to_in_process']:>14.2f}{row['failures']:>8}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
