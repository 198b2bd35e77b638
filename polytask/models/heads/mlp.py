"""The small network every head ends with."""

from __future__ import annotations

from torch import nn


def output_network(input_dim: int, hidden: int, outputs: int, dropout: float) -> nn.Sequential:
    """Dropout, an optional tanh hidden layer, then a linear output layer."""
    layers: list[nn.Module] = [nn.Dropout(dropout)]
    if hidden:
        layers += [nn.Linear(input_dim, hidden), nn.Tanh(), nn.Dropout(dropout)]
        input_dim = hidden
    layers.append(nn.Linear(input_dim, outputs))
    return nn.Sequential(*layers)
