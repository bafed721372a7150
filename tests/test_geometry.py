"""Geometric fidelity measures (superwidgets.science.geometry) against hand-computable cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from superwidgets.science.geometry import effective_rank, geometric_fidelity, knn_sd_ratio, linear_cka, ridge_r2


def rotation(d: int, seed: int = 0) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def test_linear_cka_identity_rotation_scale():
    X = np.random.default_rng(0).standard_normal((200, 6)) * np.arange(1, 7)
    assert linear_cka(X, X) == pytest.approx(1.0)
    assert linear_cka(X, 3.5 * X @ rotation(6) + 2.0) == pytest.approx(1.0)
    assert linear_cka(torch.from_numpy(X), X) == pytest.approx(1.0, abs=1e-6)
    # non-isotropic scaling changes it; independent data gives a small value
    assert linear_cka(X, X * np.array([1, 1, 1, 1, 1, 50.0])) < 0.99
    Z = np.random.default_rng(1).standard_normal((200, 6))
    assert linear_cka(X, Z) < 0.1
    # hand-computable: Y = first column of X only; CKA = s1^4 / (sqrt(sum s^4) * s1^2) for orthogonal columns
    Q = np.linalg.qr(np.random.default_rng(2).standard_normal((50, 3)))[0]
    Q -= Q.mean(0)
    Q = np.linalg.qr(Q)[0]  # centred-ish orthonormal columns
    A = Q * np.array([1.0, 2.0, 3.0])
    expected = 1.0**4 / (np.sqrt(1 + 2**4 + 3**4) * 1.0**2)
    assert linear_cka(A, A[:, 0]) == pytest.approx(expected, rel=0.05)


def test_effective_rank_of_rank_r_isotropic_data():
    rng = np.random.default_rng(0)
    for r in (1, 3, 7):
        Z = rng.standard_normal((4000, r))
        X = Z @ rotation(20, r)[:r]  # rank r inside 20-D, isotropic within its span
        assert effective_rank(X) == pytest.approx(r, rel=0.03)
    # exact: singular values (1, 1) → 2; one tiny direction adds little
    assert effective_rank(np.diag([1.0, 1.0]), center=False) == pytest.approx(2.0)
    assert effective_rank(np.diag([1.0, 1.0, 1e-9]), center=False) == pytest.approx(2.0, rel=1e-6)
    h = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))
    assert effective_rank(np.diag([3.0, 1.0]), center=False) == pytest.approx(np.exp(h))


def test_knn_sd_ratio_hand_cases():
    # points on a line, y = position: every neighbourhood of k = 2 is tight
    x = np.arange(100.0)[:, None]
    assert knn_sd_ratio(x, x[:, 0], k=2) < 0.05
    # y ignores the geometry: ratio near 1
    rng = np.random.default_rng(0)
    y = rng.standard_normal(100)
    assert 0.8 < knn_sd_ratio(rng.standard_normal((100, 3)), y, k=10) < 1.1
    # exact: pairs of duplicate points far apart; each point's single other neighbour... use k=2 on triples
    X = np.repeat(np.arange(4.0) * 100, 3)[:, None]  # 4 clusters of 3 identical points
    yy = np.repeat([0.0, 1.0, 0.0, 1.0], 3)
    assert knn_sd_ratio(X, yy, k=2) == 0.0


def test_ridge_r2_linear_and_noise():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 5))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0, 0.0]) + 0.01 * rng.standard_normal(300)
    assert ridge_r2(X, y) > 0.99
    assert ridge_r2(X, np.stack([y, -y], 1)) > 0.99
    assert ridge_r2(X, rng.standard_normal(300)) < 0.05  # held out: no fitting noise


def test_geometric_fidelity_dict():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((150, 4))
    out = geometric_fidelity(X, X[:, 0] * 2)
    assert set(out) == {"knn_sd_ratio", "ridge_r2", "linear_cka", "effective_rank"}
    assert out["ridge_r2"] > 0.99 and out["knn_sd_ratio"] < 0.6 and 3.5 < out["effective_rank"] <= 4


@pytest.mark.parametrize(
    ("fn", "args", "match"),
    [
        (knn_sd_ratio, (np.arange(10.0), np.arange(10.0)), "2-D array"),
        (knn_sd_ratio, (np.ones((10, 2)), np.arange(9.0)), "one value"),
        (knn_sd_ratio, (np.random.rand(10, 2), np.ones(10), 3), "constant"),
        (knn_sd_ratio, (np.random.rand(10, 2), np.arange(10.0), 10), "k must be between"),
        (knn_sd_ratio, (np.full((10, 2), np.nan), np.arange(10.0)), "NaN or Inf"),
        (effective_rank, (np.ones((5, 3)),), "no spread"),
        (effective_rank, (np.zeros((0, 3)),), "at least 2 points"),
        (linear_cka, (np.random.rand(10, 2), np.random.rand(9, 2)), "same points"),
        (ridge_r2, (np.random.rand(10, 2), np.arange(10.0)), None),
        (ridge_r2, (np.random.rand(10, 2), np.ones(10)), "constant"),
    ],
)
def test_bad_inputs(fn, args, match):
    if match is None:
        fn(*args)  # a valid call for contrast
        with pytest.raises(ValueError, match="cv must be between"):
            fn(*args, cv=1)
        return
    with pytest.raises(ValueError, match=match):
        fn(*args)
