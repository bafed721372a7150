"""Shared fixtures for the Python tests."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn


class TupleBlock(nn.Module):
    """An HF-style block: returns (hidden, aux) from its forward."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.lin = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.lin(x))
        return h, h.sum(-1)


class Nested(nn.Module):
    """Nested containers with tuple-returning blocks and a final head."""

    def __init__(self, d: int = 8, n_out: int = 3) -> None:
        super().__init__()
        self.embed = nn.Linear(4, d)
        self.layers = nn.ModuleList([TupleBlock(d), TupleBlock(d)])
        self.head = nn.Sequential(OrderedDict([("norm", nn.LayerNorm(d)), ("out", nn.Linear(d, n_out))]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        for layer in self.layers:
            h, _ = layer(h)
        return self.head(h)


@pytest.fixture
def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict([("inp", nn.Linear(6, 5)), ("hidden", nn.ReLU()), ("out", nn.Linear(5, 3))])
    ).eval()


@pytest.fixture
def nested() -> nn.Module:
    torch.manual_seed(1)
    return Nested().eval()
