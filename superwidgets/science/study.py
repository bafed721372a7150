"""The patient-neuron study's scoring pipeline as functions: is a property local in a representation?

arXiv 2606.31394 compares CNN features of patient-derived neuron images with
Gated-SAE codes of the same images by asking, for a per-image scalar ``y``
(the cell-death rate), whether images that are *neighbours* in the
representation have similar ``y`` — separately inside each genotype class, so
that the between-class difference in ``y`` does not count. Three numbers
answer it, each computed within every group and pooled:

* :func:`knn_sd_test` — the kNN SD ratio (:func:`~superwidgets.science.geometry.knn_sd_ratio`:
  mean SD of ``y`` among each point's ``k`` neighbours ÷ the group's SD of ``y``;
  lower: neighbours agree) with a permutation p-value (``y`` shuffled within
  each group);
* :func:`morans_i` — global Moran's I of ``y`` on the kNN graph (row-standardised
  weights; ≈ 0 for no structure, up to 1 when neighbours share ``y``), and
  :func:`morans_i_difference` — the difference between two representations
  of the same samples with a paired bootstrap CI;
* :func:`ridge_r2_by_group` — cross-validated ridge R² of ``y``
  (:func:`~superwidgets.science.geometry.ridge_r2`), which a linear read-out
  reaches even when the neighbourhoods are scrambled by large nuisance
  directions ("superposition contamination").

:func:`contamination_report` runs all three on several representations and
returns one tidy table with the differences; :func:`label_transfer_scores`
reads a GW coupling (:mod:`superwidgets.science.align`) the way the study's
label-transfer figure does. :func:`preprocess` is the study's optional L2 row
normalisation and PCA, applied before any of them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .align import _as_coupling, _as_labels, foscttm, label_transfer_accuracy, recall_at_k
from .geometry import _as_matrix, _as_target, _neighbours, knn_sd_ratio, ridge_r2

__all__ = [
    "POOLED",
    "ContaminationReport",
    "GroupScore",
    "KnnSdTest",
    "MoransIDifference",
    "contamination_report",
    "knn_sd_test",
    "label_transfer_scores",
    "morans_i",
    "morans_i_difference",
    "preprocess",
    "ridge_r2_by_group",
]

POOLED = "pooled"
"""The ``group`` label of rows that combine all groups (size-weighted)."""

_CHUNK = 4_000_000  # floats held at once by the permutation null (permutations × points × k)


# --------------------------------------------------------------------------- inputs
def preprocess(X: Any, *, l2: bool = False, pca: int | None = None, seed: int = 0) -> np.ndarray:
    """The study's optional preprocessing of a representation: L2 row normalisation, then PCA.

    Parameters
    ----------
    X : array-like (n, d)
        One row per sample (image); tensors accepted.
    l2 : bool
        Divide each row by its Euclidean norm, so only the direction of a
        code counts, not its overall magnitude (a brighter image with the
        same pattern lands on the same point). Rows that are all zero (an
        image no SAE latent fires on) stay zero. Default False.
    pca : int, optional
        Keep the first ``pca`` principal components (scikit-learn's
        :class:`~sklearn.decomposition.PCA`, fitted on all rows of ``X``):
        denoises and speeds up neighbour search on wide codes. Must be
        between 1 and ``min(n, d)``. Default None (no PCA).
    seed : int
        Random state of the PCA solver (only used by the randomised solver on large inputs).

    Returns
    -------
    ndarray (n, d) or (n, pca), float64.

    Raises
    ------
    ValueError
        ``X`` is not a finite 2-D array, or ``pca`` is out of range.

    Examples
    --------
    >>> import numpy as np
    >>> Z = preprocess(np.random.default_rng(0).random((100, 64)), l2=True, pca=10)
    >>> Z.shape
    (100, 10)
    """
    A = _as_matrix(X, "X")
    if l2:
        norms = np.linalg.norm(A, axis=1, keepdims=True)
        A = np.divide(A, norms, out=np.zeros_like(A), where=norms > 0)
    if pca is not None:
        if isinstance(pca, bool) or not isinstance(pca, (int, np.integer)):
            raise ValueError(f"pca must be an integer number of components or None; got {pca!r}")
        top = min(A.shape)
        if not 1 <= int(pca) <= top:
            raise ValueError(f"pca must be between 1 and min(n, d) = {top} for X of shape {A.shape}; got {pca}")
        from sklearn.decomposition import PCA

        A = PCA(n_components=int(pca), random_state=seed).fit_transform(A)
    return A


def _groups(groups: Any, n: int) -> list[tuple[Any, np.ndarray]]:
    """``[(label, row indices), ...]`` in sorted label order; one group ``"all"`` when ``groups`` is None."""
    if groups is None:
        return [("all", np.arange(n))]
    g = _as_labels(groups, n, "groups", "X")
    assert g is not None
    if g.dtype.kind == "f" and np.isnan(g).any():
        raise ValueError("groups contains NaN; give every sample a group label (or drop the unlabelled samples)")
    labels, inv = np.unique(g, return_inverse=True)
    out = []
    for i, lab in enumerate(labels):
        lab = lab.item() if isinstance(lab, np.generic) else lab
        if lab == POOLED:
            raise ValueError(f"a group may not be called {POOLED!r} (that name marks pooled rows); rename it")
        out.append((lab, np.flatnonzero(inv == i)))
    return out


def _inputs(X: Any, y: Any, groups: Any, l2: bool, pca: int | None, seed: int, name: str = "X"):
    A = _as_matrix(X, name, min_rows=3)
    t = _as_target(y, A.shape[0])
    if t.ndim != 1:
        raise ValueError(f"y must be 1-D (one value per sample); got shape {t.shape}")
    A = preprocess(A, l2=l2, pca=pca, seed=seed)
    parts = _groups(groups, A.shape[0])
    for lab, idx in parts:
        if t[idx].std() == 0:
            where = "" if groups is None else f" within group {lab!r}"
            raise ValueError(
                f"y is constant{where} ({idx.size} samples), so its spread cannot be compared; "
                "drop that group or pick a property that varies"
            )
    return A, t, parts


def _check_k(k: Any, parts: list[tuple[Any, np.ndarray]], low: int, grouped: bool) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"k must be an integer number of neighbours; got {k!r}")
    k = int(k)
    if k < low:
        raise ValueError(f"k must be at least {low}; got {k}")
    lab, idx = min(parts, key=lambda p: p[1].size)
    if k >= idx.size:
        where = f"group {lab!r} has" if grouped else "X has"
        raise ValueError(
            f"k={k} is too large: {where} only {idx.size} samples; use k <= {idx.size - 1}"
            + (" or drop that group" if grouped else "")
        )
    return k


def _weighted(values: Mapping[Any, float], sizes: Mapping[Any, int]) -> float:
    total = sum(sizes.values())
    return float(sum(values[g] * sizes[g] / total for g in values))


# --------------------------------------------------------------------------- kNN SD ratio
@dataclasses.dataclass(frozen=True)
class KnnSdTest:
    """The result of :func:`knn_sd_test`.

    Attributes
    ----------
    rows : list of dict
        One row per (group, k) and one pooled row per k (``group == POOLED``),
        with keys ``group``, ``k``, ``n`` (samples), ``ratio`` (observed kNN
        SD ratio; pooled: the size-weighted mean of the groups' ratios),
        ``null_mean`` (mean ratio over the permutations, ≈ 1 for a
        non-degenerate ``y``) and ``p`` (one-sided permutation p-value,
        ``(1 + #{null ≤ observed}) / (1 + permutations)``; small: neighbours
        agree on ``y`` more than chance).
    permutations : int
        Permutations of ``y`` (within each group) behind every p-value.
    """

    rows: list[dict[str, Any]]
    permutations: int

    def get(self, k: int, group: Any = POOLED) -> dict[str, Any]:
        """The row for one ``k`` and one group (default: the pooled row).

        Parameters
        ----------
        k : int
        group : label, optional
            A group label, or :data:`POOLED`.

        Returns
        -------
        dict
        """
        for row in self.rows:
            if row["k"] == k and row["group"] == group:
                return row
        ks = sorted({r["k"] for r in self.rows})
        groups = list(dict.fromkeys(r["group"] for r in self.rows))
        raise KeyError(f"no row for k={k!r}, group={group!r}; ks are {ks}, groups are {groups}")

    def ratio(self, k: int, group: Any = POOLED) -> float:
        """Observed kNN SD ratio for ``k`` in ``group`` (default pooled).

        Parameters
        ----------
        k : int
        group : label, optional

        Returns
        -------
        float
        """
        return float(self.get(k, group)["ratio"])

    def p(self, k: int, group: Any = POOLED) -> float:
        """Permutation p-value for ``k`` in ``group`` (default pooled).

        Parameters
        ----------
        k : int
        group : label, optional

        Returns
        -------
        float in (0, 1].
        """
        return float(self.get(k, group)["p"])

    def to_markdown(self) -> str:
        """The rows as a Markdown table.

        Returns
        -------
        str
        """
        return _markdown(self.rows, ["group", "k", "n", "ratio", "null_mean", "p"])


def _mean_local_sd(t: np.ndarray, nb: np.ndarray) -> np.ndarray:
    """Mean over points of the SD of ``t`` among each point's neighbours; ``t`` is (n,) or (P, n)."""
    return t[..., nb].std(axis=-1).mean(axis=-1)


def knn_sd_test(
    X: Any,
    y: Any,
    *,
    groups: Any = None,
    ks: Sequence[int] = (5, 10, 15),
    permutations: int = 1000,
    l2: bool = False,
    pca: int | None = None,
    seed: int = 0,
) -> KnnSdTest:
    """kNN SD ratio of ``y`` within each group, for each ``k``, with a permutation p-value.

    For every group (a genotype class, say) the neighbours of each sample are
    found among the samples of the same group in ``X`` (Euclidean, after
    :func:`preprocess` on all of ``X``). The ratio is
    :func:`~superwidgets.science.geometry.knn_sd_ratio` on the group: the mean
    SD of ``y`` among each sample's ``k`` neighbours ÷ the group's SD of ``y``.
    Lower means neighbours agree on ``y``; about 1 means the neighbourhoods
    ignore ``y``. The null shuffles ``y`` within each group (the neighbour
    graph stays fixed), so differences in ``y`` *between* groups never count.
    The pooled ratio is the size-weighted mean of the groups' ratios; its
    null uses the same shuffles, so its p-value is a stratified permutation test.

    Parameters
    ----------
    X : array-like (n, d)
        Representation, one row per sample.
    y : array-like (n,)
        Per-sample scalar (e.g. cell-death rate), finite.
    groups : array-like (n,), optional
        Group label per sample; None: all samples form one group ``"all"``.
    ks : sequence of int
        Neighbour counts; each between 2 and (smallest group size − 1).
    permutations : int
        Shuffles of ``y`` per group for the null (≥ 1). The smallest
        p-value reachable is ``1 / (1 + permutations)``.
    l2, pca, seed
        See :func:`preprocess`; ``seed`` also seeds the shuffles.

    Returns
    -------
    KnnSdTest
        ``rows`` (group, k, n, ratio, null_mean, p), plus ``ratio(k, group)``,
        ``p(k, group)`` and ``to_markdown()``.

    Raises
    ------
    ValueError
        Mismatched lengths, NaN/Inf, a ``k`` too large for a group, a group
        where ``y`` is constant, or ``permutations < 1``.

    Examples
    --------
    >>> res = knn_sd_test(cnn_features, death_rate, groups=genotype, ks=(10,))  # doctest: +SKIP
    >>> res.ratio(10), res.p(10)  # doctest: +SKIP
    (0.83, 0.001)
    """
    A, t, parts = _inputs(X, y, groups, l2, pca, seed)
    ks = [_check_k(k, parts, 2, groups is not None) for k in ks]
    if not ks:
        raise ValueError("ks is empty; give at least one neighbour count, e.g. ks=(10,)")
    if isinstance(permutations, bool) or not isinstance(permutations, (int, np.integer)) or permutations < 1:
        raise ValueError(f"permutations must be a positive integer (e.g. 1000); got {permutations!r}")
    P = int(permutations)
    rng = np.random.default_rng(seed)
    # one set of shuffles per group, shared by every k (the same null draws for all k)
    shuffles = {lab: rng.permuted(np.broadcast_to(t[idx], (P, idx.size)), axis=1) for lab, idx in parts}
    sizes = {lab: int(idx.size) for lab, idx in parts}
    rows: list[dict[str, Any]] = []
    for k in ks:
        obs: dict[Any, float] = {}
        nulls: dict[Any, np.ndarray] = {}
        for lab, idx in parts:
            Ag, tg = A[idx], t[idx]
            obs[lab] = knn_sd_ratio(Ag, tg, k=k)
            nb = _neighbours(Ag, k)
            step = max(1, _CHUNK // (idx.size * k))
            sd = tg.std()
            nulls[lab] = np.concatenate(
                [_mean_local_sd(shuffles[lab][i : i + step], nb) / sd for i in range(0, P, step)]
            )
            rows.append(_knn_row(lab, k, sizes[lab], obs[lab], nulls[lab]))
        pooled_null = sum(nulls[g] * sizes[g] for g in nulls) / sum(sizes.values())
        rows.append(_knn_row(POOLED, k, sum(sizes.values()), _weighted(obs, sizes), pooled_null))
    return KnnSdTest(rows=rows, permutations=P)


def _knn_row(group: Any, k: int, n: int, ratio: float, null: np.ndarray) -> dict[str, Any]:
    # a tiny tolerance so that shuffles reproducing the observed graph statistic count as ties
    p = (1 + int(np.sum(null <= ratio + 1e-12))) / (1 + null.size)
    return {"group": group, "k": k, "n": n, "ratio": float(ratio), "null_mean": float(null.mean()), "p": p}


# --------------------------------------------------------------------------- Moran's I
@dataclasses.dataclass(frozen=True)
class GroupScore:
    """A score computed within each group and pooled (size-weighted mean).

    Returned by :func:`morans_i` and :func:`ridge_r2_by_group`.

    Attributes
    ----------
    value : float
        Size-weighted mean of ``by_group`` (the pooled value).
    by_group : dict
        Group label → the score within that group.
    sizes : dict
        Group label → number of samples.
    expected : float
        The value expected with no relation between ``X`` and ``y``
        (Moran's I: the size-weighted mean of ``-1 / (n_g - 1)``; R²: 0).
    """

    value: float
    by_group: dict[Any, float]
    sizes: dict[Any, int]
    expected: float

    def __float__(self) -> float:
        return self.value


def _morans(A: np.ndarray, t: np.ndarray, k: int, ids: np.ndarray | None = None) -> float:
    """Global Moran's I with row-standardised kNN weights: ``Σ_i z_i · mean(z[nb_i]) / Σ_i z_i²``."""
    nb = _neighbours(A, k, ids)
    z = t - t.mean()
    den = float(z @ z)
    if den == 0:
        raise ValueError("y is constant in a (resampled) group, so Moran's I is undefined; use larger groups")
    return float(z @ z[nb].mean(axis=1) / den)


def morans_i(
    X: Any,
    y: Any,
    *,
    k: int = 10,
    groups: Any = None,
    l2: bool = False,
    pca: int | None = None,
    seed: int = 0,
) -> GroupScore:
    """Global Moran's I of ``y`` on the kNN graph of ``X``, within each group, pooled by size.

    ``I = (n / S0) Σ_ij w_ij z_i z_j / Σ_i z_i²`` with ``z = y − mean(y)`` in
    the group and row-standardised weights (``w_ij = 1/k`` when ``j`` is one
    of ``i``'s ``k`` nearest neighbours, else 0; ``S0 = n``): the correlation
    of each sample's ``y`` with its neighbours' mean ``y``, on the scale of
    the variance. About ``-1/(n-1)`` ≈ 0 when neighbourhoods ignore ``y``,
    near 1 when neighbours share ``y``, negative when they alternate.

    Parameters
    ----------
    X : array-like (n, d)
    y : array-like (n,)
    k : int
        Neighbours per sample (1 ≤ k < smallest group size).
    groups : array-like (n,), optional
        Group label per sample; each group gets its own graph and its own mean of ``y``.
    l2, pca, seed
        See :func:`preprocess`.

    Returns
    -------
    GroupScore
        ``value`` (pooled), ``by_group``, ``sizes``, ``expected``; ``float(result)`` is the pooled value.

    Raises
    ------
    ValueError
        Mismatched lengths, NaN/Inf, ``k`` too large, or a group where ``y`` is constant.

    Examples
    --------
    >>> morans_i(sae_codes, death_rate, k=10, groups=genotype).value  # doctest: +SKIP
    0.31
    """
    A, t, parts = _inputs(X, y, groups, l2, pca, seed)
    k = _check_k(k, parts, 1, groups is not None)
    by = {lab: _morans(A[idx], t[idx], k) for lab, idx in parts}
    sizes = {lab: int(idx.size) for lab, idx in parts}
    expected = _weighted({lab: -1.0 / (n - 1) for lab, n in sizes.items()}, sizes)
    return GroupScore(value=_weighted(by, sizes), by_group=by, sizes=sizes, expected=expected)


@dataclasses.dataclass(frozen=True)
class MoransIDifference:
    """The result of :func:`morans_i_difference`: ``I(a) − I(b)`` on the same samples, with a bootstrap CI.

    Attributes
    ----------
    difference : float
        Pooled ``I(X_a) − I(X_b)`` on the full data.
    i_a, i_b : float
        Pooled Moran's I of each representation on the full data.
    ci_low, ci_high : float
        Percentile bootstrap interval of the difference (level ``level``).
    level : float
        Coverage of the interval (default 0.95).
    samples : ndarray (n_boot,)
        Bootstrap differences.
    k : int
        Neighbours per sample.
    """

    difference: float
    i_a: float
    i_b: float
    ci_low: float
    ci_high: float
    level: float
    samples: np.ndarray
    k: int

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies entirely above or below 0 (the representations differ at this level)."""
        return bool(self.ci_low > 0 or self.ci_high < 0)


def morans_i_difference(
    X_a: Any,
    X_b: Any,
    y: Any,
    *,
    k: int = 10,
    groups: Any = None,
    n_boot: int = 1000,
    level: float = 0.95,
    l2: bool = False,
    pca: int | None = None,
    seed: int = 0,
) -> MoransIDifference:
    """Difference of Moran's I between two representations of the same samples, with a paired bootstrap CI.

    Each bootstrap draws samples with replacement (within each group, so group
    sizes stay fixed), rebuilds both kNN graphs on the *same* resample and
    recomputes ``I(a) − I(b)`` (pooled as in :func:`morans_i`). Copies of one
    sample drawn twice are never counted as each other's neighbours (they
    would share ``y`` exactly and inflate I). The interval is the percentile
    interval of the bootstrap differences. Preprocessing runs once, on each
    representation separately, before resampling.

    Parameters
    ----------
    X_a, X_b : array-like (n, d_a), (n, d_b)
        Two representations of the same ``n`` samples (e.g. CNN features and SAE codes), rows paired.
    y : array-like (n,)
    k : int
        Neighbours per sample.
    groups : array-like (n,), optional
    n_boot : int
        Bootstrap resamples (≥ 1; 1000 for a 95 % interval).
    level : float
        Coverage of the interval, in (0, 1).
    l2, pca, seed
        See :func:`preprocess`; ``seed`` also seeds the resampling.

    Returns
    -------
    MoransIDifference
        ``difference``, ``i_a``, ``i_b``, ``ci_low``, ``ci_high``, ``samples``; ``excludes_zero``.

    Raises
    ------
    ValueError
        Different numbers of rows in ``X_a`` and ``X_b``, mismatched ``y``,
        NaN/Inf, ``k`` too large, ``n_boot < 1`` or ``level`` outside (0, 1).

    Examples
    --------
    >>> d = morans_i_difference(sae_codes, cnn_features, death_rate, groups=genotype)  # doctest: +SKIP
    >>> d.difference, (d.ci_low, d.ci_high)  # doctest: +SKIP
    (0.12, (0.07, 0.17))
    """
    A = _as_matrix(X_a, "X_a", min_rows=3)
    B = _as_matrix(X_b, "X_b", min_rows=3)
    if A.shape[0] != B.shape[0]:
        raise ValueError(
            f"X_a and X_b must hold the same samples in the same order; got {A.shape[0]} and {B.shape[0]} rows"
        )
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer (e.g. 1000); got {n_boot!r}")
    if not 0 < float(level) < 1:
        raise ValueError(f"level must be in (0, 1), e.g. 0.95; got {level!r}")
    A, t, parts = _inputs(A, y, groups, l2, pca, seed, name="X_a")
    B = preprocess(B, l2=l2, pca=pca, seed=seed)
    k = _check_k(k, parts, 1, groups is not None)
    sizes = {lab: int(idx.size) for lab, idx in parts}

    def pooled(rows_by_group: dict[Any, np.ndarray], M: np.ndarray) -> float:
        return _weighted({lab: _morans(M[r], t[r], k, ids=r) for lab, r in rows_by_group.items()}, sizes)

    full = {lab: idx for lab, idx in parts}
    i_a, i_b = pooled(full, A), pooled(full, B)
    rng = np.random.default_rng(seed)
    samples = np.empty(int(n_boot))
    for b in range(int(n_boot)):
        draw = {lab: rng.choice(idx, size=idx.size, replace=True) for lab, idx in parts}
        samples[b] = pooled(draw, A) - pooled(draw, B)
    alpha = (1 - float(level)) / 2
    lo, hi = np.quantile(samples, [alpha, 1 - alpha])
    return MoransIDifference(
        difference=i_a - i_b,
        i_a=i_a,
        i_b=i_b,
        ci_low=float(lo),
        ci_high=float(hi),
        level=float(level),
        samples=samples,
        k=k,
    )


# --------------------------------------------------------------------------- ridge
def ridge_r2_by_group(
    X: Any,
    y: Any,
    *,
    groups: Any = None,
    cv: int = 5,
    l2: bool = False,
    pca: int | None = None,
    seed: int = 0,
) -> GroupScore:
    """Cross-validated ridge R² of ``y`` from ``X`` within each group, pooled by size.

    Each group is scored by :func:`~superwidgets.science.geometry.ridge_r2`
    (standardised features, penalty chosen inside the training folds, R²
    over all held-out predictions). A *global* linear read-out: it can stay
    high when large nuisance directions scramble the neighbourhoods, which is
    why the study reports it beside the kNN measures.

    Parameters
    ----------
    X : array-like (n, d)
    y : array-like (n,)
    groups : array-like (n,), optional
    cv : int
        Folds (2 ≤ cv ≤ smallest group size).
    l2, pca, seed
        See :func:`preprocess`; ``seed`` also shuffles the folds.

    Returns
    -------
    GroupScore
        ``value`` (pooled R², ≤ 1; 0 is the mean predictor), ``by_group``, ``sizes``, ``expected`` (0).

    Raises
    ------
    ValueError
        Mismatched lengths, NaN/Inf, a group smaller than ``cv``, or a group where ``y`` is constant.
    """
    A, t, parts = _inputs(X, y, groups, l2, pca, seed)
    lab, idx = min(parts, key=lambda p: p[1].size)
    if isinstance(cv, bool) or not isinstance(cv, (int, np.integer)) or not 2 <= cv <= idx.size:
        where = f"group {lab!r}" if groups is not None else "X"
        raise ValueError(f"cv must be an integer between 2 and the size of {where} ({idx.size}); got {cv!r}")
    by = {lab: ridge_r2(A[idx], t[idx], cv=int(cv), seed=seed) for lab, idx in parts}
    sizes = {lab: int(idx.size) for lab, idx in parts}
    return GroupScore(value=_weighted(by, sizes), by_group=by, sizes=sizes, expected=0.0)


# --------------------------------------------------------------------------- the report
_COLUMNS = ["representation", "metric", "group", "k", "n", "value", "p", "ci_low", "ci_high"]


@dataclasses.dataclass(frozen=True)
class ContaminationReport:
    """The result of :func:`contamination_report`: a tidy table plus the full results behind it.

    Attributes
    ----------
    rows : list of dict
        One row per (representation, metric, group, k) with keys
        ``representation``, ``metric`` (``"knn_sd_ratio"``, ``"morans_i"``,
        ``"ridge_r2"``), ``group`` (a label or :data:`POOLED`), ``k`` (None
        for R²), ``n``, ``value``, ``p`` (kNN rows only), ``ci_low`` /
        ``ci_high`` (pooled Moran's I difference rows only). Difference rows
        have ``representation == "A − B"`` (the first representation minus
        each other one) and ``value`` = value(A) − value(B).
    knn : dict
        Representation → :class:`KnnSdTest`.
    morans : dict
        Representation → :class:`GroupScore` of Moran's I.
    ridge : dict
        Representation → :class:`GroupScore` of ridge R².
    differences : dict
        ``"A − B"`` → :class:`MoransIDifference`.
    """

    rows: list[dict[str, Any]]
    knn: dict[str, KnnSdTest]
    morans: dict[str, GroupScore]
    ridge: dict[str, GroupScore]
    differences: dict[str, MoransIDifference]

    def value(self, representation: str, metric: str, group: Any = POOLED, k: int | None = None) -> dict[str, Any]:
        """The row for one representation (or ``"A − B"`` difference), metric, group and ``k``.

        Parameters
        ----------
        representation : str
        metric : {"knn_sd_ratio", "morans_i", "ridge_r2"}
        group : label, optional
            Default: the pooled row.
        k : int, optional
            Needed for ``knn_sd_ratio`` when several ``ks`` were run; ignored for ``ridge_r2``.

        Returns
        -------
        dict
        """
        hits = [
            r
            for r in self.rows
            if r["representation"] == representation
            and r["metric"] == metric
            and r["group"] == group
            and (k is None or r["k"] == k)
        ]
        if len(hits) != 1:
            reps = list(dict.fromkeys(r["representation"] for r in self.rows))
            raise KeyError(
                f"{len(hits)} rows match representation={representation!r}, metric={metric!r}, group={group!r}, "
                f"k={k!r}; representations are {reps}" + ("; pass k=" if len(hits) > 1 else "")
            )
        return hits[0]

    def to_markdown(self) -> str:
        """The table as GitHub-flavoured Markdown (numbers to 3 significant digits).

        Returns
        -------
        str
        """
        return _markdown(self.rows, _COLUMNS)

    def to_frame(self) -> Any:
        """The table as a :class:`pandas.DataFrame` (needs pandas).

        Returns
        -------
        pandas.DataFrame
        """
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("to_frame() needs pandas: pip install pandas (or use .rows / .to_markdown())") from None
        return pd.DataFrame(self.rows, columns=_COLUMNS)


def contamination_report(
    reps: Mapping[str, Any],
    y: Any,
    groups: Any = None,
    *,
    ks: Sequence[int] = (5, 10, 15),
    k_moran: int = 10,
    permutations: int = 1000,
    n_boot: int = 1000,
    cv: int = 5,
    l2: bool = False,
    pca: int | None = None,
    seed: int = 0,
) -> ContaminationReport:
    """Run the study's three locality measures on several representations of the same samples.

    For each representation: :func:`knn_sd_test` (every ``k`` in ``ks``),
    :func:`morans_i` (``k_moran``) and :func:`ridge_r2_by_group`, each within
    ``groups`` and pooled. With two or more representations, the first one
    (e.g. ``"cnn"``) minus each other one (e.g. ``"sae"``) is added for every
    row, and the pooled Moran's I difference gets a paired bootstrap CI
    (:func:`morans_i_difference`). For kNN SD ratio a *positive* difference
    means the first representation's neighbourhoods agree less on ``y``; for
    Moran's I and R² a *negative* one does.

    Parameters
    ----------
    reps : mapping of str to array-like (n, d_r)
        Named representations of the same ``n`` samples, rows paired (e.g. ``{"cnn": F, "sae": codes}``).
    y : array-like (n,)
    groups : array-like (n,), optional
    ks : sequence of int
        Neighbour counts for the kNN SD ratio.
    k_moran : int
        Neighbours for Moran's I.
    permutations : int
        Shuffles for the kNN p-values.
    n_boot : int
        Resamples for the Moran's I difference CI.
    cv : int
        Folds for ridge R².
    l2, pca, seed
        See :func:`preprocess` (applied to every representation separately).

    Returns
    -------
    ContaminationReport
        ``rows`` (tidy table), ``to_markdown()``, ``to_frame()`` (pandas), ``value(...)``,
        and the full per-measure results.

    Raises
    ------
    ValueError
        ``reps`` empty or not a mapping of names to arrays, representations with different numbers of rows,
        or anything the individual measures reject.

    Examples
    --------
    >>> rep = contamination_report({"cnn": F, "sae": codes}, death_rate, genotype)  # doctest: +SKIP
    >>> print(rep.to_markdown())  # doctest: +SKIP
    """
    if not isinstance(reps, Mapping) or not reps:
        raise ValueError('reps must be a non-empty dict of name -> array, e.g. {"cnn": F, "sae": codes}')
    mats = {str(name): _as_matrix(X, f"reps[{name!r}]", min_rows=3) for name, X in reps.items()}
    n_rows = {name: M.shape[0] for name, M in mats.items()}
    if len(set(n_rows.values())) > 1:
        raise ValueError(f"every representation must hold the same samples in the same order; got rows {n_rows}")
    knn, mor, rid, diffs = {}, {}, {}, {}
    rows: list[dict[str, Any]] = []
    for name, M in mats.items():
        pre = dict(l2=l2, pca=pca, seed=seed)
        knn[name] = knn_sd_test(M, y, groups=groups, ks=ks, permutations=permutations, **pre)
        mor[name] = morans_i(M, y, k=k_moran, groups=groups, **pre)
        rid[name] = ridge_r2_by_group(M, y, groups=groups, cv=cv, **pre)
        rows += _rep_rows(name, knn[name], mor[name], rid[name], k_moran)
    names = list(mats)
    first = names[0]
    for other in names[1:]:
        label = f"{first} − {other}"
        diffs[label] = morans_i_difference(
            mats[first], mats[other], y, k=k_moran, groups=groups, n_boot=n_boot, l2=l2, pca=pca, seed=seed
        )
        mine = [r for r in rows if r["representation"] == first]
        theirs = {(r["metric"], r["group"], r["k"]): r for r in rows if r["representation"] == other}
        for r in mine:
            o = theirs[(r["metric"], r["group"], r["k"])]
            row = dict(r, representation=label, value=r["value"] - o["value"], p=None)
            if r["metric"] == "morans_i" and r["group"] == POOLED:
                row.update(ci_low=diffs[label].ci_low, ci_high=diffs[label].ci_high)
            rows.append(row)
    return ContaminationReport(rows=rows, knn=knn, morans=mor, ridge=rid, differences=diffs)


def _rep_rows(name: str, knn: KnnSdTest, mor: GroupScore, rid: GroupScore, k_moran: int) -> list[dict[str, Any]]:
    blank = {"p": None, "ci_low": None, "ci_high": None}
    rows = [
        dict(blank, representation=name, metric="knn_sd_ratio", group=r["group"], k=r["k"], n=r["n"], value=r["ratio"])
        | {"p": r["p"]}
        for r in knn.rows
    ]
    total = sum(mor.sizes.values())
    for metric, score, k in (("morans_i", mor, k_moran), ("ridge_r2", rid, None)):
        for g, v in score.by_group.items():
            rows.append(dict(blank, representation=name, metric=metric, group=g, k=k, n=score.sizes[g], value=v))
        rows.append(dict(blank, representation=name, metric=metric, group=POOLED, k=k, n=total, value=score.value))
    return rows


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (float, np.floating)):
        return "nan" if math.isnan(v) else f"{v:.3g}"
    return str(v)


def _markdown(rows: list[dict[str, Any]], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- label transfer
def label_transfer_scores(
    coupling: Any,
    labels_a: Any = None,
    labels_b: Any = None,
    true_match: Any = None,
    *,
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """The study's label-transfer scores of a coupling between two sets of samples.

    A thin reader of :mod:`superwidgets.science.align`: one-to-one (argmax)
    and barycentric label transfer
    (:func:`~superwidgets.science.align.label_transfer_accuracy`) with the
    chance level beside them, and — when the true pairing is known (synthetic
    or paired data, for evaluation only) —
    :func:`~superwidgets.science.align.foscttm` and
    :func:`~superwidgets.science.align.recall_at_k`.

    Parameters
    ----------
    coupling : array-like (n_a, n_b) or Alignment
        A transport plan (e.g. ``gw_align(...).coupling``); an
        :class:`~superwidgets.science.align.Alignment` is read through its ``coupling``.
    labels_a, labels_b : array-like (n_a,), (n_b,), optional
        Labels of the rows and columns; both are needed for the transfer scores.
    true_match : array-like of int (n_a,), optional
        Column of each row's true partner (-1 for none).
    ks : sequence of int
        Cut-offs for recall@k.

    Returns
    -------
    dict
        ``label_transfer_argmax``, ``label_transfer_barycentric`` and
        ``chance`` (the share of the most common label of A, what always
        guessing it scores) when labels are given; ``foscttm`` (0 perfect,
        0.5 chance) and ``recall@k`` when ``true_match`` is given.

    Raises
    ------
    ValueError
        Only one of ``labels_a`` / ``labels_b`` given, neither labels nor
        ``true_match`` given, or shapes that do not fit the coupling.

    Examples
    --------
    >>> al = gw_align(cnn_features, expression)  # doctest: +SKIP
    >>> label_transfer_scores(al.coupling, genotype, genotype, true_match=np.arange(n))  # doctest: +SKIP
    {'label_transfer_argmax': 0.61, 'label_transfer_barycentric': 0.66, 'chance': 0.25, 'foscttm': 0.18, ...}
    """
    T = _as_coupling(getattr(coupling, "coupling", coupling))
    if (labels_a is None) != (labels_b is None):
        raise ValueError("label transfer needs both labels_a (rows) and labels_b (columns); pass both or neither")
    if labels_a is None and true_match is None:
        raise ValueError("nothing to score: pass labels_a and labels_b, or true_match, or both")
    out: dict[str, float] = {}
    if labels_a is not None:
        la = _as_labels(labels_a, T.shape[0], "labels_a", "the coupling's rows")
        assert la is not None
        for how in ("argmax", "barycentric"):
            out[f"label_transfer_{how}"] = label_transfer_accuracy(T, la, labels_b, how=how)
        out["chance"] = float(np.unique(la, return_counts=True)[1].max() / la.size)
    if true_match is not None:
        out["foscttm"] = foscttm(T, true_match)
        out.update({f"recall@{k}": v for k, v in recall_at_k(T, true_match, ks=ks).items()})
    return out
