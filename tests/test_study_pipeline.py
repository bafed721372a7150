"""The patient-neuron study's scoring pipeline (superwidgets.science.study) on planted representations.

Three representations of the same 300 samples and one scalar ``y``:

* ``good``: ``y`` is a smooth function of the first two coordinates, plus 8 small noise dimensions;
* ``contaminated``: the same two coordinates plus 30 nuisance dimensions of 2× larger SD
  (superposition contamination: neighbourhoods are decided by the nuisance);
* ``unrelated``: Gaussian noise that never saw ``y``.

Every good-case assertion is preceded by a check that the same threshold is *not* met by the
contaminated or unrelated representation, so the pass is earned by the geometry.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from superwidgets.science import study
from superwidgets.science.align import foscttm, label_transfer_accuracy, recall_at_k
from superwidgets.science.geometry import knn_sd_ratio, ridge_r2
from superwidgets.science.study import (
    POOLED,
    contamination_report,
    knn_sd_test,
    label_transfer_scores,
    morans_i,
    morans_i_difference,
    preprocess,
    ridge_r2_by_group,
)

torch.set_num_threads(1)

N = 300
GOOD_RATIO, GOOD_I, GOOD_R2 = 0.5, 0.5, 0.7  # thresholds the good representation must beat


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((N, 2))
    y = Z[:, 0] + 0.5 * np.sin(2 * Z[:, 1]) + 0.1 * rng.standard_normal(N)
    return {
        "y": y,
        "groups": np.repeat(["ctrl", "mut"], N // 2),
        "good": np.hstack([Z, 0.1 * rng.standard_normal((N, 8))]),
        "contaminated": np.hstack([Z, 2.0 * rng.standard_normal((N, 30))]),
        "unrelated": rng.standard_normal((N, 10)),
    }


@pytest.fixture(scope="module")
def knn(world):
    return {
        name: knn_sd_test(world[name], world["y"], ks=(5, 10, 15), permutations=1000, seed=1)
        for name in ("good", "contaminated", "unrelated")
    }


# --------------------------------------------------------------------------- kNN SD ratio
def test_knn_sd_test_separates_good_from_contaminated_and_unrelated(knn):
    for k in (5, 10, 15):
        # not earned by the others: neither the contaminated nor the unrelated representation passes
        for bad in ("contaminated", "unrelated"):
            assert knn[bad].ratio(k) > GOOD_RATIO + 0.2
            assert knn[bad].p(k) > 0.05
        assert knn["good"].ratio(k) < GOOD_RATIO
        assert knn["good"].p(k) == pytest.approx(1 / 1001)  # no shuffle came close
        # contamination makes the ratio clearly worse
        assert knn["contaminated"].ratio(k) > knn["good"].ratio(k) + 0.4


def test_unrelated_representation_is_at_chance(knn):
    for k in (5, 10, 15):
        row = knn["unrelated"].get(k)
        # chance is the permutation null's mean: ≈ 1, a little lower for small k (the SD of k values is biased low)
        assert 0.8 < row["null_mean"] <= 1.0
        assert row["ratio"] == pytest.approx(row["null_mean"], abs=0.05)
        assert row["p"] > 0.05


def test_observed_ratio_is_geometry_knn_sd_ratio(world, knn):
    """The test scores exactly the library's kNN SD ratio, and its null uses the same neighbour rule."""
    for name in ("good", "unrelated"):
        for k in (5, 10, 15):
            assert knn[name].ratio(k) == pytest.approx(knn_sd_ratio(world[name], world["y"], k=k), rel=1e-12)
    nb = study._neighbours(world["good"], 10)
    mine = study._mean_local_sd(world["y"], nb) / world["y"].std()
    assert mine == pytest.approx(knn_sd_ratio(world["good"], world["y"], k=10), rel=1e-12)


def test_knn_sd_test_groups_pooling_and_determinism(world):
    res = knn_sd_test(world["good"], world["y"], groups=world["groups"], ks=(10,), permutations=200, seed=3)
    rows = {(r["group"], r["k"]): r for r in res.rows}
    assert set(rows) == {("ctrl", 10), ("mut", 10), (POOLED, 10)}
    assert rows[("ctrl", 10)]["n"] == rows[("mut", 10)]["n"] == N // 2
    assert rows[(POOLED, 10)]["n"] == N
    # pooled = size-weighted mean of the groups (equal sizes here)
    assert res.ratio(10) == pytest.approx((res.ratio(10, "ctrl") + res.ratio(10, "mut")) / 2)
    # each group's ratio is knn_sd_ratio on that group alone
    idx = world["groups"] == "mut"
    assert res.ratio(10, "mut") == pytest.approx(knn_sd_ratio(world["good"][idx], world["y"][idx], k=10))
    assert res.p(10) == pytest.approx(1 / 201)
    again = knn_sd_test(world["good"], world["y"], groups=world["groups"], ks=(10,), permutations=200, seed=3)
    assert again.rows == res.rows
    md = res.to_markdown()
    assert md.splitlines()[0] == "| group | k | n | ratio | null_mean | p |"
    assert len(md.splitlines()) == 2 + 3
    with pytest.raises(KeyError, match="ks are \\[10\\]"):
        res.get(99)


