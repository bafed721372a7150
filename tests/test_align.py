"""GW alignment (superwidgets.science.align): recovery, label transfer, scores, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from superwidgets.science.align import (
    Alignment,
    distances,
    foscttm,
    gw_align,
    label_confusion,
    label_transfer_accuracy,
    recall_at_k,
    transfer_labels,
)


def cloud(n: int, seed: int = 0) -> np.ndarray:
    """An anisotropic, skewed 5-D cloud: distinct scales on every axis and a parabola, so no symmetry."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5)) * np.array([3.0, 2.0, 1.5, 1.0, 0.5])
    X[:, 0] += 0.5 * X[:, 1] ** 2
    return X


def rotation(d: int, seed: int = 1) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def test_rotated_copy_recovers_the_identity_coupling():
    X = cloud(150)
    Y = X @ rotation(5) + 3.0  # rotated and shifted: same internal geometry
    al = gw_align(X, Y, true_match=np.arange(150))
    assert isinstance(al, Alignment) and al.shape == (150, 150)
    assert al.converged and al.marginal_error < 1e-3
    np.testing.assert_allclose(al.coupling.sum(), 1.0, atol=1e-6)
    assert al.scores["foscttm"] < 1e-3
    assert al.scores["recall@1"] >= 0.97
    assert (al.match() == np.arange(150)).mean() >= 0.97
    assert foscttm(al.coupling) == pytest.approx(al.scores["foscttm"])


def test_random_starts_are_couplings_and_reach_the_identity_on_an_easy_cloud():
    from superwidgets.science.align import _random_coupling

    T = _random_coupling(40, 60, seed=3)
    np.testing.assert_allclose(T.sum(1), 1 / 40, atol=1e-9)
    np.testing.assert_allclose(T.sum(0), 1 / 60, atol=1e-9)
    assert T.max() > 20 * T.mean()  # peaked, so different seeds start in different basins
    assert not np.allclose(T, _random_coupling(40, 60, seed=4))
    X = cloud(100, seed=5)
    runs = [gw_align(X, X @ rotation(5, 9), true_match=np.arange(100), start=s) for s in (None, 1, 2, 3)]
    assert runs[0].scores["foscttm"] < 0.01  # the default start finds the identity
    # GW is non-convex: a random start may end in another optimum, never a cheaper one than the identity
    assert all(r.gw_cost >= runs[0].gw_cost - 1e-9 for r in runs[1:])
    assert all(np.isfinite(r.scores["foscttm"]) for r in runs)


def test_different_dimensions_and_tensors():
    X = cloud(120, seed=3)
    Y = np.concatenate([X @ rotation(5, 7), np.zeros((120, 3))], axis=1)  # embedded in 8-D
    al = gw_align(torch.from_numpy(X).float(), Y)
    assert foscttm(al.coupling) < 0.01


def test_label_transfer_on_two_noisy_copies():
    rng = np.random.default_rng(2)
    centres = rng.standard_normal((3, 6)) * 4
    labels = np.repeat([0, 1, 2], [60, 40, 20])  # unequal sizes: the geometry tells the clusters apart
    base = centres[labels] + rng.standard_normal((120, 6))
    A = base + 0.3 * rng.standard_normal(base.shape)
    B = (base + 0.3 * rng.standard_normal(base.shape)) @ rotation(6, 4)
    perm = rng.permutation(120)  # B in another order: no pairing by position
    al = gw_align(A, B[perm], labels_a=labels, labels_b=labels[perm], epsilon=1e-2)
    assert al.scores["label_transfer_argmax"] >= 0.95
    assert al.scores["label_transfer_barycentric"] >= 0.95
    classes, counts = label_confusion(al.coupling, labels, labels[perm])
    assert classes.tolist() == [0, 1, 2] and counts.sum() == 120
    assert np.trace(counts) / 120 == pytest.approx(al.scores["label_transfer_argmax"])
    names = np.array(["ctrl", "pd", "x"])[labels[perm]]
    assert set(al.transfer_labels("barycentric").tolist()) <= {0, 1, 2}
    assert transfer_labels(al.coupling, names).dtype.kind == "U"


