"""Geometric fidelity: does a representation's geometry respect a held-out property?

Superposition corrupts distances: two cells that differ in one factor can
land close together because unrelated features share a direction. These
measures ask how well the neighbourhood structure and the linear content of a
representation ``X`` (n points × d features) follow a property ``y`` that was
not used to build it (a ground-truth factor, a clinical score):

* :func:`knn_sd_ratio` — local spread of ``y`` among each point's nearest
  neighbours, relative to its global spread (lower: geometry respects ``y``);
* :func:`ridge_r2` — held-out R² of a cross-validated ridge regression of ``y`` on ``X``;
* :func:`linear_cka` — linear centred kernel alignment of two representations;
* :func:`effective_rank` — how many dimensions the representation really uses;
* :func:`geometric_fidelity` — all of them at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["effective_rank", "geometric_fidelity", "knn_sd_ratio", "linear_cka", "ridge_r2"]


def _as_matrix(X: Any, name: str, min_rows: int = 2) -> np.ndarray:
    """``X`` as a finite float64 ``(n, d)`` array (tensors accepted), or a ValueError saying what to fix.

    Shared by :mod:`superwidgets.science.align`.
    """
    if hasattr(X, "detach"):
        X = X.detach().cpu().numpy()
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a numeric array of shape (n, d); got {type(X).__name__}") from None
    if arr.ndim != 2:
        hint = " (a 1-D array is one feature per point: reshape it with X.reshape(-1, 1))" if arr.ndim == 1 else ""
        raise ValueError(f"{name} must be a 2-D array (n points, d features); got shape {arr.shape}{hint}")
    if arr.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} points (rows) to have a geometry; got {arr.shape[0]}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has no features (shape {arr.shape})")
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise ValueError(
            f"{name} contains NaN or Inf in {rows.size} rows (first: {rows[:5].tolist()}); drop or impute them first"
        )
    return arr


def _as_target(y: Any, n: int, name: str = "y") -> np.ndarray:
    if hasattr(y, "detach"):
        y = y.detach().cpu().numpy()
    arr = np.asarray(y, dtype=np.float64)
    if arr.ndim not in (1, 2) or arr.shape[0] != n:
        raise ValueError(f"{name} must have one value (or row) per point: shape ({n},) or ({n}, k); got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or Inf; drop those points first")
    return arr


def _neighbours(A: np.ndarray, k: int, ids: np.ndarray | None = None) -> np.ndarray:
    """Indices ``(n, k)`` of each row's ``k`` nearest other rows (Euclidean), skipping rows with the same id.

    With ``ids`` None every row is its own id, the rule of :func:`knn_sd_ratio`
    (the point itself is dropped; exact duplicates of it count as neighbours). In a bootstrap
    resample, ``ids`` are the original sample indices, so copies of one
    sample are never each other's neighbours.
    """
    from sklearn.neighbors import NearestNeighbors

    n = A.shape[0]
    if ids is None:
        ids, extra = np.arange(n), 1
    else:
        extra = int(np.unique(ids, return_counts=True)[1].max())
    q = min(k + extra, n)
    _, idx = NearestNeighbors(n_neighbors=q).fit(A).kneighbors(A)
    valid = ids[idx] != ids[:, None]
    if (valid.sum(1) < k).any():
        raise ValueError(
            f"fewer than k={k} distinct other samples are available to some points (a small group in a "
            "bootstrap resample); use a smaller k"
        )
    order = np.argsort(~valid, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(idx, order, axis=1)


def knn_sd_ratio(X: Any, y: Any, k: int = 10) -> float:
    """Mean local standard deviation of ``y`` among each point's ``k`` nearest neighbours ÷ global SD of ``y``.

    Neighbours are found in ``X`` by Euclidean distance, excluding the point
    itself. About 1 when neighbourhoods ignore ``y`` (random), near 0 when
    close points share ``y``.

    Parameters
    ----------
    X : array-like (n, d)
    y : array-like (n,)
        The held-out property (continuous or 0/1).
    k : int
        Neighbours per point (``1 <= k < n``; 1 gives a local SD of 0, so use ≥ 2).

    Returns
    -------
    float ≥ 0.

    Raises
    ------
    ValueError
        Bad shapes, NaN/Inf, ``k`` out of range, or a constant ``y``.
    """

    A = _as_matrix(X, "X", min_rows=3)
    t = _as_target(y, A.shape[0])
    if t.ndim != 1:
        raise ValueError(f"y must be 1-D (one value per point); got shape {t.shape}")
    k = int(k)
    if not 2 <= k < A.shape[0]:
        raise ValueError(f"k must be between 2 and n - 1 = {A.shape[0] - 1}; got {k}")
    sd = float(t.std())
    if sd == 0:
        raise ValueError("y is constant, so its spread cannot be compared; pick a property that varies")
    nb = _neighbours(A, k)
    return float(t[nb].std(axis=1).mean() / sd)


def effective_rank(X: Any, center: bool = True) -> float:
    """Entropy-based effective rank (Roy & Vetterli 2007): ``exp(H(σ / Σσ))`` of the singular values.

    Parameters
    ----------
    X : array-like (n, d)
    center : bool
        Subtract the column means first (the rank of the spread, not of the offset). Default True.

    Returns
    -------
    float in ``[1, min(n, d)]``: ``r`` for data spread equally over ``r``
    orthogonal directions; 1 for a single direction.
    """
    A = _as_matrix(X, "X")
    if center:
        A = A - A.mean(0)
    s = np.linalg.svd(A, compute_uv=False)
    total = s.sum()
    if total <= 0:
        raise ValueError("X has no spread (all rows equal after centring); its effective rank is undefined")
    p = s[s > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def linear_cka(X: Any, Y: Any) -> float:
    """Linear centred kernel alignment (Kornblith et al. 2019) of two representations of the same points.

    ``‖Yᵀ X‖²_F / (‖Xᵀ X‖_F ‖Yᵀ Y‖_F)`` after centring columns. Invariant to
    rotations and isotropic scaling of either side; 1 for identical geometry.

    Parameters
    ----------
    X : array-like (n, d_x)
    Y : array-like (n, d_y)
        Same points (rows) as ``X``; a 1-D ``Y`` is one column.

    Returns
    -------
    float in [0, 1].
    """
    A = _as_matrix(X, "X")
    Yv = np.asarray(Y.detach().cpu().numpy() if hasattr(Y, "detach") else Y, dtype=np.float64)
    B = _as_matrix(Yv.reshape(-1, 1) if Yv.ndim == 1 else Yv, "Y")
    if A.shape[0] != B.shape[0]:
        raise ValueError(f"X and Y must describe the same points; got {A.shape[0]} and {B.shape[0]} rows")
    A = A - A.mean(0)
    B = B - B.mean(0)
    den = np.linalg.norm(A.T @ A) * np.linalg.norm(B.T @ B)
    if den == 0:
        raise ValueError("X or Y has no spread (constant after centring); CKA is undefined")
    return float(np.linalg.norm(B.T @ A) ** 2 / den)


def ridge_r2(
    X: Any, y: Any, *, alphas: Any = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0), cv: int = 5, seed: int = 0
) -> float:
    """Held-out R² of a ridge regression of ``y`` on ``X``, cross-validated.

    Each of ``cv`` shuffled folds is predicted by a model fitted on the
    others (standardised features; the ridge penalty chosen among ``alphas``
    by efficient leave-one-out inside the training folds); R² is computed
    once over all held-out predictions. Multi-column ``y``: the mean R² of
    the columns.

    Parameters
    ----------
    X : array-like (n, d)
    y : array-like (n,) or (n, k)
    alphas : sequence of float
        Candidate ridge penalties.
    cv : int
        Number of folds (2 ≤ cv ≤ n).
    seed : int
        Seed of the fold shuffle.

    Returns
    -------
    float ≤ 1 (negative: worse than predicting the mean).
    """
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    A = _as_matrix(X, "X")
    t = _as_target(y, A.shape[0])
    cv = int(cv)
    if not 2 <= cv <= A.shape[0]:
        raise ValueError(f"cv must be between 2 and the number of points ({A.shape[0]}); got {cv}")
    if np.all(t.std(axis=0) == 0):
        raise ValueError("y is constant, so R² is undefined; pick a property that varies")
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.asarray(alphas, dtype=np.float64)))
    pred = cross_val_predict(model, A, t, cv=KFold(cv, shuffle=True, random_state=seed))
    return float(r2_score(t, pred, multioutput="uniform_average"))


def geometric_fidelity(X: Any, y: Any, *, k: int = 10, cv: int = 5, seed: int = 0) -> dict[str, float]:
    """Every geometric-fidelity measure of representation ``X`` against property ``y``.

    Parameters
    ----------
    X : array-like (n, d)
    y : array-like (n,)
    k : int
        Neighbours for :func:`knn_sd_ratio`.
    cv : int
        Folds for :func:`ridge_r2`.
    seed : int
        Seed of the folds.

    Returns
    -------
    dict
        ``knn_sd_ratio`` (lower is better), ``ridge_r2`` (higher),
        ``linear_cka`` of ``X`` with ``y`` (higher), ``effective_rank`` of ``X``.

    Examples
    --------
    >>> geometric_fidelity(codes, world.factors[:, 5])  # doctest: +SKIP
    {'knn_sd_ratio': 0.41, 'ridge_r2': 0.78, 'linear_cka': 0.35, 'effective_rank': 11.2}
    """
    return {
        "knn_sd_ratio": knn_sd_ratio(X, y, k=k),
        "ridge_r2": ridge_r2(X, y, cv=cv, seed=seed),
        "linear_cka": linear_cka(X, y),
        "effective_rank": effective_rank(X),
    }
