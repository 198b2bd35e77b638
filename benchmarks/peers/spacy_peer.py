"""spaCy 3.8 peer: one pipeline, tagger + ner + textcat on a shared CNN tok2vec, trained for a wall-clock budget.

Why: polytask's from-scratch multi-task model (examples/ner-pos-sentiment.yaml) should be at least
as accurate as the pipeline a spaCy user would train on the same data, machine and time.

Pipeline: ``spacy init config -l en -p ner,textcat,tagger -o efficiency`` (the CNN tok2vec:
MultiHashEmbed + MaxoutWindowEncoder, width 96, depth 4; no pretrained vectors), with textcat's
model reading the shared tok2vec through a listener (``--textcat ensemble``: spaCy's accuracy-mode
TextCatEnsemble.v2, listener + bag of words; ``reduce``: TextCatReduce.v1, mean of the shared
vectors); init config's efficiency textcat is a bag of words that shares nothing. Training: the
config's optimizer (Adam, lr 1e-3, L2 0.01, grad clip 1), dropout 0.1 and batcher (batch_by_words,
compounding 100 -> 1000 words over the run); each batch holds one task's sentences (CoNLL-2003 NER, CoNLL-2000
POS and polarity label different sentences, and spaCy's exclusive textcat has no missing values),
batches of all tasks shuffled together, every component without labels in the batch excluded from
the update (the tagger, whose missing tags cost nothing, always runs: it is the tok2vec's last
listener, the one that calls its backward pass). Dev scores every ``--eval-minutes`` (default a
fifth of the budget: time, not updates, since spaCy's batches grow from 100 to 1000 words and a fixed
number of updates would spend most of a short budget scoring); the best dev state (mean of the primary metrics, as polytask
selects) is scored on test.

Data: ``export_splits.py`` (polytask's own splits), converted here to DocBin files. Metrics:
polytask's own functions (``polytask.tasks.metrics``: conlleval span F1, token accuracy, accuracy).

    benchmarks/peers/.venv-spacy/bin/python benchmarks/peers/spacy_peer.py --minutes 60 [--threads 1] \
        [--data benchmarks/peers/data] [--out benchmarks/results/peers/spacy.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEXTCAT_MODELS = {
    "ensemble": """
[components.textcat.model]
@architectures = "spacy.TextCatEnsemble.v2"
nO = null

[components.textcat.model.tok2vec]
@architectures = "spacy.Tok2VecListener.v1"
width = ${components.tok2vec.model.encode.width}
upstream = "*"

[components.textcat.model.linear_model]
@architectures = "spacy.TextCatBOW.v3"
exclusive_classes = true
length = 262144
ngram_size = 1
no_output_layer = false
""",
    "reduce": """
[components.textcat.model]
@architectures = "spacy.TextCatReduce.v1"
exclusive_classes = true
use_reduce_first = false
use_reduce_last = false
use_reduce_max = false
use_reduce_mean = true
nO = null

[components.textcat.model.tok2vec]
@architectures = "spacy.Tok2VecListener.v1"
width = ${components.tok2vec.model.encode.width}
upstream = "*"
""",
}
COMPONENT = {"ner": "ner", "pos": "tagger", "sentiment": "textcat"}
"""polytask's task names in examples/ner-pos-sentiment.yaml -> the spaCy component that learns each."""


def set_threads(threads: int) -> None:
    """BLAS / OpenMP threads, before numpy is imported (thinc's CPU ops are numpy + blis)."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
        os.environ[name] = str(threads)


def read_split(data: Path, task: str, split: str) -> list[dict]:
    with (data / task / f"{split}.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def gold_doc(vocab, task: str, record: dict, classes: list[str]):
    """A Doc on the exact tokens with only ``task``'s annotation (the others stay missing)."""
    from spacy.tokens import Doc

    words = record["tokens"]
    if task == "ner":
        return Doc(vocab, words=words, ents=record["label"])
    if task == "pos":
        return Doc(vocab, words=words, tags=record["label"])
    doc = Doc(vocab, words=words)
    doc.cats = {c: float(c == record["label"]) for c in classes}
    return doc


