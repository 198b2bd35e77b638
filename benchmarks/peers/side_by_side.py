"""polytask and one peer started together on the same data, machine and wall-clock budget; one table of test scores.

Why: the issue's comparison is at equal budget on the same machine (2 cores, one torch thread each,
started together), on the same splits. The driver exports polytask's splits (``export_splits.py``),
starts ``polytask train CONFIG`` and the peer's script at the same moment, waits for both and
writes one JSON with both test scores, polytask's training time and both dev curves.

    POLYTASK_DATA=../shared/data python benchmarks/peers/side_by_side.py --peer spacy --minutes 60
    POLYTASK_DATA=../shared/data python benchmarks/peers/side_by_side.py --peer flair --threads 2 \
        --polytask-run runs/minilm-full

``--minutes`` is the peer's budget; polytask trains its config's budget (``training.epochs``, chosen in
each example config to fit its stated minutes; shorten with ``--set``), and the table shows its
training seconds beside the budget. ``--one-at-a-time`` runs polytask first and then the peer (on a
machine whose other jobs leave no core for two runs at once); there ``--minutes`` defaults to
polytask's own training time, so both get exactly the same wall-clock budget. ``--polytask-run DIR``
reuses a finished ``polytask train`` run instead of training again (its saved config must equal the
config with ``--set`` and ``--threads``, checked field by field), then trains the peer for its
training time, one at a time. ``--set`` overrides
apply to polytask and to the exported splits alike (e.g. ``--set tasks.ner.data.max_train=500`` for a
quick end-to-end check). The peer's own JSON goes to ``benchmarks/results/peers/PEER.json``, the
side-by-side record to ``benchmarks/results/peers/side-by-side-PEER.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PEERS = {"spacy": ("benchmarks/peers/.venv-spacy", "benchmarks/peers/spacy_peer.py", "examples/ner-pos-sentiment.yaml"),
         "flair": ("benchmarks/peers/.venv-flair", "benchmarks/peers/flair_peer.py", "examples/minilm-ner-pos-sentiment.yaml")}
PRIMARY = {"ner": "f1", "pos": "accuracy", "sentiment": "accuracy"}


def polytask_curve(run: Path) -> list[dict]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [{"seconds": r["seconds"], "epoch": r["epoch"], "dev": r["tasks"]} for r in lines
            if r.get("kind") == "eval" and r.get("split") == "dev"]


def dev_at(curve: list[dict], seconds: float) -> dict | None:
    """The last dev scores recorded at or before ``seconds``."""
    seen = [point for point in curve if point["seconds"] <= seconds]
    return seen[-1]["dev"] if seen else None


def flat(tree: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` as ``{"a.b": 1}``."""
    items: dict = {}
    for key, value in tree.items():
        items.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return items


