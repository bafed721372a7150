"""FeatureLab state without a browser: traits drive the engine, errors land in the error area."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import traitlets
from _util import hook_count

import superwidgets as sw
from superwidgets.widgets.base import array_from_json, array_to_json


@pytest.fixture(scope="module")
def zoo():
    return sw.zoo.load("breast-cancer-mlp")


@pytest.fixture
def lab(zoo):
    model, data = zoo
    lens = sw.Lens(model)
    w = sw.FeatureLab(lens, inputs=data, site="hidden", index=38)
    yield w
    lens.close()


def expected(model, x, ablated=(), steer=None):
    """The edited probabilities computed by hand (functional ops: no module hooks involved)."""
    with torch.no_grad():
        h = torch.relu(F.linear(x, model.inp.weight, model.inp.bias))
        h[:, list(ablated)] = 0
        if steer is not None:
            h = h + torch.as_tensor(steer)
        return torch.softmax(F.linear(h, model.out.weight, model.out.bias), -1)[0].numpy()


def request(w, seq, **content):
    steer = content.pop("steer", None)
    buffers = [np.asarray(steer, dtype=np.float32).tobytes()] if steer is not None else []
    w._dispatch(w, {"type": "request", "seq": seq, "origin": "view-a", **content}, buffers)


def test_initial_state(lab, zoo):
    model, data = zoo
    assert lab.site == "hidden"
    assert lab.feature_names == [f"unit {i}" for i in range(16)]
    assert lab.class_names == ["malignant", "benign"]
    assert lab.n_inputs == 569
    assert lab.input_label == "input 38 · true: malignant"
    np.testing.assert_allclose(lab.baseline, expected(model, data.X[38:39]), atol=1e-6)
    np.testing.assert_array_equal(lab.edited, lab.baseline)
    assert lab.activations.shape == (16,)
    assert lab.error == ""


def test_setting_traits_runs_the_engine(lab, zoo):
    model, data = zoo
    lab.ablated = [13]
    np.testing.assert_allclose(lab.edited, expected(model, data.X[38:39], ablated=[13]), atol=1e-6)
    assert lab.edited[0] < lab.baseline[0] - 0.1
    steer = np.zeros(16, np.float32)
    steer[3] = 2.0
    lab.steer = steer
    np.testing.assert_allclose(lab.edited, expected(model, data.X[38:39], ablated=[13], steer=steer), atol=1e-6)
    lab.index = 0
    np.testing.assert_allclose(lab.baseline, expected(model, data.X[0:1]), atol=1e-6)
    np.testing.assert_allclose(lab.edited, expected(model, data.X[0:1], ablated=[13], steer=steer), atol=1e-6)


def test_requests_from_the_view(lab, zoo):
    model, data = zoo
    steer = np.zeros(16, np.float32)
    steer[5] = -1.0
    rev = lab.rev
    request(lab, 7, index=12, ablated=[1, 2], steer=steer)
    assert (lab.seq, lab.origin, lab.index, lab.ablated) == (7, "view-a", 12, [1, 2])
    assert lab.rev == rev + 1
    np.testing.assert_allclose(lab.edited, expected(model, data.X[12:13], ablated=[1, 2], steer=steer), atol=1e-6)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"index": 100000}, "index 100000 is out of range; pick 0..568"),
        ({"index": "3"}, "index must be an integer"),
        ({"ablated": [99]}, "ablated features [99] are out of range"),
        ({"steer": [1.0, 2.0, 3.0]}, "steer must have one value per feature (16), got 3"),
        ({"steer": [float("nan")] * 16}, "steer contains NaN or Inf"),
    ],
)
def test_bad_requests_show_error_and_keep_state(lab, content, message):
    lab.ablated = [13]
    good = (lab.index, list(lab.ablated), lab.steer.copy(), lab.edited.copy())
    request(lab, 9, **content)
    assert message in lab.error
    assert lab.seq == 9  # the view learns its request was answered
    assert (lab.index, list(lab.ablated)) == good[:2]
    np.testing.assert_array_equal(lab.steer, good[2])
    np.testing.assert_array_equal(lab.edited, good[3])
    request(lab, 10, ablated=[])  # the widget keeps working and clears the error
    assert lab.error == ""
    np.testing.assert_array_equal(lab.edited, lab.baseline)


def test_bad_python_value_raises_reverts_and_shows(lab):
    with pytest.raises(ValueError, match="out of range"):
        lab.index = 5000
    assert lab.index == 38
    assert "out of range" in lab.error
    with pytest.raises(ValueError, match="one value per feature"):
        lab.steer = np.zeros(3)
    assert lab.steer.shape == (16,)
    lab.ablated = [1]
    assert lab.error == ""


def test_bad_direction_in_direction_basis(zoo):
    model, data = zoo
    lens = sw.Lens(model)
    torch.manual_seed(0)
    lab = sw.FeatureLab(lens, inputs=data, site="hidden", basis=sw.Directions(torch.randn(3, 16), ["a", "b", "c"]))
    before = lab.edited.copy()
    with pytest.raises(ValueError, match="has length 5 but site 'hidden' has 16"):
        lab.add_direction("bad", torch.ones(5))
    assert "has length 5" in lab.error
    assert lab.feature_names == ["a", "b", "c"]
    np.testing.assert_array_equal(lab.edited, before)
    lab.add_direction("d", torch.ones(16))
    assert lab.feature_names == ["a", "b", "c", "d"] and lab.error == ""
    steer = np.array([0, 0, 0, 1.5], np.float32)
    lab.steer = steer
    np.testing.assert_allclose(lab.edited, expected(model, data.X[0:1], steer=1.5 * torch.ones(16)), atol=1e-6)
    lens.close()


def test_python_edits_on_the_lens_apply(lab, zoo):
    model, data = zoo
    e = lab.lens.edit("hidden", sw.Ablate([13]))
    lab.refresh()
    np.testing.assert_allclose(lab.edited, expected(model, data.X[38:39], ablated=[13]), atol=1e-6)
    lab.lens.remove(e)


def test_rebuilding_widget_replaces_not_stacks(zoo):
    model, data = zoo
    lens = sw.Lens(model)
    for _ in range(4):
        w = sw.FeatureLab(lens, inputs=data, site="hidden")
    w.wait()  # a cohort chunk in flight holds temporary preemption hooks
    assert len(lens.edits) == 2
    assert hook_count(model) == 1
    lens2 = sw.Lens(model)  # re-running the whole cell: a new lens replaces the old one's hooks
    sw.FeatureLab(lens2, inputs=data, site="hidden").wait()
    assert hook_count(model) == 1
    lens2.close()
    assert hook_count(model) == 0
    assert w.error == ""


def test_replaced_widget_says_so(zoo):
    model, data = zoo
    lens = sw.Lens(model)
    old = sw.FeatureLab(lens, inputs=data, site="hidden")
    sw.FeatureLab(lens, inputs=data, site="hidden")
    assert "replaced" in old.error
    request(old, 1, ablated=[1])
    assert "replaced" in old.error
    lens.close()


def test_arrays_travel_as_binary(lab):
    state = lab.get_state()
    for key in ("baseline", "edited", "activations", "steer"):
        wire = state[key]
        assert isinstance(wire["view"], memoryview)
        assert wire["dtype"] == "float32"
        back = array_from_json(wire)
        np.testing.assert_array_equal(back, getattr(lab, key))
    assert array_to_json(np.arange(3))["dtype"] == "int32"


def test_to_figure(lab):
    import matplotlib

    matplotlib.use("Agg")
    lab.ablated = [13]
    fig = lab.to_figure()
    ax1, ax2 = fig.axes
    assert [t.get_text() for t in ax1.get_yticklabels()] == ["malignant", "benign"]
    assert len(ax2.patches) == 16
    assert ax2.patches[13].get_facecolor()[:3] == pytest.approx(matplotlib.colors.to_rgb("#e53935"))


def test_bad_constructor_arguments(zoo):
    model, data = zoo
    lens = sw.Lens(model)
    with pytest.raises(ValueError, match="unknown site 'hiden'; did you mean 'hidden'"):
        sw.FeatureLab(lens, inputs=data, site="hiden")
    with pytest.raises(TypeError, match="needs a superwidgets Lens"):
        sw.FeatureLab(model, inputs=data, site="hidden")
    with pytest.raises(ValueError, match="readout must be one of"):
        sw.FeatureLab(lens, inputs=data, site="hidden", readout="probit")
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        sw.FeatureLab(lens, inputs=data, site="hidden", colour="red")
    lens.close()


def test_cohort_summaries(lab, zoo):
    model, data = zoo
    lab.ablated = [13]
    assert lab.wait(timeout=60)
    assert (lab.cohort_done, lab.cohort_total) == (569, 569)
    with torch.no_grad():
        h = torch.relu(F.linear(data.X, model.inp.weight, model.inp.bias))
        base = torch.softmax(F.linear(h, model.out.weight, model.out.bias), 1).numpy()
        h[:, 13] = 0
        edit = torch.softmax(F.linear(h, model.out.weight, model.out.bias), 1).numpy()
    delta = edit[:, 0] - base[:, 0]
    assert lab.cohort_hist.sum() == 569 and lab.cohort_hist.dtype == np.int32
    assert lab.cohort_edges.shape == (32,) and lab.cohort_edges[0] == -lab.cohort_edges[-1]
    assert lab.cohort_flips == int((base.argmax(1) != edit.argmax(1)).sum()) > 0
    np.testing.assert_array_equal(lab.cohort_top, np.argsort(-np.abs(delta), kind="stable")[:10])
    np.testing.assert_allclose(lab.cohort_top_delta, delta[lab.cohort_top], atol=1e-5)
    assert 38 in lab.cohort_top.tolist()  # the shown patient is among the most affected
    lab.ablated = []
    lab.wait()
    assert lab.cohort_flips == 0 and lab.cohort_hist.max() == 569


def test_cohort_class_checked(zoo):
    model, data = zoo
    lens = sw.Lens(model)
    with pytest.raises(ValueError, match="cohort_class 5 is out of range; the model has 2 outputs"):
        sw.FeatureLab(lens, inputs=data, site="hidden", cohort_class=5)
    w = sw.FeatureLab(lens, inputs=data, site="hidden", cohort_top=0)
    assert w.wait(timeout=0) and w.cohort_hist is None and (w.cohort_done, w.cohort_total) == (0, 0)
    lens.close()


@pytest.fixture(scope="module")
def world():
    return sw.data.neurons(n=120, seed=0, image_size=32)


def test_images_spatial_maps_and_ground_truth(world):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(4, 6, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(24, 2),
    ).eval()
    lens = sw.Lens(model)
    lab = sw.FeatureLab(lens, inputs=world, site="1", gallery=8)
    assert lab.image.shape == (4, 32, 32) and lab.channel_names == ["neurites", "nuclei", "puncta", "ais"]
    assert lab.gallery.shape == (8, 3, 24, 24) and lab.gallery_indices.tolist() == list(range(8))
    assert lab.class_names == ["control", "PD"] and "true:" in lab.input_label
    assert lab.factor_names == world.factor_names and lab.spatial is None
    lab.select(2)
    with torch.no_grad():
        act = model[1](model[0](torch.from_numpy(world.images[:1])))[0, 2].numpy()
        pooled = model[1](model[0](torch.from_numpy(world.images))).mean(dim=(2, 3))[:, 2].numpy()
    np.testing.assert_allclose(lab.spatial, act, atol=1e-5)  # the channel's map for the shown cell
    want = np.corrcoef(pooled, world.factors[:, 0])[0, 1]
    assert lab.gt_corr.shape == (20,) and lab.gt_corr[0] == pytest.approx(want, abs=1e-4)
    import matplotlib

    matplotlib.use("Agg")
    fig = lab.to_figure()  # image panel: the composite and the selected channel's map as contours
    ax0 = fig.axes[0]
    assert len(fig.axes) == 3 and ax0.images[0].get_array().shape == (32, 32, 3)
    assert ax0.collections, "the selected feature's map is drawn as contours"
    assert "feature 2" in ax0.get_title() or lab.feature_names[2] in ax0.get_title()
    lab.ablated = [2]
    assert not lab.spatial.any()  # the map shows the edited activation: an ablated channel is zero
    assert not lab.to_figure().axes[0].collections  # a flat map has no contours
    with pytest.raises(ValueError, match=r"feature must be an index in 0\.\.5"):
        lab.select(9)
    assert lab.selected == 2
    lens.close()


def test_ground_truth_shape_checked(zoo):
    model, data = zoo
    with pytest.raises(ValueError, match=r"ground-truth factors must have shape \(569, K\)"):
        sw.FeatureLab(sw.Lens(model), inputs=data, site="hidden", ground_truth=(np.zeros((5, 2)), ["a", "b"]))


def test_record_form_edits_raw_values(lab, zoo):
    model, data = zoo
    names = lab.record_names
    assert names == data.feature_names and lab.record.shape == (30,)
    np.testing.assert_allclose(lab.record, data.raw[38], rtol=1e-6)
    base0 = lab.baseline.copy()
    lab._dispatch(lab, {"type": "record", "seq": 3, "origin": "v", "values": {"worst area": 300.0}}, [])
    assert lab.error == "" and lab.record_edited
    raw = data.raw[38].copy()
    raw[names.index("worst area")] = 300.0
    x = torch.from_numpy(((raw - data.mean) / data.std).astype(np.float32))[None]
    np.testing.assert_allclose(lab.baseline, expected(model, x), atol=1e-5)  # baseline and edited both re-run
    assert not np.allclose(lab.baseline, base0)
    for bad, msg in [
        ({"worst aera": 1}, "did you mean 'worst area'"),
        ({"worst area": "big"}, "must be a number"),
        ({"worst area": float("inf")}, "must be finite"),
    ]:
        before = lab.baseline.copy()
        lab._dispatch(lab, {"type": "record", "seq": 4, "origin": "v", "values": bad}, [])
        assert msg in lab.error
        np.testing.assert_array_equal(lab.baseline, before)
    with pytest.raises(ValueError, match="missing 29 fields"):
        lab.set_record({"worst area": 1.0})
    lab._dispatch(lab, {"type": "record", "seq": 5, "origin": "v", "reset": True}, [])
    assert not lab.record_edited and lab.error == ""
    np.testing.assert_allclose(lab.baseline, base0)


def test_categorical_record_fields_take_level_names():
    model, world = sw.zoo.load("neuron-record-mlp-narrow")
    records = world.records
    lab = sw.FeatureLab(sw.Lens(model), inputs=records, site="bottleneck", index=3)
    try:
        assert lab.record_levels.keys() == set(records.categorical)
        col = records.feature_names.index("genotype")
        levels = lab.record_levels["genotype"]
        assert levels == records.categories["genotype"]
        lab.set_record({"genotype": levels[2]}, partial=True)
        assert lab.error == "" and lab.record[col] == 2
        x = lab._x(3)
        expected_x = (2 - records.mean[col]) / records.std[col]
        assert float(x[0, col]) == pytest.approx(expected_x, rel=1e-6)
        lab._dispatch(lab, {"type": "record", "seq": 2, "origin": "v", "values": {"genotype": 1}}, [])
        assert lab.error == "" and lab.record[col] == 1
        before = lab.baseline.copy()
        for bad in ("LRRK3", 7, 1.5):
            lab._dispatch(lab, {"type": "record", "seq": 3, "origin": "v", "values": {"genotype": bad}}, [])
            assert "categorical: pass one of" in lab.error and str(levels[0]) in lab.error
            assert lab.record[col] == 1
            np.testing.assert_array_equal(lab.baseline, before)
    finally:
        lab.lens.close()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, 0.0, "wide"])
def test_steer_max_must_be_positive_and_finite(zoo, bad):
    model, data = zoo
    with sw.Lens(model) as lens:
        with pytest.raises(ValueError, match="steer_max must be a positive"):
            sw.FeatureLab(lens, inputs=data, site="hidden", steer_max=bad)
        assert lens.edits == []  # nothing was attached before the refusal
        lab = sw.FeatureLab(lens, inputs=data, site="hidden", steer_max=2.0)
        with pytest.raises(traitlets.TraitError, match="steer_max"):
            lab.steer_max = bad
        assert lab.steer_max == 2.0


def test_refresh_shows_a_weight_change_made_through_data(zoo):
    model, data = zoo
    model = copy.deepcopy(model)
    with sw.Lens(model) as lens:
        lab = sw.FeatureLab(lens, inputs=data, site="hidden", index=38)
        before = np.array(lab.baseline)
        model.out.weight.data.mul_(-1.0)  # .data writes do not bump a version counter
        lab.refresh()
        np.testing.assert_allclose(lab.baseline, expected(model, data.X[38:39]), atol=1e-6)
        assert not np.allclose(lab.baseline, before)


def test_sae_trained_at_another_width_is_refused_even_when_its_latent_count_matches(zoo):
    from superwidgets.science.sae import make_sae

    model, data = zoo
    sae = make_sae("relu", 8, 16, seed=0)  # 16 latents, like the 16 units of "hidden"; d = 8 does not fit
    with sw.Lens(model) as lens:
        with pytest.raises(ValueError, match=r"site has 16 features \(the SAE was trained on activations of width 8\)"):
            sw.FeatureLab(lens, inputs=data, site="hidden", basis=sw.SAE(sae))
        with pytest.raises(ValueError, match=r"site has 16 features \(the SAE was trained on activations of width 8\)"):
            sw.FeatureDashboard(lens, "hidden", sae, data)
        assert lens.edits == []


def test_order_by_attribution_follows_the_shown_input_not_its_edits(lab, zoo):
    model, data = zoo
    from superwidgets.analysis.rank import rank_features

    assert lab.order_by == "index" and lab.feature_order is None
    lab.ablated = [3]  # edits on: the attribution ranks the clean model all the same
    lab.order_features("attribution")
    x = data.X[38:39]
    want = rank_features(lab.lens, x, "hidden", by="attribution")
    assert lab.order_by == "attribution" and lab.order_target == want.target == int(np.argmax(lab.baseline))
    np.testing.assert_array_equal(lab.feature_order, want.order)
    assert sorted(lab.feature_order.tolist()) == list(range(16))
    # the exact ablation effects of the top 16 (all of them here) order the list: check the first by hand
    first = int(lab.feature_order[0])
    effect = expected(model, x, ablated=[first])[want.target] - expected(model, x)[want.target]
    assert abs(effect) == pytest.approx(np.nanmax(np.abs(want.effects)), abs=1e-5)
    before = lab.feature_order.copy()
    lab.steer = np.eye(16, dtype=np.float32)[first]  # an edit does not re-rank
    np.testing.assert_array_equal(lab.feature_order, before)
    lab.index = 5  # another input: re-ranked for it
    again = rank_features(lab.lens, data.X[5:6], "hidden", by="attribution")
    np.testing.assert_array_equal(lab.feature_order, again.order)
    # the view's menu sends the same message; a bad order shows in the error area and changes nothing
    lab._dispatch(lab, {"type": "order", "seq": 0, "origin": "", "by": "sideways"}, [])
    assert "order must be" in lab.error and lab.order_by == "attribution"
    lab._dispatch(lab, {"type": "order", "seq": 0, "origin": "", "by": "activation"}, [])
    assert lab.error == "" and lab.order_by == "activation" and lab.feature_order is None
    with pytest.raises(ValueError, match="order must be"):
        lab.order_features("sideways")
    lab.order_by = "attribution"  # setting the trait from Python computes the order too
    assert lab.feature_order is not None and lab.order_target >= 0
