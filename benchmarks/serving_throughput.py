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

    python benchmarks/serving_throughput.py [--clients 16] [--seconds 8] [--rounds 2] [--out FILE.json]
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

SETTINGS = {"unbatched": ["--max-batch", "1"], "batched-2ms": ["--max-batch", "64", "--max-wait-ms", "2"],
            "batched-10ms": ["--max-batch", "64", "--max-wait-ms", "10"]}


def train_run(out: Path) -> None:
    from polytask.config import validate_config
    from polytask.demo import demo_config
    from polytask.training.run import train_run as train

    data = demo_config(steps=60, epochs=1)
    data["encoder"].update({"hidden": 64})
    train(validate_config(data), out, progress=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def bodies(seed: int, n: int = 512) -> list[dict]:
    words = ["the", "market", "rose", "sharply", "as", "prices", "of", "oil", "and", "gold", "fell", "in", "early", "trade", "on", "monday"]
    rng = random.Random(seed)
    return [{"inputs": [{"tokens": [rng.choice(words) for _ in range(rng.randint(5, 25))]}
                        for _ in range(rng.randint(1, 8))]} for _ in range(n)]


async def load(base: str, clients: int, seconds: float, requests: list[dict]) -> dict:
    import httpx

    latencies: list[float] = []
    failures = 0
    stop = time.perf_counter() + seconds

    async def client(index: int, http: httpx.AsyncClient) -> None:
        nonlocal failures
        i = index
        while time.perf_counter() < stop:
            started = time.perf_counter()
            response = await http.post(f"{base}/predict", json=requests[i % len(requests)])
            latencies.append(time.perf_counter() - started)
            failures += response.status_code != 200
            i += clients

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(i, http) for i in range(clients)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {"requests": len(latencies), "failures": failures, "requests_per_second": len(latencies) / elapsed,
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
    parser.add_argument("--seconds", type=float, default=8.0, help="load per round and setting")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        train_run(run)
        requests = bodies(seed=1)
        results: dict[str, list[dict]] = {name: [] for name in SETTINGS}
        for round_ in range(args.rounds):
            for name, extra in SETTINGS.items():
                process, base = serve(run, extra)
                try:
                    asyncio.run(load(base, args.clients, 1.0, requests))  # warm-up
                    results[name].append(asyncio.run(load(base, args.clients, args.seconds, requests)))
                finally:
                    process.terminate()
                    process.wait(timeout=30)
                print(f"round {round_ + 1} {name}: {results[name][-1]}", file=sys.stderr)
    rows = []
    for name, measured in results.items():
        rows.append({"setting": name, "clients": args.clients,
                     **{key: statistics.median(m[key] for m in measured)
                        for key in ("requests_per_second", "p50_ms", "p99_ms")},
                     "failures": sum(m["failures"] for m in measured), "rounds": len(measured)})
    base_rate = rows[0]["requests_per_second"]
    for row in rows:
        row["ratio_to_unbatched"] = row["requests_per_second"] / base_rate
    print(f"{'setting':<14}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'× unbatched':>13}{'failures':>10}")
    for row in rows:
        print(f"{row['setting']:<14}{row['requests_per_second']:>9.1f}{row['p50_ms']:>9.0f}{row['p99_ms']:>9.0f}"
              f"{row['ratio_to_unbatched']:>13.2f}{row['failures']:>10}")
    if args.out:
        args.out.write_text(json.dumps({"clients": args.clients, "seconds": args.seconds, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
