"""The peers' data path: ``export_splits.py`` writes exactly the examples polytask trains and scores on, and
the Flair peer reads gold IOB2 chunks as polytask's conlleval code does (the peers themselves need their own
environments: ``make peers``; benchmarks/peers/README.md)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import yaml

from polytask.config import load_config
from polytask.data.corpus import load_corpus
from polytask.tasks.metrics import extract_spans
from polytask.training.setup import build_tasks
from tests.benchmarks.test_balancing_benchmark import load
from tests.conftest import tiny_config_dict


def test_exported_splits_are_the_examples_polytask_reads(tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config_dict()))
    overrides = ["tasks.pos.data.max_train=2"]
    manifest = load("peers/export_splits").export(config, tmp_path / "data", overrides)
    loaded = load_config(config, overrides)
    corpus = load_corpus(loaded, build_tasks(loaded))
    assert set(manifest["tasks"]) == {"pos", "chunk", "sentiment"} and manifest["overrides"] == overrides
    assert manifest["tasks"]["chunk"]["scheme"] == "iob2" and manifest["tasks"]["pos"]["counts"]["train"] == 2
    for task in manifest["tasks"]:
        for split in ("train", "dev", "test"):
            lines = (tmp_path / "data" / task / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
            expected = [{"tokens": e.tokens, "label": e.labels[task]} for e in corpus.task_examples(task, split)]
            assert [json.loads(line) for line in lines] == expected
            assert manifest["tasks"][task]["counts"][split] == len(expected)
    sentiment = [json.loads(line)["tokens"] for line in (tmp_path / "data/sentiment/dev.jsonl").read_text().splitlines()]
    train = [json.loads(line)["tokens"] for line in (tmp_path / "data/sentiment/train.jsonl").read_text().splitlines()]
    assert sentiment and not {tuple(t) for t in sentiment} & {tuple(t) for t in train}  # the seeded split, disjoint


def test_flair_gold_chunks_are_conllevals() -> None:
    """Every IOB2-tag sequence, ill-formed ones (I- after O, type switches) included, gives polytask's chunks."""
    iob2_spans = load("peers/flair_peer").iob2_spans
    generator = random.Random(0)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    for _ in range(500):
        sequence = [generator.choice(tags) for _ in range(generator.randint(0, 8))]
        assert sorted((kind, start, end) for start, end, kind in iob2_spans(sequence)) == \
            sorted(extract_spans(sequence, "iob2"))
