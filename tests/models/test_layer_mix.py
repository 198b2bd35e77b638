"""`heads.TASK.layer: mix`: a learned softmax-weighted scalar mix of encoder layers (ELMo), for any encoder."""

from __future__ import annotations

import pytest
import torch

from polytask.config import validate_config
from polytask.data.batching import collate
from polytask.errors import ConfigError
from polytask.models.heads.scalar_mix import MixedLayersHead, ScalarMix
from polytask.training.setup import build_experiment
from tests.conftest import tiny_config_dict


def test_scalar_mix_is_a_scaled_convex_combination() -> None:
    mix = ScalarMix(3)
    with torch.no_grad():
        mix.logits.copy_(torch.tensor([0.5, -1.0, 2.0]))
        mix.scale.fill_(1.5)
    layers = [torch.randn(2, 4, 5) for _ in range(3)]
    assert float(mix.weights.detach().sum()) == pytest.approx(1.0)
    expected = 1.5 * sum(w * h for w, h in zip(torch.softmax(torch.tensor([0.5, -1.0, 2.0]), 0), layers))
    assert torch.allclose(mix(layers), expected, atol=1e-6)
    assert torch.allclose(ScalarMix(3)(layers), sum(layers) / 3, atol=1e-6)  # starts as the mean


def test_mix_head_trains_its_weights_and_reaches_every_mixed_layer() -> None:
    data = tiny_config_dict()
    data["heads"] = {"pos": {"layer": "mix"}}
    exp = build_experiment(validate_config(data))
    model = exp.model
    # a BiLSTM's layer 0 (word + char vectors) is narrower than its layers: the mix reads the layers of the top's size
    assert model.head_layers["pos"] == [1, 2] and model.head_layers["chunk"] == 2
    head = model.heads["pos"]
    assert isinstance(head, MixedLayersHead)
    assert {"heads.pos.mix.logits", "heads.pos.mix.scale"} <= set(model.task_parameters("pos"))
    batch = collate(exp.corpus.task_examples("pos", "train")[:3], model.encoder.featurizer, exp.tasks)
    output = model(batch.inputs, ["pos"])
    assert len(output.representation) == 2  # the mixed layers are the representation the engine sees
    exp.tasks["pos"].loss(output.logits["pos"], batch.targets["pos"], batch.labelled["pos"]).backward()
    assert head.mix.logits.grad is not None and head.mix.logits.grad.abs().sum() > 0
    assert head.mix.scale.grad is not None and head.mix.scale.grad.abs() > 0
    for lstm in model.encoder.lstms:  # both mixed layers pass gradient to the encoder
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in lstm.parameters())
    optimizer = torch.optim.SGD([head.mix.logits], lr=10.0)
    optimizer.step()
    assert float(head.mix.weights.detach().sum()) == pytest.approx(1.0)
    assert not torch.allclose(head.mix.weights.detach(), torch.full((2,), 0.5))


def test_an_unknown_layer_name_is_a_config_error() -> None:
    data = tiny_config_dict()
    data["heads"] = {"pos": {"layer": "average"}}
    with pytest.raises(ConfigError, match="heads.pos.layer"):
        validate_config(data)
