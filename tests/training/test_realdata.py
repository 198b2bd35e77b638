"""Integration on a slice of the real corpora under $POLYTASK_DATA (skipped when unset)."""

from __future__ import annotations

from pathlib import Path

from polytask.config import load_config
from polytask.evaluation.scoring import evaluate
from polytask.training.setup import build_experiment
from polytask.training.trainer import Trainer
from tests.conftest import requires_data

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@requires_data
def test_conll2000_slice_learns_pos_and_chunking() -> None:
    config = load_config(EXAMPLES / "conll2000-pos-chunk.yaml", [
        "tasks.pos.data.max_train=1000", "tasks.chunk.data.max_train=1000",
        "tasks.pos.data.max_eval=300", "tasks.chunk.data.max_eval=300",
        "encoder.hidden=64", "training.epochs=4", "training.batch_size=16", "training.lr=0.005",
    ])
    experiment = build_experiment(config)
    assert len(experiment.corpus.sources) == 1  # POS and chunking share one read of the file
    summary = Trainer(experiment, progress=False).fit()
    assert summary["tasks"]["pos"]["accuracy"]["test"] > 80.0
    assert summary["tasks"]["chunk"]["f1"]["test"] > 60.0
    assert set(experiment.tasks["pos"].labels_to_json()["labels"]) >= {"NN", "DT", "IN"}


@requires_data
def test_heterogeneous_sources_train_together() -> None:
    overrides = [f"tasks.{t}.data.max_train=200" for t in ("ner", "pos", "sentiment")]
    overrides += [f"tasks.{t}.data.max_eval=100" for t in ("ner", "pos", "sentiment")]
    config = load_config(EXAMPLES / "ner-pos-sentiment.yaml", overrides + ["encoder.hidden=32", "training.epochs=1"])
    experiment = build_experiment(config)
    assert len(experiment.corpus.sources) == 3
    trainer = Trainer(experiment, progress=False)
    trainer.fit()
    results = evaluate(experiment.model, experiment.tasks, experiment.corpus.examples("test"))
    assert set(results) == {"ner", "pos", "sentiment"}
    assert all(n > 0 for n in trainer.steps.seen.values())
