"""The BiLSTM on padded sentences computes what torch's packed bidirectional LSTM computes, and so does its export twin."""

from __future__ import annotations

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from polytask.config import validate_config
from polytask.models.encoders.bilstm import PaddedBiLSTM
from polytask.training.setup import build_experiment
from tests.conftest import tiny_config_dict

SENTENCES = [["a", "b", "c", "d", "e", "f"], ["g"], ["h", "i", "j"], ["k", "l"]]


def _encoder():
    torch.manual_seed(0)
    return build_experiment(validate_config(tiny_config_dict())).model.encoder


def _packed_reference(encoder, inputs) -> list[torch.Tensor]:
    """Every layer through torch's own packed-sequence LSTM with the encoder's modules (dropout off)."""
    mask = inputs["mask"]
    states = encoder.embed(inputs["word_ids"], inputs.get("char_ids"), inputs.get("shape_ids"))
    layers = [states]
    for lstm in encoder.lstms:
        packed = pack_padded_sequence(states, mask.sum(1), batch_first=True, enforce_sorted=False)
        states, _ = pad_packed_sequence(torch.nn.LSTM.forward(lstm, packed)[0], batch_first=True, total_length=mask.shape[1])
        layers.append(states)
    return layers


def test_layers_and_gradients_equal_torchs_packed_lstm_on_uneven_lengths() -> None:
    encoder = _encoder().eval()
    inputs = encoder.featurizer(SENTENCES)
    ours, reference = encoder(**inputs).layers, _packed_reference(encoder, inputs)
    for a, b in zip(ours, reference, strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    parameters = [p for lstm in encoder.lstms for p in lstm.parameters()]
    mine = torch.autograd.grad(ours[-1].pow(2).sum(), parameters)
    theirs = torch.autograd.grad(reference[-1].pow(2).sum(), parameters)
    for a, b in zip(mine, theirs, strict=True):
        assert a.abs().max() > 0 and torch.allclose(a, b, atol=1e-5)


def test_more_padding_changes_no_real_state() -> None:
    encoder = _encoder().eval()
    inputs = encoder.featurizer(SENTENCES)
    wider = {name: torch.nn.functional.pad(value, (0, 0, 0, 5) if value.dim() == 3 else (0, 5))
             for name, value in inputs.items()}
    with torch.no_grad():
        narrow, wide = encoder(**inputs).layers[-1], encoder(**wider).layers[-1]
    assert torch.allclose(narrow, wide[:, :narrow.shape[1]], atol=1e-6)
    assert torch.equal(wide[:, narrow.shape[1]:], torch.zeros_like(wide[:, narrow.shape[1]:]))


def test_padded_twin_equals_the_encoder_and_keeps_padding_zero() -> None:
    encoder = _encoder().eval()
    inputs = encoder.featurizer(SENTENCES)
    with torch.no_grad():
        ours, twin = encoder(**inputs), encoder.export_module()(**inputs)
    mask = inputs["mask"]
    assert len(ours.layers) == len(twin.layers)
    for a, b in zip(ours.layers, twin.layers):
        assert torch.allclose(a, b, atol=1e-6)
        assert torch.equal(b[~mask], torch.zeros_like(b[~mask]))  # padding stays 0


def test_a_padded_layer_is_a_bidirectional_lstm_to_its_state_dict_and_draws_no_random_numbers() -> None:
    """Runs saved before the padded layer load into it; running it leaves dropout's random stream as it was."""
    torch.manual_seed(3)
    layer = PaddedBiLSTM(6, 4)
    torch.manual_seed(3)
    reference = torch.nn.LSTM(6, 4, batch_first=True, bidirectional=True)
    assert layer.state_dict().keys() == reference.state_dict().keys()
    assert all(torch.equal(value, reference.state_dict()[key]) for key, value in layer.state_dict().items())
    states, mask = torch.randn(2, 5, 6), torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    torch.manual_seed(11)
    layer(states, mask)  # the first call builds the one-way template
    after_call = torch.rand(3)
    torch.manual_seed(11)
    assert torch.equal(after_call, torch.rand(3))


def test_forward_hooks_on_the_encoders_lstm_layers_fire() -> None:
    encoder = _encoder().eval()
    calls = []
    for lstm in encoder.lstms:
        lstm.register_forward_hook(lambda module, args, output: calls.append(output.shape))
    inputs = encoder.featurizer(SENTENCES)
    encoder(**inputs)
    assert len(calls) == len(encoder.lstms) and all(shape[-1] == 2 * encoder.lstms[0].hidden_size for shape in calls)


def test_under_cpu_float16_autocast_the_layer_runs_in_float32_and_equals_no_autocast() -> None:
    """oneDNN has no float16 LSTM, so the layer leaves autocast there (the CPU fp16 path tests the scaler)."""
    layer = PaddedBiLSTM(6, 4).eval()
    states, mask = torch.randn(2, 5, 6), torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    with torch.autocast("cpu", dtype=torch.float16):
        autocast = layer(states, mask)
    assert autocast.dtype == torch.float32 and torch.equal(autocast, layer(states, mask))