def test_groups_remove_between_group_differences():
    """y differs only *between* groups and X encodes only the group: pooled over all samples the
    neighbours agree on y, but within each group the representation knows nothing about y."""
    rng = np.random.default_rng(5)
    g = np.repeat([0, 1, 2], 100)
    y = 5.0 * g + rng.standard_normal(300)
    X = 10.0 * np.eye(3)[g] + rng.standard_normal((300, 3))
    ignoring = knn_sd_test(X, y, ks=(10,), permutations=200)
    assert ignoring.ratio(10) < 0.4 and ignoring.p(10) < 0.01  # what a pooled analysis would wrongly credit
    within = knn_sd_test(X, y, groups=g, ks=(10,), permutations=200)
    assert within.ratio(10) > 0.85 and within.p(10) > 0.05
    assert morans_i(X, y, k=10).value > 0.8
    assert abs(morans_i(X, y, k=10, groups=g).value) < 0.1


# --------------------------------------------------------------------------- Moran's I
def test_morans_i_good_contaminated_unrelated(world):
    y = world["y"]
    vals = {name: morans_i(world[name], y, k=10) for name in ("good", "contaminated", "unrelated")}
    assert vals["contaminated"].value < GOOD_I - 0.3
    assert abs(vals["unrelated"].value - vals["unrelated"].expected) < 0.1
    assert vals["unrelated"].expected == pytest.approx(-1 / (N - 1))
    assert vals["good"].value > GOOD_I + 0.3
    assert float(vals["good"]) == vals["good"].value


def test_morans_i_matches_the_definition():
    """Row-standardised kNN weights, written out as a dense matrix on a small case."""
    rng = np.random.default_rng(2)
    X, y, k = rng.standard_normal((40, 3)), rng.standard_normal(40), 4
    D = ((X[:, None] - X[None]) ** 2).sum(-1)
    np.fill_diagonal(D, np.inf)
    W = np.zeros((40, 40))
    W[np.arange(40)[:, None], np.argsort(D, axis=1)[:, :k]] = 1 / k
    z = y - y.mean()
    expected = (40 / W.sum()) * (z @ W @ z) / (z @ z)
    assert morans_i(X, y, k=k).value == pytest.approx(expected, rel=1e-10)
    # a perfectly alternating y on a chain is negatively autocorrelated
    chain = np.arange(20.0)[:, None]
    assert morans_i(chain, (-1.0) ** np.arange(20), k=2).value < -0.8


def test_morans_i_difference_ci_excludes_zero_only_when_earned(world):
    y = world["y"]
    # two equally contaminated copies (independent nuisance): the interval must contain 0
    rng = np.random.default_rng(9)
    other = np.hstack([world["good"][:, :2], 2.0 * rng.standard_normal((N, 30))])
    null = morans_i_difference(world["contaminated"], other, y, k=10, n_boot=300, seed=0)
    assert null.ci_low < 0 < null.ci_high and not null.excludes_zero
    d = morans_i_difference(world["good"], world["contaminated"], y, k=10, n_boot=300, seed=0)
    assert d.difference == pytest.approx(d.i_a - d.i_b)
    assert d.i_a == pytest.approx(morans_i(world["good"], y, k=10).value)
    assert d.i_b == pytest.approx(morans_i(world["contaminated"], y, k=10).value)
    assert d.excludes_zero and d.ci_low > 0.4
    assert d.ci_low <= d.difference <= d.ci_high
    assert d.samples.shape == (300,)
    # grouped: resampled within each group, both representations on the same resample
    dg = morans_i_difference(world["good"], world["contaminated"], y, k=10, groups=world["groups"], n_boot=100, seed=0)
    assert dg.excludes_zero and dg.difference > 0.4


def test_bootstrap_copies_are_not_their_own_neighbours():
    ids = np.array([0, 0, 0, 1, 2, 3, 4, 5])
    A = np.arange(8.0)[:, None]
    A[1] = A[2] = A[0]  # three copies of sample 0 at one point
    nb = study._neighbours(A, 2, ids=ids)
    for i in range(3):
        assert not set(ids[nb[i]]) & {0}


