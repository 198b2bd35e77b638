"""The BiLSTM's export twin (padded tensors, each direction one-way) computes what the packed BiLSTM computes."""

from __future__ import annotations

import torch

from polytask.config import validate_config
from polytask.training.setup import build_experiment
from tests.conftest import tiny_config_dict


def test_padded_twin_equals_the_packed_encoder_on_uneven_lengths() -> None:
    torch.manual_seed(0)
    experiment = build_experiment(validate_config(tiny_config_dict()))
    encoder = experiment.model.encoder.eval()
    sentences = [["a", "b", "c", "d", "e", "f"], ["g"], ["h", "i", "j"], ["k", "l"]]
    inputs = encoder.featurizer(sentences)
    with torch.no_grad():
        packed, padded = encoder(**inputs), encoder.export_module()(**inputs)
    mask = inputs["mask"]
    assert len(packed.layers) == len(padded.layers)
    for a, b in zip(packed.layers, padded.layers):
        assert torch.allclose(a, b, atol=1e-6)
        assert torch.equal(b[~mask], torch.zeros_like(b[~mask]))  # padding stays 0
