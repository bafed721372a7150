"""LatentStats: streamed latent statistics equal a dense reference, sparse storage, effects on demand."""

from __future__ import annotations

import itertools
import sys

import numpy as np
import pytest
import torch
from _util import hook_count

import superwidgets as sw
from superwidgets.analysis import latents as latents_mod
from superwidgets.analysis.latents import LatentStats
from superwidgets.science.sae import ReLUSAE, make_sae

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def gpt2():
    """A GPT-2-shaped language model at small size (random weights)."""
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=500, n_positions=32)
    return transformers.GPT2LMHeadModel(cfg).eval()


@pytest.fixture(scope="module")
def ids():
    return torch.randint(0, 500, (40, 12), generator=torch.Generator().manual_seed(3))


def softmax_last(out):
    return torch.softmax(out.logits[:, -1, :7].float(), -1)


def dense_reference(lens, site, sae, X):
    """Everything computed densely: codes (n, positions, L), pooled (n, L)."""
    h = lens.activations(X, site)[site]
    with torch.no_grad():
        codes = sae.encode(h.movedim(1, -1) if h.ndim == 4 else h).float()
    codes = codes.reshape(len(X), -1, codes.shape[-1]).numpy()
    pooled = np.maximum(codes.max(1), 0)
    return codes, pooled


def check_against_dense(stats, codes, pooled, top_k, bins):
    n, L = pooled.shape
    np.testing.assert_array_equal(stats.n_active, (pooled > 0).sum(0))
    np.testing.assert_array_equal(stats.frequency, ((pooled > 0).sum(0) / n).astype(np.float32))
    np.testing.assert_allclose(stats.max, pooled.max(0), rtol=1e-6, atol=1e-7)
    for f in range(L):
        col = pooled[:, f]
        on = col[col > 0]
        want, want_edges = np.histogram(on, bins=bins, range=(0.0, float(on.max()) if on.size else 1.0))
        got, edges = stats.histogram(f)
        np.testing.assert_array_equal(got, want, err_msg=f"histogram of latent {f}")
        np.testing.assert_allclose(edges, want_edges, rtol=1e-6)
        top = np.argsort(-col, kind="stable")[:top_k]
        top = top[col[top] > 0]
        got_idx, got_val = stats.top(f)
        np.testing.assert_array_equal(got_idx, top, err_msg=f"top inputs of latent {f}")
        np.testing.assert_allclose(got_val, col[top], rtol=1e-6)
        np.testing.assert_allclose(stats.column(f), col, rtol=1e-6, atol=1e-7)