# --------------------------------------------------------------------------- ridge R²
def test_ridge_r2_by_group(world):
    y = world["y"]
    unrelated = ridge_r2_by_group(world["unrelated"], y)
    assert unrelated.value < 0.1  # at chance
    good = ridge_r2_by_group(world["good"], y)
    assert good.value > GOOD_R2
    assert good.value == pytest.approx(ridge_r2(world["good"], y, cv=5, seed=0))
    # the global linear read-out survives contamination: only the neighbourhood measures reveal it
    assert ridge_r2_by_group(world["contaminated"], y).value > GOOD_R2
    grouped = ridge_r2_by_group(world["good"], y, groups=world["groups"])
    assert set(grouped.by_group) == {"ctrl", "mut"}
    assert grouped.value == pytest.approx(np.mean(list(grouped.by_group.values())))
    assert grouped.expected == 0.0


# --------------------------------------------------------------------------- preprocessing
def test_preprocess_l2_and_pca():
    rng = np.random.default_rng(0)
    X = rng.random((50, 20))
    X[3] = 0.0
    Z = preprocess(X, l2=True)
    norms = np.linalg.norm(Z, axis=1)
    assert np.allclose(np.delete(norms, 3), 1.0) and norms[3] == 0.0
    P = preprocess(X, pca=5)
    assert P.shape == (50, 5)
    assert np.allclose(P.mean(0), 0.0)
    assert np.all(np.diff(P.var(0)) <= 1e-12)  # components in order of variance
    assert np.array_equal(preprocess(X), X)
    # l2 makes the kNN SD ratio blind to each row's magnitude (not so without it)
    X = rng.random((50, 20))
    y = rng.standard_normal(50)
    scaled = X * rng.uniform(1, 10, (50, 1))
    same = [knn_sd_test(A, y, ks=(5,), permutations=10, l2=True).ratio(5) for A in (X, scaled)]
    assert same[0] == pytest.approx(same[1], rel=1e-12)
    assert knn_sd_test(scaled, y, ks=(5,), permutations=10).ratio(5) != pytest.approx(same[0])
    with pytest.raises(ValueError, match=r"pca must be between 1 and min\(n, d\) = 20"):
        preprocess(X, pca=21)
    with pytest.raises(ValueError, match="pca must be an integer"):
        preprocess(X, pca=0.5)


# --------------------------------------------------------------------------- report
def test_contamination_report(world):
    reps = {"cnn": world["contaminated"], "sae": world["good"]}
    rep = contamination_report(reps, world["y"], world["groups"], ks=(5, 10), permutations=200, n_boot=100)
    r = rep.value("cnn − sae", "knn_sd_ratio", k=10)
    assert r["value"] == pytest.approx(rep.knn["cnn"].ratio(10) - rep.knn["sae"].ratio(10))
    assert r["value"] > 0.4  # contaminated neighbourhoods agree less on y
    assert rep.value("sae", "knn_sd_ratio", k=10)["p"] < 0.01
    assert rep.value("cnn", "knn_sd_ratio", k=10)["p"] > 0.05
    m = rep.value("cnn − sae", "morans_i")
    assert m["value"] < -0.4 and m["ci_high"] < 0
    assert m["ci_low"] == rep.differences["cnn − sae"].ci_low
    assert rep.value("sae", "morans_i", group="ctrl")["value"] == rep.morans["sae"].by_group["ctrl"]
    assert rep.value("sae", "ridge_r2")["value"] == rep.ridge["sae"].value
    # tidy: 2 reps + 1 difference, each (2 ks + 1 moran + 1 ridge) × (2 groups + pooled)
    assert len(rep.rows) == 3 * 4 * 3
    assert all(set(row) == set(study._COLUMNS) for row in rep.rows)
    md = rep.to_markdown()
    assert md.splitlines()[0] == "| " + " | ".join(study._COLUMNS) + " |"
    assert "| cnn − sae | morans_i | pooled | 10 | 300 |" in md
    frame = rep.to_frame()
    assert list(frame.columns) == study._COLUMNS and len(frame) == len(rep.rows)
    with pytest.raises(KeyError, match="pass k="):
        rep.value("cnn", "knn_sd_ratio")
    # one representation: no difference rows
    single = contamination_report({"sae": world["good"]}, world["y"], ks=(5,), permutations=20, n_boot=5)
    assert {row["representation"] for row in single.rows} == {"sae"} and not single.differences


