"""SAE metrics on hand-made inputs with known answers, and loss_recovered's hook hygiene."""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pytest
import torch
from _util import hook_count
from torch import nn

import superwidgets as sw
from superwidgets.science import metrics
from superwidgets.science.sae import ReLUSAE


def test_sparsity_metrics():
    codes = torch.tensor([[0.0, 1.0, 0.0, 2.0], [0.0, 0.5, 0.0, 0.0], [0.0, 3.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0]])
    assert metrics.l0(codes) == pytest.approx((2 + 1 + 1 + 2) / 4)
    assert metrics.dead_fraction(codes) == pytest.approx(0.25)  # latent 0 never fires
    # firing rates 0, 1, 0.25, 0.25: dense above 10 % -> 3 of 4; above 50 % -> 1 of 4
    assert metrics.dense_fraction(codes) == pytest.approx(0.75)
    assert metrics.dense_fraction(codes, threshold=0.5) == pytest.approx(0.25)
    assert metrics.l0(codes.numpy()) == metrics.l0(codes)  # arrays too


def test_reconstruction_metrics():
    x = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    assert metrics.normalized_mse(x, x) == 0.0
    assert metrics.normalized_mse(x, torch.zeros_like(x)) == pytest.approx(1.0)
    mean = x.mean(0, keepdim=True).expand_as(x)
    assert metrics.fvu(x, mean) == pytest.approx(1.0)
    assert metrics.fvu(x, x + torch.tensor([[0.5, 0.0], [-0.5, 0.0]])) == pytest.approx(0.5 / 2.0)
    with pytest.raises(ValueError, match="2-D"):
        metrics.fvu(torch.zeros(3), torch.zeros(3))


def test_mmcs():
    g = torch.Generator().manual_seed(0)
    true = torch.randn(10, 6, generator=g)
    dec = torch.cat([true[torch.randperm(10, generator=g)] * 3.0, torch.randn(5, 6, generator=g)])
    assert metrics.mmcs(true, dec) == pytest.approx(1.0)
    assert metrics.mmcs(true, -true) < 1.0
    assert metrics.mmcs(np.eye(3), np.eye(3)[[0]]) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="length"):
        metrics.mmcs(true, torch.randn(4, 5))


def test_mcc_matches_permuted_scaled_factors_and_handles_constants():
    g = torch.Generator().manual_seed(0)
    f = torch.rand(500, 4, generator=g)
    perm = [2, 0, 3, 1]
    z = f[:, perm] * torch.tensor([2.0, -1.0, 0.5, 3.0]) + 1.0
    score, pairs = metrics.mcc(z, f, return_pairs=True)
    assert score == pytest.approx(1.0)
    assert sorted((i, j) for i, j, _ in pairs) == sorted((i, perm[i]) for i in range(4))
    # a dead latent and a constant factor count as 0, never NaN
    z2 = torch.cat([z, torch.zeros(500, 1)], 1)
    f2 = torch.cat([f, torch.ones(500, 1)], 1)
    s2 = metrics.mcc(z2, f2)
    assert math.isfinite(s2) and s2 == pytest.approx(4 / 5)
    assert metrics.mcc(z2, f2, top=4) == pytest.approx(1.0)
    # more latents than factors: matched over min(n_latents, n_factors) pairs
    assert metrics.mcc(torch.cat([z, torch.rand(500, 3, generator=g)], 1), f) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="rows"):
        metrics.mcc(z[:10], f)
    with pytest.raises(ValueError, match="top"):
        metrics.mcc(z, f, top=0)


@pytest.fixture
def classifier():
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict([("inp", nn.Linear(5, 8)), ("act", nn.ReLU()), ("out", nn.Linear(8, 3))])).eval()


class _Identity(nn.Module):
    def forward(self, x):
        return x


class _Zero(nn.Module):
    def forward(self, x):
        return torch.zeros_like(x)


def test_loss_recovered_bounds_and_hook_hygiene(classifier):
    x = torch.randn(64, 5)
    y = classifier(x).argmax(1)
    assert metrics.loss_recovered(classifier, "act", _Identity(), x, y) == pytest.approx(1.0)
    assert metrics.loss_recovered(classifier, "act", _Zero(), x, y) == pytest.approx(0.0)
    frac, losses = metrics.loss_recovered(
        classifier, "act", ReLUSAE(8, 16, seed=1), x, y, return_losses=True
    )  # an untrained SAE: somewhere, finite
    assert set(losses) == {"clean", "zero", "sae"} and math.isfinite(frac)
    assert hook_count(classifier) == 0

    def boom(out, t):
        raise RuntimeError("bad loss")

    with pytest.raises(RuntimeError, match="bad loss"):
        metrics.loss_recovered(classifier, "act", _Identity(), x, y, loss_fn=boom)
    assert hook_count(classifier) == 0
    assert not classifier.training


def test_loss_recovered_through_a_lens_switches_edits_off(classifier):
    x = torch.randn(64, 5)
    y = classifier(x).argmax(1)
    with sw.Lens(classifier) as lens:
        lens.edit("act", sw.Ablate([0, 1, 2, 3]))
        assert metrics.loss_recovered(lens, "act", _Identity(), x, y) == pytest.approx(1.0)
        edited = lens.run(x).edited  # the edit is still there afterwards
        assert not torch.allclose(edited, lens.run(x).baseline)


def test_loss_recovered_on_a_conv_site_applies_the_sae_per_position():
    torch.manual_seed(0)
    model = nn.Sequential(
        OrderedDict(
            [
                ("conv", nn.Conv2d(2, 4, 3, padding=1)),
                ("relu", nn.ReLU()),
                ("pool", nn.AdaptiveAvgPool2d(1)),
                ("flat", nn.Flatten()),
                ("out", nn.Linear(4, 3)),
            ]
        )
    ).eval()
    x = torch.randn(16, 2, 6, 6)
    y = model(x).argmax(1)

    class Channels(nn.Module):  # would fail on (B, C, H, W) unless channels are moved last
        def forward(self, h):
            assert h.shape[-1] == 4
            return h

    assert metrics.loss_recovered(model, "relu", Channels(), x, y) == pytest.approx(1.0)


def test_evaluate_sae_returns_every_metric(classifier):
    sae = ReLUSAE(8, 16, seed=0)
    x = torch.randn(64, 5)
    acts = torch.relu(classifier.inp(x)).detach()
    factors = torch.rand(64, 3)
    ev = metrics.evaluate_sae(
        sae,
        acts,
        true_directions=torch.randn(4, 8),
        factors=factors,
        model=classifier,
        site="act",
        inputs=x,
        targets=classifier(x).argmax(1),
    )
    assert set(ev) == {
        "l0",
        "normalized_mse",
        "fvu",
        "dead_fraction",
        "dense_fraction",
        "mmcs",
        "mcc",
        "mcc_raw",
        "mcc_top_d",
        "loss_recovered",
    }
    assert all(isinstance(v, float) and math.isfinite(v) for v in ev.values())
    assert set(metrics.evaluate_sae(sae, acts)) == {"l0", "normalized_mse", "fvu", "dead_fraction", "dense_fraction"}
