"""Batched sweeps equal a loop of single runs."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

import superwidgets as sw


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(5, 8)
        self.block = nn.Sequential(nn.Linear(8, 8), nn.ReLU())
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        h = self.embed(x)
        return self.head(h + self.block(h))


class Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(5, 8)
        self.b = nn.ReLU()
        self.c = nn.Linear(8, 3)

    def forward(self, x):
        h = self.b(self.a(x))
        if h.sum() > 1e9:
            h = h * 0
        return self.c(h)


def loop(model, site, x, ops, readout, basis=None):
    out = []
    with sw.Lens(model, resume=False) as lens:
        for o in ops:
            lens.clear()
            lens.edit(site, o, basis=basis)
            r = lens.run(x)
            out.append(readout(r.edited) - readout(r.baseline))
    return torch.stack(out)


def models():
    torch.manual_seed(0)
    seq = nn.Sequential(OrderedDict([("l1", nn.Linear(5, 8)), ("act", nn.ReLU()), ("out", nn.Linear(8, 3))])).eval()
    return [(seq, "act"), (Residual().eval(), "block"), (Untraceable().eval(), "b")]


@pytest.mark.parametrize("batch_size", [7, 64, 10_000])
@pytest.mark.parametrize("which", [0, 1, 2])
def test_ablation_sweep_equals_loop(which, batch_size):
    model, site = models()[which]
    torch.manual_seed(1)
    x = torch.randn(23, 5)
    readout = lambda y: y.softmax(-1)  # noqa: E731
    want = loop(model, site, x, [sw.Ablate([f]) for f in range(8)], readout)
    with sw.Lens(model) as lens:
        lens.edit(site, sw.Steer(feature=0, alpha=5.0))  # the lens's own edits do not leak into the sweep
        got = lens.sweep(site, x, readout=readout, batch_size=batch_size)
    assert got.shape == (8, 23, 3)
    assert torch.allclose(got, want, atol=1e-6)


def test_custom_op_and_direction_basis():
    model, site = models()[0]
    torch.manual_seed(2)
    x = torch.randn(11, 5)
    basis = sw.Directions(torch.randn(4, 8), names=list("abcd"))
    want = loop(model, site, x, [sw.Clamp([f], value=2.0) for f in "bd"], lambda y: y, basis=basis)
    seen = []
    with sw.Lens(model) as lens:
        got = lens.sweep(
            site,
            x,
            features=["b", "d"],
            op=lambda f: sw.Clamp([f], value=2.0),
            basis=basis,
            progress=lambda d, t: seen.append((d, t)),
        )
    assert torch.allclose(got, want, atol=1e-5)
    assert seen[-1][0] == seen[-1][1]


def test_mean_sweep():
    model, site = models()[1]
    torch.manual_seed(3)
    x = torch.randn(9, 5)
    with sw.Lens(model) as lens:
        mean = lens.mean(site, x)
        got = lens.sweep(site, x, op="mean", features=[0, 3])
    want = loop(model, site, x, [sw.MeanAblate([0], mean=mean), sw.MeanAblate([3], mean=mean)], lambda y: y)
    assert torch.allclose(got, want, atol=1e-6)


def test_bad_sweeps():
    model, site = models()[0]
    with sw.Lens(model) as lens:
        with pytest.raises(ValueError, match="op must be"):
            lens.sweep(site, torch.randn(3, 5), op="zap")
        with pytest.raises(ValueError, match="non-empty tensor"):
            lens.sweep(site, torch.randn(0, 5))
        with pytest.raises(ValueError, match="unknown site"):
            lens.sweep("actt", torch.randn(3, 5))