def same_run(run: Path, config: Path, overrides: list[str]) -> None:
    """Exit unless ``run`` finished training ``config`` with ``overrides`` (its saved config equals theirs)."""
    sys.path.insert(0, str(ROOT))
    from polytask.config import load_config

    if not (run / "summary.json").exists():
        sys.exit(f"{run}: no summary.json, the run has not finished")
    saved, wanted = (flat(load_config(path, extra).model_dump()) for path, extra in ((run / "config.yaml", []), (config, overrides)))
    differ = sorted(key for key in saved.keys() | wanted.keys() if saved.get(key) != wanted.get(key))
    if differ:
        sys.exit(f"{run}/config.yaml differs from {config} with {overrides} in: {', '.join(differ)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", choices=sorted(PEERS), required=True)
    parser.add_argument("--minutes", type=float, default=None,
                        help="the peer's wall-clock budget (with --one-at-a-time, default: polytask's training time)")
    parser.add_argument("--one-at-a-time", action="store_true", help="polytask first, then the peer, not together")
    parser.add_argument("--polytask-run", type=Path, default=None, metavar="DIR",
                        help="a finished `polytask train` run of the same config, overrides and threads: "
                             "the peer then trains for its training time (implies --one-at-a-time)")
    parser.add_argument("--config", type=Path, default=None, help="polytask's config (default: the peer's counterpart)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each process")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks/peers/work")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks/results/peers")
    args = parser.parse_args()
    args.one_at_a_time = args.one_at_a_time or args.polytask_run is not None
    if args.minutes is None and not args.one_at_a_time:
        parser.error("--minutes is required unless --one-at-a-time (which defaults it to polytask's training time)")
    if not os.environ.get("POLYTASK_DATA"):
        sys.exit("set POLYTASK_DATA to the shared corpora folder")
    venv, script, default_config = PEERS[args.peer]
    config = args.config or ROOT / default_config
    python = ROOT / venv / "bin/python"
    if not python.exists():
        sys.exit(f"{python} is missing: run `make peers` first")
    data, run = args.work / f"data-{args.peer}", args.polytask_run or args.work / f"polytask-{args.peer}"
    peer_json = args.results / f"{args.peer}.json"
    sets = [arg for item in args.overrides for arg in ("--set", item)]
    threads = f"training.threads={args.threads}"
    if args.polytask_run is not None:
        same_run(run, config, [*args.overrides, threads])
    subprocess.run([sys.executable, str(ROOT / "benchmarks/peers/export_splits.py"), "--config", str(config),
                    "--out", str(data), *sets], check=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    started = time.perf_counter()
    if args.polytask_run is None:
        ours = subprocess.Popen([sys.executable, "-m", "polytask", "train", str(config), "--out", str(run), "--overwrite",
                                 "--set", threads, *sets], cwd=ROOT, env=env)
        codes = {"polytask": ours.wait()} if args.one_at_a_time else {}
    else:
        codes = {"polytask": 0}
    minutes = args.minutes
    if minutes is None:
        if codes["polytask"]:
            sys.exit(f"polytask train failed (exit code {codes['polytask']})")
        minutes = json.loads((run / "summary.json").read_text())["train_seconds"] / 60
    theirs = subprocess.Popen([str(python), str(ROOT / script), "--minutes", f"{minutes:.3f}", "--threads",
                               str(args.threads), "--data", str(data), "--out", str(peer_json)], cwd=ROOT, env=env)
    codes[args.peer] = theirs.wait()
    if "polytask" not in codes:
        codes["polytask"] = ours.wait()
    if any(codes.values()):
        sys.exit(f"a run failed: exit codes {codes}")
    summary = json.loads((run / "summary.json").read_text())
    peer = json.loads(peer_json.read_text())
    ours_test = {t: {m: v["test"] for m, v in metrics.items()} for t, metrics in summary["tasks"].items()}
    curve = polytask_curve(run)
    record = {"peer": args.peer, "minutes": minutes, "one_at_a_time": args.one_at_a_time, "threads": args.threads,
              "config": str(config), "polytask_run": str(run),
              "overrides": args.overrides, "wall_seconds": round(time.perf_counter() - started, 1),
              "polytask": {"test": ours_test, "train_seconds": summary["train_seconds"], "best_epoch": summary["best_epoch"],
                           "dev_curve": curve},
              args.peer: {"test": peer["test"], "train_seconds": peer["train_seconds"], "dev_curve": peer["dev_curve"]},
              "dev_at_polytask_epochs": [{"seconds": p["seconds"], "polytask": p["dev"], args.peer: dev_at(peer["dev_curve"], p["seconds"])}
                                         for p in curve]}
    out = args.results / f"side-by-side-{args.peer}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\n{'task':10} {'metric':9} {'polytask':>9} {args.peer:>9} {'Δ':>7}   (test; polytask trained "
          f"{summary['train_seconds'] / 60:.1f} min, {args.peer} {peer['train_seconds'] / 60:.1f} min of {minutes:.1f})")
    for task, metric in PRIMARY.items():
        a, b = ours_test[task][metric], peer["test"][task][metric]
        print(f"{task:10} {metric:9} {a:9.2f} {b:9.2f} {a - b:+7.2f}")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