def test_subsampling_keeps_pairs_and_remaps_true_match():
    X = cloud(300, seed=5)
    Y = X @ rotation(5, 2)
    al = gw_align(X, Y, max_points=100, true_match=np.arange(300), seed=1)
    assert al.shape == (100, 100)
    assert np.array_equal(al.index_a, al.index_b) and np.all(np.diff(al.index_a) > 0)
    assert al.scores["foscttm"] < 0.01
    # a permuted B is subsampled independently; unmatched rows are skipped by the scores
    perm = np.random.default_rng(0).permutation(300)
    inv = np.argsort(perm)
    al2 = gw_align(X, Y[perm], max_points=150, true_match=inv, labels_a=np.arange(300) % 2, labels_b=perm % 2)
    assert al2.shape == (150, 150) and "foscttm" in al2.scores and "label_transfer_argmax" in al2.scores
    assert np.array_equal(al2.labels_b, perm[al2.index_b] % 2)


def test_scores_on_hand_made_couplings():
    n = 4
    eye = np.eye(n) / n
    assert foscttm(eye) == 0.0
    assert recall_at_k(eye, ks=(1, 2)) == {1: 1.0, 2: 1.0}
    assert foscttm(np.ones((n, n)) / n**2) == pytest.approx(0.5)  # all ties: chance
    shift = np.roll(np.eye(n), 1, axis=1) / n  # everyone sent to the next point
    assert foscttm(shift) == pytest.approx(2 / 3)  # of the 3 others: one closer, two tied (count half)
    assert recall_at_k(shift, ks=(1,))[1] == 0.0
    tm = np.array([1, 2, 3, 0])
    assert recall_at_k(shift, tm, ks=(1,))[1] == 1.0 and foscttm(shift, tm) == 0.0
    assert foscttm(shift, np.array([1, -1, 3, -1])) == 0.0  # -1: no partner, skipped
    labels_a = np.array([0, 0, 1, 1])
    labels_b = np.array([0, 1, 1, 0])
    assert label_transfer_accuracy(eye, labels_a, labels_b) == 0.5
    blur = np.array([[0.4, 0.3, 0.3, 0.0]] * 4) / 4  # argmax: b0 (label 0); barycentric: label 1 wins 0.6 : 0.4
    assert transfer_labels(blur, labels_b).tolist() == [0, 0, 0, 0]
    assert transfer_labels(blur, labels_b, how="barycentric").tolist() == [1, 1, 1, 1]


def test_distances_metrics():
    X = cloud(30)
    for metric in ("euclidean", "sqeuclidean", "cosine", "correlation", "geodesic"):
        D = distances(X, metric)
        assert D.shape == (30, 30) and np.allclose(D, D.T) and np.all(np.diag(D) == 0) and np.all(D >= 0)
    np.testing.assert_allclose(distances(X, "sqeuclidean"), distances(X) ** 2, rtol=1e-9, atol=1e-9)
    al = gw_align(X, X @ rotation(5), metric="geodesic", normalize="max", true_match=np.arange(30))
    assert al.metric == "geodesic" and al.scale_a > 0 and al.scores["foscttm"] < 0.05


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"X_a": np.zeros((0, 3))}, "at least 2 points"),
        ({"X_a": np.arange(10.0)}, "2-D array.*reshape"),
        ({"X_a": np.where(np.eye(10, 3) > 0, np.nan, 1.0)}, "NaN or Inf"),
        ({"X_b": np.full((10, 3), np.inf)}, "NaN or Inf"),
        ({"labels_a": np.zeros(9)}, "labels_a has 9 labels but X_a has 10"),
        ({"labels_b": np.zeros((10, 2))}, "labels_b must be 1-D"),
        ({"metric": "manhattan"}, "unknown metric 'manhattan'"),
        ({"normalize": "sum"}, "unknown normalize"),
        ({"epsilon": 0.0}, "epsilon must be a positive number"),
        ({"epsilon": float("nan")}, "epsilon must be a positive number"),
        ({"max_points": 1}, "max_points"),
        ({"true_match": np.arange(9)}, "true_match must be 10 integer"),
        ({"true_match": np.arange(10) + 5}, "outside"),
        ({"X_a": np.ones((10, 3))}, "every distance is 0"),
        ({"X_a": [["a", "b"], ["c", "d"]]}, "numeric array"),
    ],
)
def test_bad_inputs_say_what_to_fix(kwargs, match):
    args = {"X_a": cloud(10), "X_b": cloud(10, seed=1)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        gw_align(args.pop("X_a"), args.pop("X_b"), **args)


def test_unknown_keyword_names_the_valid_ones():
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['eps'\].*epsilon.*max_points"):
        gw_align(cloud(10), cloud(10), eps=0.1)


def test_score_functions_reject_bad_input():
    with pytest.raises(ValueError, match="n_a == n_b"):
        foscttm(np.ones((3, 4)))
    with pytest.raises(ValueError, match="NaN"):
        recall_at_k(np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match="how must be one of"):
        transfer_labels(np.eye(3), [0, 1, 2], how="mode")
    with pytest.raises(ValueError, match="labels_b has 2 labels"):
        label_transfer_accuracy(np.eye(3), [0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="ks must be positive"):
        recall_at_k(np.eye(3), ks=(0,))
    with pytest.raises(ValueError, match="no pairs"):
        foscttm(np.eye(3), np.array([-1, -1, -1]))


def test_numerical_failure_asks_for_a_larger_epsilon():
    with pytest.raises(ValueError, match="increase epsilon"):
        gw_align(cloud(60), cloud(60, seed=1), epsilon=1e-5)


# --------------------------------------------------------------------------- AlignmentView (Python side)
def _clusters(n_per=(30, 20, 10), seed=2):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(n_per)), n_per)
    base = (rng.standard_normal((len(n_per), 6)) * 4)[labels] + rng.standard_normal((labels.size, 6))
    return base, labels


