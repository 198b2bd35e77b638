"""A CRF head through the real trainer: loss weighting and gradient aggregators, exact resume, predict."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from polytask.balancing.registry import available_methods
from polytask.config import validate_config
from polytask.data.example import Example
from polytask.serving.predictor import Predictor
from polytask.tasks.tag_constraints import well_formed
from polytask.training.run import resume_run, train_run
from polytask.training.setup import build_experiment
from polytask.training.trainer import Trainer
from tests.conftest import tiny_config_dict
from tests.training.test_resume import Crash, assert_same_run


def crf_config(**balancing) -> dict:
    data = tiny_config_dict()
    data["heads"] = {"pos": {"layer": 1, "decoder": "crf"}, "chunk": {"decoder": "crf"}}
    data["balancing"] = balancing or {"method": "ew"}
    return data


@pytest.mark.parametrize("balancing", [{"method": "ew"}, {"method": "pcgrad", "mode": "exact"},
                                       {"method": "pcgrad", "mode": "representation"}, {"method": "uw"},
                                       {"method": "pcgrad", "mode": "subset", "shared_params": ["encoder.lstms.1"]}])
def test_crf_heads_train_under_weightings_and_aggregators(balancing: dict) -> None:
    data = crf_config(**balancing)
    data["training"].update(max_steps=3, epochs=1, lr=0.05)
    trainer = Trainer(build_experiment(validate_config(data)), progress=False)
    transitions = trainer.model.heads["chunk"].decoder.transitions
    assert "heads.chunk.decoder.transitions" in trainer.model.task_parameters("chunk")
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    for step in range(3):
        record = trainer.train_step(trainer.steps.build(step, 3))
        assert all(math.isfinite(v) for v in record["losses"].values())
    changed = {n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])}
    assert {"heads.pos.decoder.transitions", "heads.chunk.decoder.transitions"} <= changed
    assert any(n.startswith("encoder.lstms") for n in changed)
    allowed = trainer.model.heads["chunk"].decoder.allowed
    assert not allowed.all()  # iob2 forbids some transitions ...
    assert torch.equal(transitions.detach()[~allowed], before["heads.chunk.decoder.transitions"][~allowed])  # never trained


def test_a_crf_run_resumes_bit_for_bit_and_predicts_from_its_directory(tmp_path: Path) -> None:
    data = crf_config(method="uw")
    data["training"].update(epochs=2, epoch={"steps": 4}, checkpoint_every=3, lr=0.02)
    straight, cut = tmp_path / "straight", tmp_path / "cut"
    train_run(validate_config(data), straight, progress=False)
    with pytest.raises(KeyboardInterrupt):
        train_run(validate_config(data), cut, progress=False, callbacks=[Crash(5)])
    resume_run(cut, progress=False)
    assert_same_run(straight, cut)

    predictor = Predictor.from_run(straight)
    assert predictor.experiment.tasks["chunk"].decoder is predictor.experiment.model.heads["chunk"].decoder
    examples = [Example(tokens=["He", "reckons", "the", "current", "account", "deficit"]), Example(tokens=["No"])]
    records = predictor.predict(examples)
    for record, example in zip(records, examples):
        chunk = record["tasks"]["chunk"]
        tags = chunk["labels"] if isinstance(chunk, dict) else chunk
        assert len(tags) == len(example.tokens) and tags == well_formed(tags, "iob2")


def test_a_decoder_on_a_sentence_task_or_constraints_without_a_scheme_are_config_errors() -> None:
    from polytask.errors import ConfigError

    data = tiny_config_dict()
    data["heads"] = {"sentiment": {"decoder": "crf"}}
    with pytest.raises(ConfigError, match="token tasks only") as error:
        build_experiment(validate_config(data))
    assert error.value.field == "heads.sentiment.decoder"
    data["heads"] = {"pos": {"constrained": True}}
    with pytest.raises(ConfigError, match="scheme"):
        build_experiment(validate_config(data))
    data["heads"] = {"pos": {"decoder": "hmm"}}
    with pytest.raises(ConfigError, match="unknown decoder"):
        build_experiment(validate_config(data))


@pytest.mark.parametrize("method", sorted(available_methods()))
def test_every_balancing_method_trains_the_crf_transitions(method: str) -> None:
    data = crf_config(method=method)
    data["training"].update(max_steps=2, epochs=1, lr=0.05)
    trainer = Trainer(build_experiment(validate_config(data)), progress=False)
    before = trainer.model.heads["chunk"].decoder.transitions.detach().clone()
    for step in range(2):
        record = trainer.train_step(trainer.steps.build(step, 2))
        assert all(math.isfinite(v) for v in record["losses"].values()), method
    assert not torch.equal(trainer.model.heads["chunk"].decoder.transitions, before), method
