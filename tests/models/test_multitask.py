"""The shared model (layer taps, one encoder pass) and the step builder (shared examples, determinism)."""

from __future__ import annotations

import torch

from polytask.config import validate_config
from polytask.data.batching import collate
from polytask.training.setup import build_experiment
from tests.conftest import tiny_config_dict


def experiment(**encoder):
    data = tiny_config_dict()
    data["encoder"].update(encoder)
    return build_experiment(validate_config(data))


def test_heads_read_their_configured_layers_from_one_encoder_pass() -> None:
    exp = experiment()
    model = exp.model
    assert model.head_layers == {"pos": 1, "chunk": 2, "sentiment": 2}
    calls = []
    model.encoder.register_forward_hook(lambda *args: calls.append(1))
    batch = collate(exp.corpus.examples("train")[:3], model.encoder.featurizer, exp.tasks)
    output = model(batch.inputs)
    assert len(calls) == 1
    width = batch.inputs["mask"].shape[1]
    assert output.logits["pos"].shape == (3, width, exp.tasks["pos"].output_size)
    assert output.logits["sentiment"].shape == (3, exp.tasks["sentiment"].output_size)
    assert [t.shape[-1] for t in output.representation] == [model.encoder.layer_dims[1], model.encoder.layer_dims[2]]


def test_pos_loss_does_not_reach_layers_above_its_tap() -> None:
    exp = experiment()
    model = exp.model
    batch = collate(exp.corpus.task_examples("pos", "train")[:2], model.encoder.featurizer, exp.tasks)
    output = model(batch.inputs, ["pos"])
    exp.tasks["pos"].loss(output.logits["pos"], batch.targets["pos"], batch.labelled["pos"]).backward()
    assert all(p.grad is None for p in model.encoder.lstms[1].parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.lstms[0].parameters())


def test_cnn_encoder_exposes_every_layer() -> None:
    exp = experiment(type="cnn", layers=3)
    assert len(exp.model.encoder.layer_dims) == 4


def test_padding_does_not_change_outputs() -> None:
    exp = experiment()
    model = exp.model.eval()
    examples = exp.corpus.examples("train")
    short = min(examples, key=lambda e: len(e.tokens))
    long = max(examples, key=lambda e: len(e.tokens))
    alone = model(collate([short], model.encoder.featurizer, {}).inputs).logits
    padded = model(collate([short, long], model.encoder.featurizer, {}).inputs).logits
    n = len(short.tokens)
    assert torch.allclose(alone["pos"][0, :n], padded["pos"][0, :n], atol=1e-5)
    assert torch.allclose(alone["sentiment"][0], padded["sentiment"][0], atol=1e-5)