def to_docbins(data: Path, work: Path, vocab, classes: list[str]) -> dict[str, dict[str, Path]]:
    """Every task's splits as DocBin files under ``work`` (spaCy's training format)."""
    from spacy.tokens import DocBin

    paths: dict[str, dict[str, Path]] = {}
    work.mkdir(parents=True, exist_ok=True)
    for task in COMPONENT:
        paths[task] = {}
        for split in ("train", "dev", "test"):
            bin_ = DocBin(attrs=["ORTH", "TAG", "ENT_IOB", "ENT_TYPE"])
            for record in read_split(data, task, split):
                bin_.add(gold_doc(vocab, task, record, classes))
            path = paths[task][split] = work / f"{task}-{split}.spacy"
            bin_.to_disk(path)
    return paths


def build_pipeline(textcat: str, seed: int):
    """The efficiency CNN config from ``spacy init config``, textcat reading the shared tok2vec."""
    from spacy.cli.init_config import init_config
    from spacy.util import load_model_from_config
    from thinc.api import Config

    config = init_config(lang="en", pipeline=["ner", "textcat", "tagger"], optimize="efficiency", gpu=False)
    text = config.to_str()
    start = text.index("[components.textcat.model]")
    end = text.index("\n[", start + 1)
    text = text[:start] + TEXTCAT_MODELS[textcat].strip() + "\n" + text[end:]
    config = Config().from_str(text)
    config["system"]["seed"] = seed
    config["training"]["seed"] = seed
    return load_model_from_config(config, auto_fill=True, validate=True), config


def predictions(nlp, task: str, docs: list) -> list:
    """Tags (pos), IOB2 entity tags (ner) or the class (sentiment) of every doc."""
    from spacy.tokens import Doc

    keep = COMPONENT[task]
    others = [name for name in ("ner", "textcat", "tagger") if name != keep]
    bare = (Doc(nlp.vocab, words=[t.text for t in doc]) for doc in docs)
    out = []
    for doc in nlp.pipe(bare, disable=others, batch_size=256):
        if task == "pos":
            out.append([t.tag_ for t in doc])
        elif task == "ner":
            out.append([f"{t.ent_iob_}-{t.ent_type_}" if t.ent_iob_ in ("B", "I") else "O" for t in doc])
        else:
            out.append(max(doc.cats, key=doc.cats.get))
    return out


def scores(nlp, gold: dict[str, list], docs: dict[str, list], metrics) -> dict[str, dict[str, float]]:
    """polytask's metrics: span P/R/F1 + accuracy (ner, iob2), token accuracy (pos), accuracy (sentiment)."""
    result = {}
    for task in COMPONENT:
        predicted = predictions(nlp, task, docs[task])
        if task == "ner":
            result[task] = {"accuracy": metrics.token_accuracy(gold[task], predicted),
                            **metrics.span_prf(gold[task], predicted, "iob2")}
        elif task == "pos":
            result[task] = {"accuracy": metrics.token_accuracy(gold[task], predicted)}
        else:
            result[task] = {"accuracy": metrics.accuracy(gold[task], predicted)}
    return result


