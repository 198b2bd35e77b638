"""Transfer controls: encoder learning rate, layer-wise decay, freezing and gradual unfreezing."""

from __future__ import annotations

import json
import math

import pytest
import torch

from polytask.config import validate_config
from polytask.data.samplers import WeightedSampler
from polytask.errors import ConfigError
from polytask.training.optim import shared_layer_groups
from polytask.training.run_dir import RunDirectory
from polytask.training.setup import build_experiment
from polytask.training.trainer import Trainer
from tests.conftest import tiny_config_dict


def trainer_for(encoder: str = "bilstm", layers: int = 2, method: str = "ew", run_dir=None, **training) -> Trainer:
    data = tiny_config_dict()
    data["encoder"].update(type=encoder, layers=layers)
    data["balancing"] = {"method": method}
    data["training"].update(training)
    return Trainer(build_experiment(validate_config(data)), run_dir, progress=False)


def ids(params) -> set[int]:
    return {id(p) for p in params}


@pytest.mark.parametrize("encoder", ["bilstm", "cnn"])
def test_layer_groups_partition_the_encoder_bottom_to_top(encoder: str) -> None:
    model = trainer_for(encoder, layers=3).model
    groups = model.encoder.layer_groups()
    assert len(groups) == 4  # input + 3 layers
    assert sum(len(g) for g in groups) == len(list(model.encoder.parameters()))
    assert ids(p for g in groups for p in g) == ids(model.encoder.parameters())
    assert ids(groups[0]) >= ids(model.encoder.embed.parameters())
    stack = model.encoder.lstms if encoder == "bilstm" else model.encoder.convs
    for k, layer in enumerate(stack, start=1):
        assert ids(groups[k]) == ids(layer.parameters())


def test_layer_wise_decay_gives_exact_learning_rates() -> None:
    trainer = trainer_for(lr=0.01, encoder_lr=0.002, layer_decay=0.5, schedule="constant", warmup=0.0)
    by_name = {g["name"]: g for g in trainer.optimizer.param_groups}
    assert by_name["heads"]["lr"] == pytest.approx(0.01)
    # Three groups (input, LSTM 1, LSTM 2): encoder_lr × 0.5^(L−1−k).
    assert [by_name[f"encoder.{k}"]["lr"] for k in range(3)] == pytest.approx([0.0005, 0.001, 0.002])
    groups = shared_layer_groups(trainer.model)
    for k in range(3):
        assert ids(by_name[f"encoder.{k}"]["params"]) == ids(groups[k])
    heads = ids(trainer.model.heads.parameters())
    assert ids(by_name["heads"]["params"]) == heads
    # Every trainable parameter is in exactly one group.
    everything = [id(p) for g in trainer.optimizer.param_groups for p in g["params"]]
    assert len(everything) == len(set(everything)) == len(list(trainer.model.parameters()))


def test_encoder_lr_defaults_to_lr_and_method_parameters_are_not_decayed() -> None:
    trainer = trainer_for(method="uw", lr=0.004, weight_decay=0.1)
    by_name = {g["name"]: g for g in trainer.optimizer.param_groups}
    assert {g["lr"] for g in trainer.optimizer.param_groups} == {0.004}
    assert by_name["method"]["weight_decay"] == 0.0 and by_name["heads"]["weight_decay"] == 0.1
    assert ids(by_name["method"]["params"]) == ids(trainer.balancer.parameters())


def test_schedule_scales_every_group_alike() -> None:
    trainer = trainer_for(lr=0.01, encoder_lr=0.004, layer_decay=0.5, epochs=10, max_steps=4, warmup=0.0)
    assert trainer.total_steps == 4
    trainer.train_step(trainer.steps.build(0, 4))
    lrs = {g["name"]: g["lr"] for g in trainer.optimizer.param_groups}
    assert lrs["heads"] == pytest.approx(0.01 * 3 / 4)
    assert lrs["encoder.0"] == pytest.approx(0.001 * 3 / 4)