def test_alignment_view_from_point_clouds():
    import superwidgets as sw

    X, labels = _clusters()
    Y = X @ rotation(6, 3) + 0.05 * np.random.default_rng(0).standard_normal(X.shape)
    v = sw.AlignmentView(X, Y, labels_a=labels, labels_b=labels, paired=True, class_names=["a", "b", "c"])
    assert v.coupling.shape == (60, 60) and v.embed_a.shape == (60, 2) and v.embed_b.shape == (60, 2)
    np.testing.assert_allclose(v.coupling.sum(1), 1.0, atol=1e-3)  # rows scaled to sum to 1
    assert v.class_names == ["a", "b", "c"] and np.all(np.diff(v.labels_a) >= 0)  # ordered by label
    assert v.scores["label_transfer_argmax"] == 1.0 and v.scores["foscttm"] < 0.01
    assert v.confusion.tolist() == [[30, 0, 0], [0, 20, 0], [0, 0, 10]]
    assert v.scores == v.baseline_scores and v.error == ""
    rev = v.rev
    v.epsilon = 0.02  # re-aligns
    assert v.rev > rev and v.alignment.epsilon == 0.02
    with pytest.raises(ValueError, match="live view"):
        v.ablate(0)
    assert "live view" in v.error and v.ablated == []
    import matplotlib

    matplotlib.use("Agg")
    fig = v.to_figure()
    assert len(fig.axes) >= 4