def selection_score(dev: dict[str, dict[str, float]]) -> float:
    """The mean of each task's primary dev metric in [0, 1] (polytask's model selection)."""
    return (dev["ner"]["f1"] + dev["pos"]["accuracy"] + dev["sentiment"]["accuracy"]) / 300


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, required=True, help="wall-clock budget for training and dev scoring")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", type=Path, default=ROOT / "benchmarks/peers/data", help="export_splits.py's folder")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks/peers/work/spacy", help="DocBin files and the best model")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/peers/spacy.json")
    parser.add_argument("--textcat", choices=sorted(TEXTCAT_MODELS), default="ensemble")
    parser.add_argument("--eval-minutes", type=float, default=None,
                        help="minutes between dev scorings (default: a fifth of the budget, so 5 scorings)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    args.eval_minutes = args.eval_minutes or args.minutes / 5
    set_threads(args.threads)
    sys.path.insert(0, str(ROOT))  # polytask.tasks.metrics is torch-free: the same metric code as polytask

    import spacy
    from spacy.schemas import ConfigSchemaTraining
    from spacy.tokens import DocBin
    from spacy.training import Example
    from spacy.training.batchers import minibatch_by_words
    from spacy.util import registry

    from polytask.tasks import metrics

    random.seed(args.seed)
    spacy.util.fix_random_seed(args.seed)
    nlp, config = build_pipeline(args.textcat, args.seed)
    classes = sorted({r["label"] for r in read_split(args.data, "sentiment", "train")})
    paths = to_docbins(args.data, args.work, nlp.vocab, classes)
    docs = {task: {split: list(DocBin().from_disk(path).get_docs(nlp.vocab)) for split, path in splits.items()}
            for task, splits in paths.items()}
    train = {task: [Example(_bare(nlp, d), d) for d in docs[task]["train"]] for task in COMPONENT}
    gold = {split: {task: [r["label"] for r in read_split(args.data, task, split)] for task in COMPONENT}
            for split in ("dev", "test")}
    training = registry.resolve(config.interpolate()["training"], schema=ConfigSchemaTraining)
    dropout, batcher_config = training["dropout"], config.interpolate()["training"]["batcher"]
    # one size schedule for the whole run (compounding 100 -> 1000 words), as spaCy's train loop batches its stream
    sizes = iter(registry.resolve({"size": batcher_config["size"]})["size"])
    optimizer = nlp.initialize(lambda: [eg for task in COMPONENT for eg in train[task]], sgd=training["optimizer"])

    budget = args.minutes * 60
    started = last_eval = time.perf_counter()
    curve, best, updates, epoch, words = [], None, 0, 0, 0
    losses: dict[str, float] = {}
    out_of_time = False
    while not out_of_time:
        epoch += 1
        batches = []
        for task in COMPONENT:  # one task per batch (see the docstring), the batches of all tasks shuffled together
            examples = train[task][:]
            random.shuffle(examples)
            batches += [(task, batch) for batch in minibatch_by_words(
                examples, size=sizes, tolerance=batcher_config["tolerance"], get_length=lambda eg: len(eg.reference))]
        random.shuffle(batches)
        for task, batch in batches:
            exclude = [c for t, c in COMPONENT.items() if t != task and c != "tagger"]
            nlp.update(batch, drop=dropout, sgd=optimizer, losses=losses, exclude=exclude)
            updates += 1
            words += sum(len(eg.reference) for eg in batch)
            now = time.perf_counter()
            out_of_time = now - started >= budget
            if out_of_time or now - last_eval >= args.eval_minutes * 60:
                dev = scores(nlp, gold["dev"], {t: docs[t]["dev"] for t in COMPONENT}, metrics)
                score = selection_score(dev)
                last_eval = time.perf_counter()
                seconds = last_eval - started
                curve.append({"seconds": round(seconds, 1), "updates": updates, "epoch": epoch, "dev": dev, "score": score})
                print(f"{seconds:7.0f}s update {updates:6d} epoch {epoch:3d}  " + "  ".join(
                    f"{t} {m}={v:.2f}" for t, r in dev.items() for m, v in r.items() if m in ("f1", "accuracy") and
                    not (t == "ner" and m == "accuracy")) + f"  score={score:.4f}", flush=True)
                if best is None or score > best["score"]:
                    best = {"score": score, "updates": updates, "seconds": seconds, "dev": dev, "bytes": nlp.to_bytes()}
                if out_of_time:
                    break
    train_seconds = time.perf_counter() - started
    nlp.from_bytes(best.pop("bytes"))
    test = scores(nlp, gold["test"], {t: docs[t]["test"] for t in COMPONENT}, metrics)
    record = {
        "peer": "spacy", "spacy": spacy.__version__, "textcat": args.textcat, "minutes": args.minutes,
        "threads": args.threads, "seed": args.seed, "train_seconds": round(train_seconds, 1), "updates": updates,
        "epochs_started": epoch, "train_words_per_second": round(words / train_seconds, 1),
        "best": best, "test": test, "dev_curve": curve,
        "data": json.loads((args.data / "tasks.json").read_text()), "machine": platform.processor() or platform.machine(),
        "pipeline": nlp.pipe_names,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print("test  " + "  ".join(f"{t} {m}={v:.2f}" for t, r in test.items() for m, v in r.items()))
    print(f"written to {args.out}")


def _bare(nlp, doc):
    """The unannotated copy of ``doc`` that the pipeline predicts on."""
    from spacy.tokens import Doc

    return Doc(nlp.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc])


if __name__ == "__main__":
    main()
