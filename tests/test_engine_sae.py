"""SAE basis: delta-decode keeps the error term and equals encode + decode-twice splicing."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

import superwidgets as sw
from superwidgets.science import ReLUSAE


class TopKSAE(nn.Module):
    """No encode_subset: the basis must fall back to a full encode."""

    def __init__(self, d: int, n: int, k: int) -> None:
        super().__init__()
        torch.manual_seed(11)
        self.W_enc = nn.Parameter(torch.randn(d, n) / d**0.5)
        self.W_dec = nn.Parameter(torch.randn(n, d) / d**0.5)
        self.k = k

    def encode(self, x):
        pre = x @ self.W_enc
        top = pre.topk(self.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))

    def decode(self, c):
        return c @ self.W_dec


@pytest.fixture
def setup():
    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict([("inp", nn.Linear(10, 8)), ("act", nn.ReLU()), ("out", nn.Linear(8, 3))])).eval()
    sae = ReLUSAE(8, 32, seed=3)
    with torch.no_grad():
        sae.b_enc.fill_(0.05)
        sae.b_dec.copy_(torch.randn(8) * 0.1)
    x = torch.randn(16, 10)
    return model, sae, x


def clean(lens, x):
    return lens.activations(x, "act")["act"]


def test_no_edit_changes_nothing(setup):
    model, sae, x = setup
    with sw.Lens(model) as lens:
        e = lens.edit("act", sw.Ablate([0, 1, 2]), basis=sw.SAE(sae), enabled=False)
        r = lens.run(x)
        assert torch.equal(r.edited, r.baseline)
        e.enabled = True
        assert not torch.allclose(lens.run(x).edited, r.baseline)


def test_delta_decode_equals_splicing(setup):
    model, sae, x = setup
    feats = [1, 5, 9]
    with sw.Lens(model) as lens:
        h = clean(lens, x)
        lens.edit("act", sw.Ablate(feats), basis=sw.SAE(sae))
        got = lens.activations(x, "act", edited=True)["act"]
    with torch.no_grad():
        c = sae.encode(h)
        c2 = c.clone()
        c2[:, feats] = 0
        spliced = h + sae.decode(c2) - sae.decode(c)  # reconstruction error kept
    assert torch.allclose(got, spliced, atol=1e-5)
    assert (c[:, feats] > 0).any(), "the test must edit active latents"


def test_clamp_scale_steer_in_sae_basis(setup):
    model, sae, x = setup
    with sw.Lens(model) as lens:
        h = clean(lens, x)
        lens.edit("act", sw.Clamp([4], value=2.0), basis=sw.SAE(sae))
        got = lens.activations(x, "act", edited=True)["act"]
        lens.clear()
        lens.edit("act", sw.Steer(feature=7, alpha=1.5), basis=sw.SAE(sae))
        steered = lens.activations(x, "act", edited=True)["act"]
    with torch.no_grad():
        c4 = sae.encode(h)[:, 4]
        assert torch.allclose(got, h + (2.0 - c4)[:, None] * sae.W_dec[4], atol=1e-5)
        assert torch.allclose(steered, h + 1.5 * sae.W_dec[7], atol=1e-6)


def test_without_error_term_is_full_reconstruction(setup):
    model, sae, x = setup
    with sw.Lens(model) as lens:
        h = clean(lens, x)
        lens.edit("act", sw.Scale([2], factor=3.0), basis=sw.SAE(sae, keep_error=False))
        got = lens.activations(x, "act", edited=True)["act"]
    with torch.no_grad():
        c = sae.encode(h)
        c[:, 2] *= 3
        assert torch.allclose(got, sae.decode(c), atol=1e-5)


def test_topk_falls_back_to_full_encode(setup):
    model, _, x = setup
    sae = TopKSAE(8, 24, k=3)
    with sw.Lens(model) as lens:
        h = clean(lens, x)
        lens.edit("act", sw.Ablate([0, 3]), basis=sw.SAE(sae))
        got = lens.activations(x, "act", edited=True)["act"]
    with torch.no_grad():
        c = sae.encode(h)
        assert torch.allclose(got, h - c[:, [0, 3]] @ sae.W_dec[[0, 3]], atol=1e-5)


def test_mean_ablate_sae_uses_mean_codes(setup):
    model, sae, _ = setup
    torch.manual_seed(5)
    ref = torch.randn(64, 10)
    with sw.Lens(model) as lens:
        e = lens.edit("act", sw.MeanAblate([3, 6], reference=ref), basis=sw.SAE(sae))
        assert e.op.kind == "clamp"
        want = sae.encode(clean(lens, ref))[:, [3, 6]].mean(0)
        assert torch.allclose(torch.tensor(e.op.value), want, atol=1e-5)


def test_resample_is_seeded_and_uses_reference(setup):
    model, _, x = setup
    torch.manual_seed(6)
    ref = torch.randn(40, 10)
    with sw.Lens(model) as lens:
        e = lens.edit("act", sw.Resample([2], reference=ref, seed=7))
        pool = clean(lens, ref)[:, 2]
        assert torch.allclose(e.op.pool[:, 0], pool)
        a = lens.activations(x, "act", edited=True)["act"][:, 2]
        b = lens.activations(x, "act", edited=True)["act"][:, 2]
        assert torch.equal(a, b)  # same seed, same draw
        assert all(bool((pool == v).any()) for v in a)  # every value comes from the reference
        e.update(seed=8)
        assert not torch.equal(lens.activations(x, "act", edited=True)["act"][:, 2], a)


def test_sae_width_mismatch_is_clear(setup):
    model, _, x = setup
    with sw.Lens(model) as lens:
        lens.run(x)
        with pytest.raises(ValueError, match=r"SAE decoder has shape \(32, 5\) but the site has 8 features"):
            lens.edit("act", sw.Ablate([0]), basis=sw.SAE(ReLUSAE(5, 32)))


def test_not_an_sae():
    with pytest.raises(TypeError, match="encode\\(\\), decode\\(\\) and W_dec"):
        sw.SAE(nn.Linear(3, 3))
