"""FeatureDashboard without a browser: list statistics, sorting, effects vs the engine, errors, click-through."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _util import hook_count
from torch import nn

import superwidgets as sw
from superwidgets.science.sae import ReLUSAE


@pytest.fixture(scope="module")
def cancer():
    return sw.zoo.load("breast-cancer-mlp")


@pytest.fixture(scope="module")
def sae(cancer):
    """A ReLU SAE (16 -> 48) fitted for a few hundred Adam steps on the hidden layer."""
    model, data = cancer
    with torch.no_grad():
        h = torch.relu(model.inp(data.X))
    torch.manual_seed(0)
    s = ReLUSAE(16, 48, seed=0)
    opt = torch.optim.Adam(s.parameters(), lr=1e-2)
    for _ in range(300):
        c = s.encode(h)
        loss = ((s.decode(c) - h) ** 2).sum(-1).mean() + 3e-2 * c.abs().sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        s.b_enc[:3] = -1e3  # three latents that never fire: dead
    return s.eval()


@pytest.fixture
def dash(cancer, sae):
    model, data = cancer
    d = sw.FeatureDashboard(model, "hidden", sae, data, effect_sample=1000, top_k=8)
    yield d
    d.lens.close()


def codes_of(model, data, sae):
    with torch.no_grad():
        return sae.encode(torch.relu(model.inp(data.X))).numpy()


def direct_delta(lens, X, op, sae):
    """Change of the softmax over every input under one edit, computed with lens.edit + lens.run."""
    e = lens.edit("hidden", op, basis=sw.SAE(sae))
    try:
        r = lens.run(X)
        return (torch.softmax(r.edited, -1) - torch.softmax(r.baseline, -1)).numpy()
    finally:
        lens.remove(e)


def test_list_statistics_and_selection(dash, cancer, sae):
    model, data = cancer
    codes = codes_of(model, data, sae)
    assert dash.feature_names == [f"latent {i}" for i in range(48)]
    assert dash.class_names == ["malignant", "benign"]
    assert dash.input_kind == "record" and not dash.spatial_site and dash.n_inputs == 569
    np.testing.assert_allclose(dash.frequency, (codes > 0).mean(0), atol=1e-6)
    np.testing.assert_allclose(dash.max_activation, codes.max(0), rtol=1e-5, atol=1e-6)
    assert dash.n_dead == int((codes.max(0) <= 0).sum()) >= 3
    assert (dash.frequency[:3] == 0).all()
    # sorted by frequency, most frequent first; the first one is selected
    assert list(dash.order) == list(np.argsort(-dash.frequency, kind="stable"))
    f = int(dash.order[0])
    assert dash.selected == f and dash.error == ""
    col = codes[:, f]
    assert dash.n_active == int((col > 0).sum()) == int(dash.act_hist.sum())
    top = np.argsort(-col, kind="stable")[:8]
    assert list(dash.top_indices) == list(top)
    np.testing.assert_allclose(dash.top_values, col[top], rtol=1e-5)
    assert dash.top_labels[0] in ("malignant", "benign")
    # records: each top input's most deviant fields, raw values with z-scores against the cohort
    assert dash.top_fields.shape == (8, 5) and dash.field_names == list(data.feature_names)
    raw = np.asarray(data.raw, dtype=np.float64)
    z = (raw - raw.mean(0)) / raw.std(0)
    i, k = int(top[0]), int(dash.top_fields[0, 0])
    assert k == int(np.argmax(np.abs(z[i])))
    assert dash.top_field_values[0, 0] == pytest.approx(raw[i, k], rel=1e-5)
    assert dash.top_field_z[0, 0] == pytest.approx(z[i, k], rel=1e-4)
    assert dash.top_images is None and dash.top_maps is None and dash.gt_corr is None


def test_sorting(dash):
    dash.sort("max_activation")
    assert dash.sort_by == "max_activation"
    assert list(dash.order) == list(np.argsort(-dash.max_activation, kind="stable"))
    dash.sort("effect", 1)
    assert (dash.sort_by, dash.sort_class) == ("effect", 1)
    key = np.abs(dash.effect[:, 1])
    assert list(dash.order) == list(np.argsort(-key, kind="stable"))
    assert key[dash.order[0]] > 0 and (dash.effect[:3] == 0).all()
    dash.sort_by = "index"  # from Python, as a trait
    assert list(dash.order) == list(range(48))
    # from the view: a one-off message
    dash._dispatch(dash, {"type": "sort", "seq": 0, "origin": "", "by": "frequency", "class": 0}, [])
    assert dash.sort_by == "frequency" and list(dash.order) == list(np.argsort(-dash.frequency, kind="stable"))
    order = dash.order.copy()
    with pytest.raises(ValueError, match="sort_by must be one of"):
        dash.sort("bogus")
    assert dash.sort_by == "frequency" and np.array_equal(dash.order, order) and "sort_by" in dash.error


def test_effects_match_the_engine(dash, cancer, sae):
    _, data = cancer
    lens = dash.lens
    f = int(dash.order[0])
    # the list's effect column: computed on demand (the first sort by effect), then kept;
    # the mean change per class when ablated, over every input (569 <= 1000)
    assert dash.effect is None and dash.effect_inputs == 569 and dash.effect_candidates == 48
    dash.sort("effect", 0)
    assert dash.progress_what == "effects" and dash.progress_done == dash.progress_total == 48 - dash.n_dead
    dash.sort("frequency")
    f = int(dash.order[0])
    ref = direct_delta(lens, data.X, sw.Ablate([f]), sae)
    np.testing.assert_allclose(dash.effect[f], ref.mean(0), atol=2e-6)
    np.testing.assert_allclose(dash.effects(f), ref, atol=2e-6)
    np.testing.assert_allclose(dash.effect_mean, ref.mean(0), atol=2e-6)
    base = torch.softmax(lens.run(data.X).baseline, -1).numpy()
    assert dash.effect_flips == int((base.argmax(1) != (base + ref).argmax(1)).sum())
    assert int(dash.effect_hist.sum()) == 569
    # another latent from the sorted list
    g = int(dash.order[5])
    np.testing.assert_allclose(dash.effect[g], direct_delta(lens, data.X, sw.Ablate([g]), sae).mean(0), atol=2e-6)
    # steering: the latent's decoder row times the strength
    dash.set_effect("steer", steer=4.0)
    ref = direct_delta(lens, data.X, sw.Steer(feature=f, alpha=4.0), sae)
    np.testing.assert_allclose(dash.effect_mean, ref.mean(0), atol=2e-6)
    assert dash.effect_flips == int((base.argmax(1) != (base + ref).argmax(1)).sum()) > 0
    np.testing.assert_allclose(
        dash.effect_edges[[0, -1]], [-np.abs(ref[:, 0]).max(), np.abs(ref[:, 0]).max()], rtol=1e-3
    )
    # the dashboard adds no edit of its own to the lens
    assert lens.edits == []


def test_requests_from_the_view(dash):
    f = int(dash.order[3])
    rev = dash.rev
    msgs = []
    dash.send_state = lambda *a, **k: msgs.append(a)
    dash._dispatch(dash, {"type": "request", "seq": 7, "origin": "view-a", "feature": f, "mode": "steer",
                          "steer": -2.5, "effect_class": 1}, [])  # fmt: skip
    del dash.send_state
    assert (dash.seq, dash.origin, dash.selected, dash.effect_mode, dash.steer, dash.effect_class) == (
        7, "view-a", f, "steer", -2.5, 1,
    )  # fmt: skip
    assert dash.rev == rev + 1
    assert len(msgs) == 1  # one hold_sync update
    # a float index from JS is fine; an out-of-range one lands in the error area with the state kept
    dash._dispatch(dash, {"type": "request", "seq": 8, "origin": "view-a", "feature": 9999}, [])
    assert "out of range" in dash.error and dash.seq == 8
    assert dash.selected == f and dash.effect_mode == "steer"


def test_errors_keep_state(dash, cancer):
    _, data = cancer
    state = (dash.selected, dash.top_indices.copy(), dash.effect_mean.copy())
    with pytest.raises(ValueError, match="out of range; this basis has 48 features"):
        dash.select(48)
    assert "out of range" in dash.error
    with pytest.raises(ValueError, match="out of range"):
        dash.selected = -1
    assert dash.selected == state[0]
    with pytest.raises(ValueError, match="effect mode"):
        dash.set_effect("melt")
    with pytest.raises(ValueError, match="steer must be finite"):
        dash.set_effect("steer", steer=float("nan"))
    with pytest.raises(ValueError, match="effect_class"):
        dash.set_effect(class_index=5)
    # an SAE of the wrong width: the engine's message
    with pytest.raises(ValueError, match=r"SAE decoder has shape .* but the site has 16 features"):
        dash.set_sae(ReLUSAE(30, 64))
    assert "SAE decoder has shape" in dash.error
    assert dash.selected == state[0] and np.array_equal(dash.top_indices, state[1])
    assert np.array_equal(dash.effect_mean, state[2]) and len(dash.feature_names) == 48
    dash.select(int(dash.order[1]))
    assert dash.error == ""
    with pytest.raises(ValueError, match="SAE decoder has shape"):
        sw.FeatureDashboard(dash.lens, "hidden", ReLUSAE(30, 64), data)
    with pytest.raises(TypeError, match="encode"):
        sw.FeatureDashboard(dash.lens, "hidden", nn.Linear(16, 16), data)
    with pytest.raises(sw.SiteError):
        sw.FeatureDashboard(dash.lens, "hiddden", ReLUSAE(16, 8), data)


def test_any_sae_like_module_and_tensor_inputs(cancer):
    model, data = cancer

    class TopK(nn.Module):  # not one of superwidgets' SAEs: W_dec stored (d, n_latents), transposed
        def __init__(self) -> None:
            super().__init__()
            g = torch.Generator().manual_seed(1)
            self.W_dec = nn.Parameter(torch.randn(16, 24, generator=g))
            self.W_enc = nn.Parameter(torch.randn(16, 24, generator=g))

        def encode(self, x):
            z = x @ self.W_enc
            top = z.topk(4, dim=-1)
            return torch.zeros_like(z).scatter(-1, top.indices, torch.relu(top.values))

        def decode(self, c):
            return c @ self.W_dec.T

    lens = sw.Lens(model)
    try:
        d = sw.FeatureDashboard(lens, "hidden", TopK(), data.X[:200], class_names=["m", "b"], effect_sample=50)
        assert len(d.feature_names) == 24 and d.effect_inputs == 50 and d.class_names == ["m", "b"]
        assert d.field_names == [f"x{i}" for i in range(30)]
        f = int(d.order[0])
        ref = direct_delta(lens, data.X[:200], sw.Ablate([f]), d.sae)
        np.testing.assert_allclose(d.effects(f), ref, atol=2e-6)
    finally:
        lens.close()
    assert hook_count(model) == 0


@pytest.fixture(scope="module")
def neurons():
    model, _ = sw.zoo.load("neuron-cnn-narrow")
    world = sw.data.neurons(n=240, seed=5, image_size=32)
    return model, world


def test_images_maps_and_ground_truth(neurons):
    model, world = neurons
    sae = ReLUSAE(64, 96, seed=3)
    with torch.no_grad():
        sae.b_enc.fill_(-0.2)
    lens = sw.Lens(model)
    try:
        d = sw.FeatureDashboard(lens, "conv.block3", sae, world, top_k=6, effect_sample=64)
        assert d.input_kind == "image" and d.spatial_site
        assert d.class_names == list(world.records.class_names)
        X = torch.as_tensor(world.images)
        with torch.no_grad():
            h = lens.activations(X, "conv.block3")["conv.block3"]
            codes = sae.encode(h.movedim(1, -1))  # (n, 4, 4, 96): the SAE at every position
        assert d.codes([0, 1]).shape == (2, 4, 4, 96)
        np.testing.assert_allclose(d.codes([7])[0], codes[7].numpy(), atol=1e-5)
        pooled = codes.amax(dim=(1, 2)).numpy()
        np.testing.assert_allclose(d.frequency, (pooled > 0).mean(0), atol=1e-6)
        f = int(d.order[0])
        top = np.argsort(-pooled[:, f], kind="stable")[:6]
        assert list(d.top_indices) == list(top)
        assert d.top_images.shape == (6, 3, 32, 32) and 0 <= d.top_images.min() and d.top_images.max() <= 1
        np.testing.assert_allclose(d.top_maps, codes[top][..., f].numpy(), atol=1e-5)
        assert d.factor_names == list(world.factor_names) and d.gt_corr.shape == (20,)
        ref = np.corrcoef(pooled[:, f], world.factors[:, 4])[0, 1]
        assert d.gt_corr[4] == pytest.approx(ref, abs=1e-4)
        # effects at a conv site match the engine (the SAE edit applies at every position)
        ref = direct_delta_site(lens, X, sw.Ablate([f]), sae, "conv.block3")
        np.testing.assert_allclose(d.effects(f), ref, atol=2e-5)
        ref = direct_delta_site(lens, X, sw.Steer(feature=f, alpha=1.5), sae, "conv.block3")
        np.testing.assert_allclose(d.effects(f, "steer", 1.5), ref, atol=2e-5)
        fig = d.to_figure()
        assert len(fig.axes) == 5
    finally:
        lens.close()
    assert hook_count(model) == 0


def direct_delta_site(lens, X, op, sae, site):
    e = lens.edit(site, op, basis=sw.SAE(sae))
    try:
        r = lens.run(X)
        return (torch.softmax(r.edited, -1) - torch.softmax(r.baseline, -1)).numpy()
    finally:
        lens.remove(e)


class _Untraceable(torch.nn.Module):
    """A zoo CNN behind data-dependent control flow, which torch.fx cannot trace."""

    def __init__(self, model):
        super().__init__()
        self.m = model

    def forward(self, x):
        if bool((x < 0).any()):
            raise ValueError("images must be >= 0")
        return self.m(x)


def test_fx_trace_declared_split_and_sweep_give_the_same_effects(neurons):
    model, world = neurons
    sae = ReLUSAE(64, 32, seed=4)
    lens = sw.Lens(model)
    try:
        traced = sw.FeatureDashboard(lens, "conv.block3", sae, world, effect_sample=40, sort_by="effect")
        f = int(traced.order[0])
        traced_steer = traced.effects(f, "steer", 2.0)
    finally:
        lens.close()
    wrapped = _Untraceable(model)
    lens = sw.Lens(wrapped)
    try:
        slow = sw.FeatureDashboard(lens, "m.conv.block3", sae, world, effect_sample=40, sort_by="effect")
        m = wrapped.m
        lens.declare_split("m.conv.block3", lambda h: m.disease_head(m.bottleneck(m.fc(m.flatten(h)))))
        fast = sw.FeatureDashboard(lens, "m.conv.block3", sae, world, effect_sample=40, sort_by="effect")
        # the dashboard holds no resume machinery of its own: the engine's sweeps give the same effects
        assert not hasattr(fast, "_tail_program") and not hasattr(fast, "_run_edits")
        np.testing.assert_allclose(fast.effect, slow.effect, atol=1e-5)
        np.testing.assert_allclose(traced.effect, slow.effect, atol=1e-5)
        np.testing.assert_allclose(fast.effects(f, "steer", 2.0), slow.effects(f, "steer", 2.0), atol=1e-5)
        np.testing.assert_allclose(traced_steer, slow.effects(f, "steer", 2.0), atol=1e-5)
    finally:
        lens.close()


def test_click_through_to_feature_lab(dash, cancer):
    _, data = cancer
    f = int(dash.order[2])
    dash.select(f)
    assert dash.lab is None and not dash.lab_linked
    lab = dash.open_in_lab()  # none linked: builds one with the SAE basis
    assert isinstance(lab, sw.FeatureLab) and dash.lab is lab and dash.lab_linked
    assert lab.selected == f and lab.feature_names == dash.feature_names
    assert lab.index == int(dash.top_indices[0])  # opens on the input where the latent is largest
    assert "new FeatureLab" in dash.notice
    # an explicitly linked lab on the same lens, site and SAE
    lab2 = sw.FeatureLab(dash.lens, data, "hidden", basis=dash.basis)
    dash.link(lab2)
    g = int(dash.order[4])
    dash.select(g)
    assert dash.open_in_lab() is lab2 and lab2.selected == g
    # the button in the view
    h = int(dash.order[6])
    dash._dispatch(dash, {"type": "open_lab", "seq": 0, "origin": "", "feature": h}, [])
    assert lab2.selected == h and dash.selected == h and "linked FeatureLab" in dash.notice
    # a lab on another basis cannot be linked
    other = sw.FeatureLab(dash.lens, data, "hidden")
    with pytest.raises(ValueError, match=r"basis=dash\.basis"):
        dash.link(other)
    assert dash.lab is lab2 and "basis" in dash.error
    dash.lens.clear()


def test_constructor_arguments(cancer, sae):
    model, data = cancer
    with pytest.raises(TypeError, match="torch model or a superwidgets Lens"):
        sw.FeatureDashboard("model", "hidden", sae, data)
    with pytest.raises(TypeError):
        sw.FeatureDashboard(model, "hidden", sae, data, colour="red")  # type: ignore[call-arg]
    lens = sw.Lens(model)
    try:
        d = sw.FeatureDashboard(model, "hidden", sw.SAE(sae), data, feature=10, sort_by="index", effect_sample=0)
        assert d.lens is lens  # the open lens on the model is reused
        assert d.selected == 10 and list(d.order) == list(range(48)) and d.effect is None
        with pytest.raises(ValueError, match="effect column is switched off"):
            d.sort("effect")
        fig = d.to_figure()
        assert len(fig.axes) == 5
    finally:
        lens.close()


def test_sorting_by_attribution_to_one_inputs_prediction(dash, cancer, sae):
    from superwidgets.analysis.rank import rank_features

    _, data = cancer
    dash.sort_input = 38
    dash.sort("attribution", 0)
    assert (dash.sort_by, dash.sort_class, dash.sort_input) == ("attribution", 0, 38)
    want = rank_features(dash.lens, data.X[38:39], "hidden", basis=sw.SAE(sae), by="attribution", target=0)
    np.testing.assert_array_equal(dash.order, want.order)
    # the first latents are the ones whose exact ablation moves class 0 of input 38 most
    first = int(dash.order[0])
    biggest = np.nanmax(np.abs(want.effects))
    assert np.isfinite(want.effects[first]) and abs(want.effects[first]) == pytest.approx(biggest)
    assert abs(want.effects[first]) > 0 and not np.array_equal(dash.order, np.argsort(-dash.frequency, kind="stable"))
    dash.sort_input = 5  # another input: sorted again for it
    again = rank_features(dash.lens, data.X[5:6], "hidden", basis=sw.SAE(sae), by="attribution", target=0)
    np.testing.assert_array_equal(dash.order, again.order)
    with pytest.raises(ValueError, match="out of range"):
        dash.sort_input = 10**6
    assert dash.sort_input == 5 and "out of range" in dash.error
    lab = dash.open_in_lab(first)  # linked: the lab's shown input is the one attributed
    lab.index = 12
    dash.sort("attribution", 1)
    assert dash.sort_input == 12 and dash.error == ""