def test_streamed_statistics_equal_a_dense_reference_on_a_sequence_site(gpt2, ids):
    sae = make_sae("topk", 64, 256, k=6, seed=1)
    with sw.Lens(gpt2) as lens:
        seen = []
        stats = LatentStats(
            lens, "transformer.h.0", sae, ids, readout=softmax_last, top_k=5, bins=9, chunk=7,
            progress=lambda done, total: seen.append((done, total)),
        )  # fmt: skip
        codes, pooled = dense_reference(lens, "transformer.h.0", sae, ids)
        check_against_dense(stats, codes, pooled, 5, 9)
        assert stats.positions == (12,) and stats.n_latents == 256 and stats.names[3] == "latent 3"
        # progress: a first chunk of one input, then chunks of at most 7, ending at the total
        assert seen[0] == (1, 40) and seen[-1] == (40, 40)
        assert all(b - a <= 7 for (a, _), (b, _) in itertools.pairwise(seen))
        # each top input's code at every position, from the kept sparse codes
        f = int(np.argmax(stats.frequency))
        top, _ = stats.top(f)
        np.testing.assert_allclose(stats.positions_of(f, top), codes[top][..., f], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(stats.dense_codes(top[:2]), codes[top[:2]], rtol=1e-5, atol=1e-6)
        # baseline readout per input
        np.testing.assert_allclose(stats.baseline, softmax_last(lens.run(ids).baseline).numpy(), atol=1e-6)
    assert hook_count(gpt2) == 0


def test_a_relu_sae_at_a_convolutional_site():
    model, _ = sw.zoo.load("neuron-cnn-narrow")
    world = sw.data.neurons(n=60, seed=5, image_size=32)
    X = torch.as_tensor(world.images)
    sae = ReLUSAE(64, 40, seed=3)
    with torch.no_grad():
        sae.b_enc.fill_(-0.1)
    with sw.Lens(model) as lens:
        stats = LatentStats(lens, "conv.block3", sae, X, top_k=4, bins=6, chunk=16)
        codes, pooled = dense_reference(lens, "conv.block3", sae, X)
        check_against_dense(stats, codes, pooled, 4, 6)
        assert stats.positions == (4, 4)
        f = int(np.argmax(stats.frequency))
        top, _ = stats.top(f)
        np.testing.assert_allclose(stats.positions_of(f, top), codes[top][..., f].reshape(-1, 4, 4), atol=1e-6)


def test_a_pooled_one_by_one_conv_site_gives_each_top_input_its_single_code():
    """A global average pool's output (n, C, 1, 1): one position, so each input has at most one code per latent
    (the neuron-ssl encoder's ``pool`` site; a FeatureDashboard on it used to fail in positions_of)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(4, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1))
    X = torch.randn(50, 4, 8, 8)
    sae = ReLUSAE(16, 24, seed=3)
    with sw.Lens(model) as lens:
        stats = LatentStats(lens, "2", sae, X, top_k=5, bins=6, chunk=16)
        codes, pooled = dense_reference(lens, "2", sae, X)
        check_against_dense(stats, codes, pooled, 5, 6)
        assert stats.positions == (1, 1)
        f = int(np.argmax(stats.frequency))
        top, _ = stats.top(f)
        got = stats.positions_of(f, [*top, *np.setdiff1d(np.arange(50), top)[:3]])
        np.testing.assert_allclose(got[: len(top)], codes[top][..., f].reshape(-1, 1, 1), atol=1e-6)
        assert got.shape == (len(top) + 3, 1, 1)


def test_the_stats_hold_no_dense_positions_by_latents_array(gpt2, ids):
    sae = make_sae("topk", 64, 2048, k=4, seed=2)
    with sw.Lens(gpt2) as lens:
        stats = LatentStats(lens, "transformer.h.1", sae, ids, readout=softmax_last, top_k=3, bins=5)
    n, positions, L = 40, 12, 2048
    nnz = int(stats.codes.value.size)
    assert nnz <= n * positions * 4  # at most k codes per position
    assert stats.pooled.value.size <= nnz
    # every array it keeps is far smaller than the dense (positions × latents) or (inputs × latents) codes
    arrays = [v for v in vars(stats).values() if isinstance(v, np.ndarray)]
    arrays += [getattr(c, a) for c in (stats.pooled, stats.codes) for a in ("offsets", "input", "position", "value")]
    arrays = [a for a in arrays if a is not None]
    assert max(a.size for a in arrays) < n * L  # the largest: the (L, bins) histograms, 10,240 values
    assert stats.codes.nbytes == (L + 1) * 8 + nnz * 12
    assert stats.nbytes < n * positions * L * 4 / 20  # under 5% of the dense float32 codes
    assert stats.codes.input.dtype == np.int32 and stats.codes.value.dtype == np.float32


def test_positions_recomputed_when_too_many_to_keep(gpt2, ids, monkeypatch):
    sae = make_sae("topk", 64, 256, k=6, seed=1)
    monkeypatch.setattr(latents_mod, "_POSITION_ENTRIES", 100)
    with sw.Lens(gpt2) as lens:
        stats = LatentStats(lens, "transformer.h.0", sae, ids, readout=softmax_last, chunk=8)
        assert stats.codes is None  # past the budget: positions are not kept
        codes, pooled = dense_reference(lens, "transformer.h.0", sae, ids)
        check_against_dense(stats, codes, pooled, 12, 30)
        f = int(np.argmax(stats.frequency))
        top, _ = stats.top(f)
        np.testing.assert_allclose(stats.positions_of(f, top), codes[top][..., f], rtol=1e-5, atol=1e-6)


def edited_delta(lens, site, op, sae, X):
    """The change of the readout under one edit, from a plain edited run (lens.edit + lens.run)."""
    e = lens.edit(site, op, basis=sw.SAE(sae))
    try:
        r = lens.run(X)
        return (softmax_last(r.edited) - softmax_last(r.baseline)).numpy()
    finally:
        lens.remove(e)


def test_effects_on_demand_equal_a_plain_edited_run(gpt2, ids):
    sae = make_sae("topk", 64, 256, k=6, seed=1)
    with sw.Lens(gpt2) as lens:
        stats = LatentStats(lens, "transformer.h.0", sae, ids, readout=softmax_last)
        f = int(np.argmax(stats.frequency))
        ref = edited_delta(lens, "transformer.h.0", sw.Ablate([f]), sae, ids)
        got = stats.effect(f)
        np.testing.assert_allclose(got, ref, atol=2e-6)
        assert stats.effect(f) is got  # cached
        inactive = np.setdiff1d(np.arange(40), stats.active(f))
        assert inactive.size and (got[inactive] == 0).all()  # only active inputs ran
        ref = edited_delta(lens, "transformer.h.0", sw.Steer(feature=f, alpha=3.0), sae, ids)
        np.testing.assert_allclose(stats.effect(f, "steer", 3.0), ref, atol=2e-6)
        # a set of latents for a sort: mean change over a sample; both strategies agree with the single runs
        order = np.argsort(-stats.frequency, kind="stable")
        few = [int(i) for i in order[:6]]
        sample = np.arange(0, 40, 2)
        batched = stats.effects(few, sample=sample)
        assert batched.shape == (6, 7)
        want = np.stack([stats.effect(g)[sample].astype(np.float64).mean(0) for g in few])
        np.testing.assert_allclose(batched, want, atol=2e-6)
        rare = [int(i) for i in order[-40:] if stats.frequency[i] > 0][:5]
        np.testing.assert_allclose(stats.effects(rare), np.stack([stats.effect(g).mean(0) for g in rare]), atol=2e-6)
        assert lens.edits == []
        with pytest.raises(ValueError, match="effect mode"):
            stats.effect(f, "melt")
        with pytest.raises(ValueError, match="out of range"):
            stats.effect(256)
        with pytest.raises(ValueError, match="sample indices"):
            stats.effects(few, sample=[99])


def test_search_by_index_or_label(gpt2, ids):
    names = [f"feat {i}" for i in range(255)] + ["Apostrophe"]
    sae = sw.SAE(make_sae("topk", 64, 256, k=6, seed=1), names=names)
    with sw.Lens(gpt2) as lens:
        stats = LatentStats(lens, "transformer.h.0", sae, ids[:8], readout=softmax_last)
    assert list(stats.search("255")) == [255]  # an index, then names containing it
    assert list(stats.search("apos")) == [255]
    assert list(stats.search("feat 12")[:3]) == [12, 120, 121]
    assert stats.search("zzz").size == 0 and stats.search("").size == 256
    assert stats.index("Apostrophe") == 255


def test_bad_arguments(gpt2, ids):
    sae = make_sae("topk", 64, 256, k=6, seed=1)
    with sw.Lens(gpt2) as lens:
        with pytest.raises(TypeError, match="needs a superwidgets Lens"):
            LatentStats(gpt2, "transformer.h.0", sae, ids)
        with pytest.raises(ValueError, match="non-empty tensor"):
            LatentStats(lens, "transformer.h.0", sae, ids[:0])
        with pytest.raises(ValueError, match="top_k must be an integer >= 1"):
            LatentStats(lens, "transformer.h.0", sae, ids, top_k=0)
        with pytest.raises(ValueError, match="SAE decoder has shape"):
            LatentStats(lens, "transformer.h.0", make_sae("topk", 32, 64, k=2), ids)


def test_analysis_imports_no_jupyter():
    assert "traitlets" not in vars(latents_mod)
    src = open(latents_mod.__file__, encoding="utf-8").read()
    for name in ("traitlets", "anywidget", "ipywidgets", "widgets"):
        assert f"import {name}" not in src and f"from {name}" not in src and f"..{name}" not in src
    assert "register_forward_hook" not in src  # only the engine installs hooks
    assert sys.modules.get("superwidgets.analysis.latents") is latents_mod


def test_the_whole_dashboard_on_a_gpt2_shaped_model_with_4096_latents(gpt2):
    ids = torch.randint(0, 500, (24, 16), generator=torch.Generator().manual_seed(5))
    toks = [[f" t{int(t)}" for t in row] for row in ids]
    sae = make_sae("topk", 64, 4096, k=8, seed=4)
    with sw.Lens(gpt2) as lens:
        dash = sw.FeatureDashboard(
            lens, "transformer.h.0", sae, ids, tokens=toks, output=lambda o: o.logits[:, -1, :7],
            effect_sample=12, effect_candidates=16, top_k=4,
        )  # fmt: skip
        assert len(dash.feature_names) == 4096 and dash.sort_by == "frequency" and dash.effect is None
        assert dash.progress_done == dash.progress_total == 24
        f = dash.selected
        assert f == int(dash.order[0]) and dash.stats.frequency[f] == dash.frequency.max()
        assert (
            dash.top_positions.shape == (len(dash.top_indices), 16) and dash.top_tokens[0] == toks[dash.top_indices[0]]
        )
        ref = edited_delta(lens, "transformer.h.0", sw.Ablate([f]), sae, ids)
        np.testing.assert_allclose(dash.effects(f), ref, atol=2e-6)
        # the effect sort: 16 candidates (the most frequent) computed, the rest NaN and last
        dash.sort("effect", 2)
        eff = np.asarray(dash.effect)
        computed = np.flatnonzero(~np.isnan(eff[:, 0]) & (dash.frequency > 0))
        assert computed.size == 16 and set(computed) == set(np.argsort(-dash.frequency, kind="stable")[:16])
        key = np.abs(eff[dash.order, 2])
        assert (np.diff(key[:16]) <= 0).all() and key[0] > 0  # largest |Δ| first
        assert np.isnan(key[-100:]).all()  # latents not computed come last
        assert list(dash.search("409")) == [409, 1409, 2409, 3409, *range(4090, 4096)]
        dash.set_effect("steer", steer=2.0, class_index=1)
        assert dash.effect_mode == "steer" and dash.error == ""
    assert hook_count(gpt2) == 0