def test_alignment_view_live_ablate_steer_and_errors():
    from torch import nn

    import superwidgets as sw
    from superwidgets.science import ReLUSAE

    X, labels = _clusters()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4), nn.Linear(4, 2)).eval()
    sae = ReLUSAE(4, 12, seed=0)
    lens = sw.Lens(model)
    x = torch.from_numpy(X).float()
    v = sw.AlignmentView(X_b=X, lens=lens, site="2", sae=sae, inputs=x, labels_a=labels, labels_b=labels, paired=True)
    assert v.live and len(v.feature_names) == 12 and v.names == ["image", "B"]
    with torch.no_grad():
        codes = sae.encode(model[:3](x)).double().numpy()
    np.testing.assert_allclose(v.representation, codes[v.index_a], rtol=1e-5, atol=1e-6)
    base = dict(v.scores)
    hot = int(np.argmax(codes.mean(0)))  # the most active latent: ablating it changes the geometry
    v.ablate(hot)
    assert v.ablated == [hot] and np.allclose(v.representation[:, hot], 0, atol=1e-5)
    assert v.scores != base and v.baseline_scores == base
    assert not any(e.enabled for e in v.edits)  # the view's edits are on only while it encodes
    out_before = model(x).detach().clone()
    assert torch.equal(lens.run(x).edited, out_before)
    v.steer(hot, 1.5)
    assert v.steer_feature == hot and v.steer_alpha == 1.5
    good = (list(v.ablated), v.steer_feature, dict(v.scores))
    with pytest.raises(ValueError, match="out of range"):
        v.ablate(99)
    assert "out of range" in v.error and (list(v.ablated), v.steer_feature, dict(v.scores)) == good
    with pytest.raises(ValueError, match="epsilon must be a positive"):
        v.epsilon = -1.0
    assert v.epsilon == 5e-3  # reverted
    # a request from the view: errors land in the error area, nothing raises
    v._dispatch(v, {"type": "edit", "seq": 7, "origin": "x", "ablated": ["nope"]}, [])
    assert "ablated must be a list" in v.error and v.seq == 7
    v._dispatch(v, {"type": "edit", "seq": 8, "origin": "x", "ablated": [], "steer_feature": -1}, [])
    assert v.error == "" and v.scores == base
    v.reset()
    assert v.ablated == [] and v.steer_feature == -1
    # re-running the cell replaces the old view's edits instead of stacking them
    v2 = sw.AlignmentView(X_b=X, lens=lens, site="2", sae=sae, inputs=x, labels_a=labels, labels_b=labels)
    assert len(lens.edits) == 2 and "replaced" in v.error
    with pytest.raises(RuntimeError, match="newer AlignmentView"):
        v.ablate(0)
    lens.close()
    del v2


def test_alignment_view_bad_construction():
    import superwidgets as sw

    X, labels = _clusters()
    with pytest.raises(ValueError, match="needs X_a and X_b"):
        sw.AlignmentView(None, X)
    with pytest.raises(ValueError, match="one label per A point"):
        sw.AlignmentView(X, X, labels_a=labels[:-1])
    with pytest.raises(ValueError, match="paired=True needs as many"):
        sw.AlignmentView(X, X[:-1], paired=True)
    with pytest.raises(ValueError, match="need lens="):
        sw.AlignmentView(X, X, site="x")
    with pytest.raises(ValueError, match="NaN or Inf"):
        sw.AlignmentView(np.full_like(X, np.nan), X)
    with pytest.raises(TypeError):
        sw.AlignmentView(X, X, eps=0.1)


def test_alignment_session_gives_the_views_numbers_from_a_script():
    from torch import nn

    import superwidgets as sw
    from superwidgets.analysis import AlignmentSession
    from superwidgets.science import ReLUSAE

    X, labels = _clusters()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4), nn.Linear(4, 2)).eval()
    sae = ReLUSAE(4, 12, seed=0)
    x = torch.from_numpy(X).float()
    with sw.Lens(model) as lens:
        v = sw.AlignmentView(X_b=X, lens=lens, site="2", sae=sae, inputs=x, labels_a=labels, labels_b=labels)
        hot = int(np.argmax(v.representation.mean(0)))
        v.ablate(hot)
        view = (dict(v.scores), dict(v.baseline_scores), v.coupling.copy(), v.confusion.copy())
    with sw.Lens(model) as lens:
        s = AlignmentSession(X_b=X, lens=lens, site="2", sae=sae, inputs=x, labels_a=labels, labels_b=labels)
        assert len(lens.edits) == 2 and not any(e.enabled for e in s.edits)  # on only while it encodes
        r = s.update(ablated=[hot])
        assert r.ablated == (hot,) and np.allclose(r.representation[:, hot], 0, atol=1e-5)
        for k in ("label_transfer_barycentric", "label_transfer_argmax", "gw_cost"):  # unpaired: no FOSCTTM
            assert r.scores[k] == pytest.approx(view[0][k]) and r.baseline_scores[k] == pytest.approx(view[1][k])
        assert r.scores != r.baseline_scores  # the ablation moved the alignment
        np.testing.assert_allclose(r.coupling, view[2], atol=1e-6)
        np.testing.assert_array_equal(r.confusion, view[3])
        with pytest.raises(ValueError, match="out of range"):
            s.update(ablated=[99])
        assert s.last is r  # a refused state changes nothing
        with pytest.raises(ValueError, match="live view"):
            AlignmentSession(X, X).update(ablated=[0])