def test_frozen_encoder_is_not_updated_nor_decayed_while_heads_train() -> None:
    trainer = trainer_for(freeze_encoder=True, weight_decay=0.5, lr=0.05, epochs=10, max_steps=3)
    encoder = {n: p.detach().clone() for n, p in trainer.model.encoder.named_parameters()}
    heads = {n: p.detach().clone() for n, p in trainer.model.heads.named_parameters()}
    assert trainer.model.shared_parameters() == {}
    for step in range(3):
        trainer.train_step(trainer.steps.build(step, 3))
    assert all(torch.equal(p, encoder[n]) for n, p in trainer.model.encoder.named_parameters())
    assert any(not torch.equal(p, heads[n]) for n, p in trainer.model.heads.named_parameters())
    # Frozen parameters are still in the optimizer (one optimizer for the whole run) but have no state.
    frozen = ids(trainer.model.encoder.parameters())
    assert frozen <= {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert not any(id(p) in frozen for p in trainer.optimizer.state)


def test_gradual_unfreezing_releases_groups_top_down_on_schedule() -> None:
    trainer = trainer_for(layers=3, freeze_encoder=True, unfreeze={"start_epoch": 2, "groups_per_epoch": 2})
    freezer, groups = trainer.freezer, trainer_for(layers=3).model.encoder.layer_groups()
    assert len(freezer.groups) == len(groups) == 4
    assert [freezer.trainable_groups(e) for e in (1, 2, 3, 4)] == [[], [2, 3], [0, 1, 2, 3], [0, 1, 2, 3]]
    model = trainer.model
    assert model.shared_parameters() == {}
    assert freezer.start_epoch(2) is True
    trainable = ids(model.shared_parameters().values())
    assert trainable == ids(freezer.groups[2]) | ids(freezer.groups[3])
    assert not any(p.requires_grad for g in freezer.groups[:2] for p in g)
    assert freezer.start_epoch(2) is False  # nothing changes within an epoch
    freezer.start_epoch(3)
    assert ids(model.shared_parameters().values()) == ids(model.encoder.parameters())


def test_unfreezing_one_group_per_epoch_from_epoch_one_is_ulmfit() -> None:
    trainer = trainer_for(layers=2, freeze_encoder=True, unfreeze={})
    assert [trainer.freezer.trainable_groups(e) for e in (1, 2, 3)] == [[2], [1, 2], [0, 1, 2]]


def test_unfreezing_without_freezing_is_a_config_error() -> None:
    data = tiny_config_dict()
    data["training"]["unfreeze"] = {"start_epoch": 2}
    with pytest.raises(ConfigError, match="freeze_encoder"):
        validate_config(data)


@pytest.mark.parametrize("method", ["upgrad", "db_mtl", "gradnorm", "pcgrad"])
def test_gradient_methods_train_through_frozen_and_unfreezing_epochs(method: str) -> None:
    trainer = trainer_for(method=method, freeze_encoder=True, unfreeze={"start_epoch": 2}, epochs=10, max_steps=6)
    top = trainer.freezer.groups[-1]
    bottom = trainer.freezer.groups[0]
    before_top = [p.detach().clone() for p in top]
    before_bottom = [p.detach().clone() for p in bottom]
    step = 0
    for epoch in (1, 2, 3):  # none, the top LSTM, then LSTM 1 and 2 train (the embeddings last)
        trainer.freezer.start_epoch(epoch)
        for _ in range(2):
            record = trainer.train_step(trainer.steps.build(step, 6))
            step += 1
            assert all(math.isfinite(v) for v in record["losses"].values())
        if epoch == 1:
            assert all(torch.equal(p, q) for p, q in zip(top, before_top))
    assert any(not torch.equal(p, q) for p, q in zip(top, before_top))
    assert all(torch.equal(p, q) for p, q in zip(bottom, before_bottom))  # group 0 only trains from epoch 4


def test_fit_logs_unfreezing_in_metrics(tmp_path) -> None:
    run_dir = RunDirectory(tmp_path / "run").create()
    trainer = trainer_for(run_dir=run_dir, freeze_encoder=True, unfreeze={"start_epoch": 2}, epochs=3,
                          epoch={"steps": 2})
    trainer.fit()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    unfreezing = [(r["epoch"], r["trainable_groups"]) for r in records if r["kind"] == "unfreeze"]
    assert unfreezing == [(2, [2]), (3, [1, 2])]


def test_weighted_sampler_uses_the_configured_rates_exactly() -> None:
    sampler = WeightedSampler({"a": 10, "b": 1000, "c": 5}, weights={"a": 3, "b": 1, "c": 1}, seed=2)
    assert sampler.probabilities(0, 10) == pytest.approx({"a": 0.6, "b": 0.2, "c": 0.2})
    assert sampler.inclusion_probabilities(0, 10, 1) == pytest.approx({"a": 0.6, "b": 0.2, "c": 0.2})
    draws = [sampler.sample(step, 4000, 1)[0] for step in range(4000)]
    assert abs(draws.count("a") / 4000 - 0.6) < 0.03
    with pytest.raises(ConfigError, match="missing"):
        WeightedSampler({"a": 1, "b": 1}, weights={"a": 1})
    with pytest.raises(ConfigError, match="> 0"):
        WeightedSampler({"a": 1, "b": 1}, weights={"a": 1, "b": 0})