# --------------------------------------------------------------------------- label transfer
def test_label_transfer_scores_reads_align():
    rng = np.random.default_rng(0)
    n = 60
    labels = np.repeat([0, 1, 2], n // 3)
    T = np.eye(n) + 0.3 * rng.random((n, n))
    T /= T.sum()
    s = label_transfer_scores(T, labels, labels, true_match=np.arange(n), ks=(1, 5))
    assert s["label_transfer_argmax"] == label_transfer_accuracy(T, labels, labels, how="argmax") == 1.0
    assert s["label_transfer_barycentric"] == label_transfer_accuracy(T, labels, labels, how="barycentric")
    assert s["chance"] == pytest.approx(1 / 3)
    assert s["foscttm"] == foscttm(T, np.arange(n)) and s["foscttm"] < 0.05
    assert s["recall@1"] == recall_at_k(T, np.arange(n), ks=(1,))[1] == 1.0
    keys = {"label_transfer_argmax", "label_transfer_barycentric", "chance", "foscttm", "recall@1", "recall@5"}
    assert set(s) == keys
    # a random coupling is at chance
    R = rng.random((n, n))
    r = label_transfer_scores(R / R.sum(), labels, labels[rng.permutation(n)], true_match=np.arange(n))
    assert r["foscttm"] == pytest.approx(0.5, abs=0.1)
    assert set(label_transfer_scores(T, true_match=np.arange(n))) == {"foscttm", "recall@1", "recall@5", "recall@10"}
    with pytest.raises(ValueError, match="needs both labels_a"):
        label_transfer_scores(T, labels)
    with pytest.raises(ValueError, match="nothing to score"):
        label_transfer_scores(T)
    with pytest.raises(ValueError, match="labels_a has 3 labels but the coupling's rows has 60"):
        label_transfer_scores(T, labels[:3], labels)


# --------------------------------------------------------------------------- errors
def test_errors_say_what_to_fix(world):
    X, y = world["good"], world["y"]
    with pytest.raises(ValueError, match=r"y must have one value \(or row\) per point"):
        knn_sd_test(X, y[:-1])
    with pytest.raises(ValueError, match="groups has 299 labels but X has 300 points"):
        morans_i(X, y, groups=world["groups"][:-1])
    with pytest.raises(ValueError, match=r"k=150 is too large: group 'ctrl' has only 150 samples; use k <= 149"):
        knn_sd_test(X, y, groups=world["groups"], ks=(10, 150))
    with pytest.raises(ValueError, match="k=300 is too large: X has only 300 samples"):
        morans_i(X, y, k=300)
    with pytest.raises(ValueError, match="k must be at least 2"):
        knn_sd_test(X, y, ks=(1,))
    bad = X.copy()
    bad[7, 1] = np.nan
    with pytest.raises(ValueError, match=r"X contains NaN or Inf in 1 rows \(first: \[7\]\)"):
        knn_sd_test(bad, y)
    ybad = y.copy()
    ybad[3] = np.nan
    with pytest.raises(ValueError, match="y contains NaN or Inf; drop those points first"):
        morans_i(X, ybad)
    with pytest.raises(ValueError, match="groups contains NaN"):
        knn_sd_test(X, y, groups=np.where(np.arange(N) < 5, np.nan, 1.0))
    with pytest.raises(ValueError, match="y is constant within group 'b'"):
        morans_i(X, np.where(np.arange(N) < 150, y, 1.0), groups=np.repeat(["a", "b"], 150))
    with pytest.raises(ValueError, match="permutations must be a positive integer"):
        knn_sd_test(X, y, permutations=0)
    with pytest.raises(ValueError, match="X_a and X_b must hold the same samples"):
        morans_i_difference(X, X[:-1], y)
    with pytest.raises(ValueError, match="n_boot must be a positive integer"):
        morans_i_difference(X, X, y, n_boot=0)
    with pytest.raises(ValueError, match=r"level must be in \(0, 1\)"):
        morans_i_difference(X, X, y, level=95)
    with pytest.raises(ValueError, match="cv must be an integer between 2 and the size of group 'ctrl' \\(150\\)"):
        ridge_r2_by_group(X, y, groups=world["groups"], cv=200)
    with pytest.raises(ValueError, match="may not be called 'pooled'"):
        morans_i(X, y, groups=np.repeat(["pooled", "x"], 150))
    with pytest.raises(ValueError, match="reps must be a non-empty dict"):
        contamination_report({}, y)
    with pytest.raises(ValueError, match=r"same samples in the same order; got rows \{'cnn': 300, 'sae': 299\}"):
        contamination_report({"cnn": X, "sae": X[:-1]}, y)
