"""Gromov–Wasserstein alignment of two representation spaces without paired samples (GW-map).

Two modalities of the same cells (say image embeddings and expression
profiles) live in different spaces with different dimensions, so their points
cannot be compared directly. Their *internal* geometries can: entropic
Gromov–Wasserstein optimal transport finds a soft matching (a coupling) that
maps points whose distances to everything else look alike, with no pairs
needed. :func:`gw_align` builds both distance matrices, normalises them,
subsamples large sets, and calls POT's solver
(:func:`ot.gromov.entropic_gromov_wasserstein`); the score functions read the
coupling: label transfer, FOSCTTM and recall@k (the last two need the true
pairing, known in synthetic worlds, for evaluation only).

Distance normalisation
----------------------
GW compares distances across spaces, so their units must agree. Each distance
matrix is divided by its own scale before solving:

* ``"mean"`` (default): by the mean off-diagonal distance, so a typical pair is
  at distance 1 in both spaces. Robust to a few outliers, and ``epsilon``
  keeps the same meaning across data sets.
* ``"max"``: by the largest distance (all distances in [0, 1]; one outlier
  shrinks everything else).
* ``"median"``: by the median off-diagonal distance.
* ``None``: raw distances (only when both spaces share units).

The entropic regulariser ``epsilon`` is in these normalised units: smaller is
sharper (closer to a one-to-one matching) but slower and, below about 1e-3
with ``"mean"``, numerically unstable; larger blurs the coupling over
neighbours (often better for label transfer on noisy data).
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .geometry import _as_matrix

__all__ = [
    "Alignment",
    "distances",
    "foscttm",
    "gw_align",
    "label_confusion",
    "label_transfer_accuracy",
    "recall_at_k",
    "score",
    "transfer_labels",
]

METRICS = ("euclidean", "sqeuclidean", "cosine", "correlation", "geodesic")
NORMALIZE = ("mean", "max", "median", None)
_HOW = ("argmax", "barycentric")


@dataclasses.dataclass
class Alignment:
    """The result of :func:`gw_align`.

    Attributes
    ----------
    coupling : ndarray (n_a, n_b)
        Transport plan between the aligned points (rows: set A, columns: set
        B, in the order of ``index_a`` / ``index_b``); sums to 1, each row to
        ``1 / n_a`` and each column to ``1 / n_b``.
    index_a, index_b : ndarray of int
        Rows of the original ``X_a`` / ``X_b`` that were aligned (all rows,
        in order, unless subsampled by ``max_points``).
    gw_cost : float
        The Gromov–Wasserstein loss of the coupling (square loss, on the
        normalised distances).
    converged : bool
        Whether the outer iteration met its tolerance before ``max_iter``.
    n_iter : int
        Outer (projected gradient) iterations run.
    err : float
        Last change of the coupling, ``‖T − T_prev‖_F`` (checked every 10 iterations).
    marginal_error : float
        Largest deviation of a row or column sum from its target mass,
        relative to that mass (0 for an exact coupling).
    epsilon, metric, normalize : float, str, str or None
        Settings used.
    scale_a, scale_b : float
        What each distance matrix was divided by.
    seconds : float
        Wall time of the solve (distances included).
    labels_a, labels_b : ndarray or None
        Labels of the aligned points (subsampled like the points).
    scores : dict
        ``label_transfer_argmax``, ``label_transfer_barycentric`` when labels
        were given; ``foscttm``, ``recall@k`` when ``true_match`` was given.
    warnings : list of str
        Distinct solver warnings (e.g. an inner Sinkhorn loop that hit its cap).
    """

    coupling: np.ndarray
    index_a: np.ndarray
    index_b: np.ndarray
    gw_cost: float
    converged: bool
    n_iter: int
    err: float
    marginal_error: float
    epsilon: float
    metric: str
    normalize: str | None
    scale_a: float
    scale_b: float
    seconds: float
    labels_a: np.ndarray | None = None
    labels_b: np.ndarray | None = None
    scores: dict[str, float] = dataclasses.field(default_factory=dict)
    warnings: list[str] = dataclasses.field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_a, n_b)`` of the coupling."""
        return (int(self.coupling.shape[0]), int(self.coupling.shape[1]))

    def match(self) -> np.ndarray:
        """For each aligned A point, the position (in ``index_b``) of the B point it sends most mass to.

        Returns
        -------
        ndarray of int (n_a,)
        """
        return np.asarray(self.coupling.argmax(axis=1))

    def transfer_labels(self, how: str = "argmax") -> np.ndarray:
        """Labels of B carried over to each aligned A point (see :func:`transfer_labels`).

        Parameters
        ----------
        how : {"argmax", "barycentric"}

        Returns
        -------
        ndarray (n_a,)
        """
        if self.labels_b is None:
            raise ValueError("this alignment has no labels_b; pass labels_b= to gw_align")
        return transfer_labels(self.coupling, self.labels_b, how=how)

    def __repr__(self) -> str:
        scores = ", ".join(f"{k}={v:.3f}" for k, v in self.scores.items())
        state = "converged" if self.converged else "not converged"
        return (
            f"Alignment({self.shape[0]}×{self.shape[1]}, gw_cost={self.gw_cost:.4g}, {state} in {self.n_iter} it, "
            f"{self.seconds:.2f} s{', ' + scores if scores else ''})"
        )


# --------------------------------------------------------------------------- input checks
def _as_labels(labels: Any, n: int, name: str, points: str) -> np.ndarray | None:
    if labels is None:
        return None
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one label per point); got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} labels but {points} has {n} points; pass one label per point")
    return arr


def _as_coupling(coupling: Any) -> np.ndarray:
    T = np.asarray(coupling, dtype=np.float64)
    if T.ndim != 2 or 0 in T.shape:
        raise ValueError(f"coupling must be a non-empty 2-D array (n_a, n_b); got shape {T.shape}")
    if not np.isfinite(T).all():
        raise ValueError("coupling contains NaN or Inf; the solver failed (try a larger epsilon)")
    return T


def _check_kwargs(fn: str, extra: dict[str, Any], valid: Sequence[str]) -> None:
    if extra:
        raise TypeError(
            f"{fn}() got unexpected keyword argument(s) {sorted(extra)}; valid ones are: {', '.join(valid)}"
        )


# --------------------------------------------------------------------------- distances
def distances(X: np.ndarray, metric: str = "euclidean", n_neighbors: int = 10) -> np.ndarray:
    """Pairwise distances within one point set.

    Parameters
    ----------
    X : ndarray (n, d)
    metric : {"euclidean", "sqeuclidean", "cosine", "correlation", "geodesic"}
        ``"geodesic"``: shortest-path lengths on the symmetric ``n_neighbors``
        nearest-neighbour graph (Euclidean edge lengths), which follows a
        curved manifold instead of cutting across it; disconnected pieces are
        joined at the largest finite path length.
    n_neighbors : int
        Graph degree for ``"geodesic"``.

    Returns
    -------
    ndarray (n, n), symmetric with a zero diagonal.
    """
    from scipy.spatial.distance import cdist

    if metric == "geodesic":
        from scipy.sparse.csgraph import shortest_path
        from sklearn.neighbors import kneighbors_graph

        k = max(1, min(int(n_neighbors), X.shape[0] - 1))
        G = kneighbors_graph(X, k, mode="distance")
        G = G.maximum(G.T)
        D = shortest_path(G, method="D", directed=False)
        finite = np.isfinite(D)
        if not finite.all():
            D[~finite] = D[finite].max() if finite.any() else 1.0
        return D
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of {METRICS}")
    if metric in ("cosine", "correlation"):
        centred = X - X.mean(1, keepdims=True) if metric == "correlation" else X
        if (np.linalg.norm(centred, axis=1) == 0).any():
            raise ValueError(
                f"metric {metric!r} is undefined for points with zero norm (after centring); use 'euclidean'"
            )
    D = cdist(X, X, metric=metric)
    D = 0.5 * (D + D.T)
    np.fill_diagonal(D, 0.0)
    return np.maximum(D, 0.0)


def _scale(D: np.ndarray, normalize: str | None) -> float:
    if normalize is None:
        return 1.0
    off = D[~np.eye(D.shape[0], dtype=bool)]
    s = float({"mean": off.mean, "max": off.max, "median": lambda: np.median(off)}[normalize]())
    if not s > 0:
        raise ValueError("all points of one set coincide (every distance is 0); there is no geometry to align")
    return s


# --------------------------------------------------------------------------- alignment
_GW_ARGS = (
    "labels_a",
    "labels_b",
    "epsilon",
    "metric",
    "normalize",
    "max_points",
    "seed",
    "true_match",
    "max_iter",
    "tol",
    "n_neighbors",
    "n_components",
    "sinkhorn_iter",
    "start",
)


def gw_align(
    X_a: Any,
    X_b: Any,
    *,
    labels_a: Any = None,
    labels_b: Any = None,
    epsilon: float = 5e-3,
    metric: str = "euclidean",
    normalize: str | None = "mean",
    max_points: int | None = 2000,
    seed: int = 0,
    true_match: Any = None,
    max_iter: int = 300,
    tol: float = 1e-3,
    n_neighbors: int = 10,
    n_components: int | None = None,
    sinkhorn_iter: int = 100,
    start: int | None = None,
    **extra: Any,
) -> Alignment:
    """Align two point sets by entropic Gromov–Wasserstein transport of their distance matrices.

    Parameters
    ----------
    X_a, X_b : array-like (n_a, d_a), (n_b, d_b)
        The two representations (numpy arrays or tensors). Dimensions may differ;
        no pairing is used.
    labels_a, labels_b : array-like (n_a,), (n_b,), optional
        Labels (e.g. cell type, disease) for scoring label transfer. Never used to align.
    epsilon : float
        Entropic regularisation in normalised distance units (see module docs). Default 5e-3.
    metric : {"euclidean", "sqeuclidean", "cosine", "correlation", "geodesic"}
        Distance within each space. Default ``"euclidean"``.
    normalize : {"mean", "max", "median", None}
        What each distance matrix is divided by. Default ``"mean"``.
    max_points : int or None
        Larger sets are subsampled uniformly at random (``seed``) to this many
        points; GW needs O(n²) memory and O(n³) time per iteration. ``None``
        keeps all points. Default 2000 (about 20 s on 2 CPU cores).
    seed : int
        Seed of the subsampling.
    true_match : array-like of int (n_a,), optional
        For evaluation only: ``true_match[i]`` is the row of ``X_b`` that is
        the same cell as row ``i`` of ``X_a`` (-1 for none). Adds ``foscttm``
        and ``recall@1/5/10`` to ``scores``. When both sets are subsampled and
        have equal size, the same rows are kept in both where the match is the
        identity.
    max_iter : int
        Cap on outer iterations. Default 300.
    tol : float
        Stop when the coupling changes by less than ``tol`` times the norm of
        the uniform coupling (``1/sqrt(n_a n_b)``) between checks. Default 1e-3.
    n_neighbors : int
        Graph degree for ``metric="geodesic"``.
    n_components : int, optional
        Reduce each set to this many principal components first (e.g. for
        expression profiles with many noisy genes).
    sinkhorn_iter : int
        Cap on inner Sinkhorn iterations per outer step (warm-started, so a
        few dozen are usually enough). Default 100.
    start : int or None
        Starting coupling of the solver: ``None`` (default) is POT's product of the
        marginals; an integer seeds a random, peaked coupling balanced to the marginals, to
        probe how much the result depends on the start (GW is non-convex).

    Returns
    -------
    Alignment

    Raises
    ------
    ValueError
        Empty, 1-D or non-finite inputs, label counts that do not match,
        unknown metric or normalisation, a non-positive ``epsilon``, or a
        solver that failed numerically (then: increase ``epsilon``).
    TypeError
        An unknown keyword argument (the message lists the valid ones).

    Examples
    --------
    >>> al = gw_align(image_codes, expression, labels_a=disease, labels_b=disease)  # doctest: +SKIP
    >>> al.scores["label_transfer_argmax"]  # doctest: +SKIP
    """
    _check_kwargs("gw_align", extra, _GW_ARGS)
    import ot

    A = _as_matrix(X_a, "X_a")
    B = _as_matrix(X_b, "X_b")
    la = _as_labels(labels_a, A.shape[0], "labels_a", "X_a")
    lb = _as_labels(labels_b, B.shape[0], "labels_b", "X_b")
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of {METRICS}")
    if normalize not in NORMALIZE:
        raise ValueError(f"unknown normalize {normalize!r}; use one of {NORMALIZE}")
    if not (isinstance(epsilon, (int, float)) and np.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"epsilon must be a positive number (try 5e-3); got {epsilon!r}")
    if max_points is not None and int(max_points) < 2:
        raise ValueError(f"max_points must be at least 2 (or None); got {max_points}")
    if int(max_iter) < 1 or not tol > 0 or int(sinkhorn_iter) < 1:
        raise ValueError("max_iter and sinkhorn_iter must be >= 1 and tol > 0")
    tm = None
    if true_match is not None:
        tm = np.asarray(true_match)
        if tm.ndim != 1 or tm.shape[0] != A.shape[0] or tm.dtype.kind not in "iu":
            raise ValueError(f"true_match must be {A.shape[0]} integer indices into X_b (-1 for none); got {tm.shape}")
        if (tm >= B.shape[0]).any() or (tm < -1).any():
            raise ValueError(f"true_match holds indices outside 0..{B.shape[0] - 1}")

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    ia = _subsample(A.shape[0], max_points, rng)
    if tm is not None and np.array_equal(tm, np.arange(A.shape[0])) and A.shape[0] == B.shape[0]:
        ib = ia.copy()  # paired sets: keep the same cells in both
    else:
        ib = _subsample(B.shape[0], max_points, rng)
    A, B = A[ia], B[ib]
    if n_components is not None:
        A, B = _pca(A, int(n_components)), _pca(B, int(n_components))
    Da = distances(A, metric, n_neighbors)
    Db = distances(B, metric, n_neighbors)
    sa, sb = _scale(Da, normalize), _scale(Db, normalize)
    Da /= sa
    Db /= sb
    n_a, n_b = Da.shape[0], Db.shape[0]
    abs_tol = float(tol) / np.sqrt(n_a * n_b)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        T, log = ot.gromov.entropic_gromov_wasserstein(
            Da,
            Db,
            loss_fun="square_loss",
            epsilon=float(epsilon),
            symmetric=True,
            max_iter=int(max_iter),
            tol=abs_tol,
            warmstart=True,
            log=True,
            numItermax=int(sinkhorn_iter),
            stopThr=1e-6,
            G0=None if start is None else _random_coupling(Da.shape[0], Db.shape[0], int(start)),
        )
    seconds = time.perf_counter() - t0
    T = np.asarray(T, dtype=np.float64)
    errs = [float(e) for e in log.get("err", [])]
    converged = bool(errs) and bool(errs[-1] <= abs_tol)
    n_iter = 10 * (len(errs) - 1) + 1 if converged else int(max_iter)
    msgs = sorted({str(w.message).split(".")[0] for w in caught})
    marg = _marginal_error(T)
    dead = not np.isfinite(T).all() or (T.sum(1) <= 0).any() or (T.sum(0) <= 0).any()
    if not dead and marg > 1e-3:
        # the last inner Sinkhorn stopped at its cap: balance the plan's marginals (a Sinkhorn on T itself)
        msgs.append(f"coupling marginals were off by {marg:.1%} after the last step; re-balanced")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            T = ot.sinkhorn(
                np.full(n_a, 1 / n_a),
                np.full(n_b, 1 / n_b),
                -np.log(np.maximum(T, 1e-300)),
                1.0,
                numItermax=1000,
                stopThr=1e-9,
            )
        marg = _marginal_error(T)
        dead = not np.isfinite(T).all()
    if dead or marg > 0.05:
        raise ValueError(
            f"the GW solver failed numerically at epsilon={epsilon:g} (coupling marginals off by {marg:.0%}); "
            f"increase epsilon (e.g. to {2 * float(epsilon):g}) or use normalize='mean'"
        )
    al = Alignment(
        coupling=T,
        index_a=ia,
        index_b=ib,
        gw_cost=float(log.get("gw_dist", np.nan)),
        converged=converged,
        n_iter=n_iter,
        err=errs[-1] if errs else float("nan"),
        marginal_error=marg,
        epsilon=float(epsilon),
        metric=metric,
        normalize=normalize,
        scale_a=sa,
        scale_b=sb,
        seconds=seconds,
        labels_a=None if la is None else la[ia],
        labels_b=None if lb is None else lb[ib],
        warnings=msgs,
    )
    al.scores = score(al, true_match=None if tm is None else _remap_match(tm, ia, ib))
    return al


def score(alignment: Alignment, true_match: Any = None, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """All scores an alignment supports.

    Parameters
    ----------
    alignment : Alignment
    true_match : array-like of int (n_a,), optional
        Positions in the *aligned* B set (not the original rows) of each aligned A point's partner, -1 for none.
    ks : sequence of int
        Cut-offs for recall@k.

    Returns
    -------
    dict
        ``label_transfer_argmax``, ``label_transfer_barycentric`` (labels on
        both sides), ``foscttm`` and ``recall@k`` (``true_match`` given).
    """
    out: dict[str, float] = {}
    if alignment.labels_a is not None and alignment.labels_b is not None:
        for how in _HOW:
            out[f"label_transfer_{how}"] = label_transfer_accuracy(
                alignment.coupling, alignment.labels_a, alignment.labels_b, how=how
            )
    if true_match is not None:
        out["foscttm"] = foscttm(alignment.coupling, true_match)
        out.update({f"recall@{k}": v for k, v in recall_at_k(alignment.coupling, true_match, ks=ks).items()})
    return out


def _random_coupling(n_a: int, n_b: int, seed: int) -> np.ndarray:
    """A random, peaked coupling with uniform marginals: ``exp(U / 0.05)`` (U uniform), balanced by Sinkhorn.

    Peaked so that different seeds start the solver in different basins (a near-uniform start
    behaves like the product coupling).
    """
    u = np.random.default_rng(seed).random((n_a, n_b))
    T = np.exp((u - 1.0) / 0.05)
    for _ in range(200):
        T *= (1 / n_a) / T.sum(1, keepdims=True)
        T *= (1 / n_b) / T.sum(0, keepdims=True)
    return T


def _subsample(n: int, max_points: int | None, rng: np.random.Generator) -> np.ndarray:
    if max_points is None or n <= int(max_points):
        return np.arange(n)
    return np.sort(rng.choice(n, size=int(max_points), replace=False))


def _remap_match(tm: np.ndarray, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """Original-row true matches → positions within the subsampled B set (-1 where the partner was dropped)."""
    pos = np.full(int(max(ib.max(), tm.max(initial=0))) + 1, -1, dtype=np.int64)
    pos[ib] = np.arange(ib.size)
    sub = tm[ia]
    return np.where(sub >= 0, pos[np.clip(sub, 0, None)], -1)


def _pca(X: np.ndarray, k: int) -> np.ndarray:
    if k < 1:
        raise ValueError(f"n_components must be >= 1; got {k}")
    Xc = X - X.mean(0)
    U, S, _ = np.linalg.svd(Xc, full_matrices=False)
    k = min(k, S.size)
    return U[:, :k] * S[:k]


def _marginal_error(T: np.ndarray) -> float:
    if not np.isfinite(T).all():
        return float("inf")
    n_a, n_b = T.shape
    r = np.abs(T.sum(1) * n_a - 1).max()
    c = np.abs(T.sum(0) * n_b - 1).max()
    return float(max(r, c))


# --------------------------------------------------------------------------- scores
def transfer_labels(coupling: Any, labels_b: Any, how: str = "argmax") -> np.ndarray:
    """Carry B's labels over to A through a coupling.

    Parameters
    ----------
    coupling : array-like (n_a, n_b)
    labels_b : array-like (n_b,)
    how : {"argmax", "barycentric"}
        ``"argmax"``: the label of the single B point that receives the most
        mass. ``"barycentric"``: the label receiving the most mass in total
        (a mass-weighted vote over all coupled B points; more robust when the
        coupling is blurred).

    Returns
    -------
    ndarray (n_a,) of labels (same dtype as ``labels_b``).
    """
    T = _as_coupling(coupling)
    lb = _as_labels(labels_b, T.shape[1], "labels_b", "the coupling's columns")
    assert lb is not None
    if how == "argmax":
        return lb[T.argmax(axis=1)]
    if how == "barycentric":
        classes, codes = np.unique(lb, return_inverse=True)
        onehot = np.zeros((lb.size, classes.size))
        onehot[np.arange(lb.size), codes] = 1.0
        return classes[(T @ onehot).argmax(axis=1)]
    raise ValueError(f"how must be one of {_HOW}; got {how!r}")


def label_transfer_accuracy(coupling: Any, labels_a: Any, labels_b: Any, how: str = "argmax") -> float:
    """Fraction of A points whose label, transferred from B through the coupling, is their own.

    Parameters
    ----------
    coupling : array-like (n_a, n_b)
    labels_a : array-like (n_a,)
    labels_b : array-like (n_b,)
    how : {"argmax", "barycentric"}
        See :func:`transfer_labels`.

    Returns
    -------
    float in [0, 1]. Chance level is the share of the most common label,
    not 0.5; compare with ``max(np.bincount(labels)) / n``.
    """
    T = _as_coupling(coupling)
    la = _as_labels(labels_a, T.shape[0], "labels_a", "the coupling's rows")
    pred = transfer_labels(T, labels_b, how=how)
    return float(np.mean(pred == la))


def label_confusion(coupling: Any, labels_a: Any, labels_b: Any, how: str = "argmax") -> tuple[np.ndarray, np.ndarray]:
    """Confusion matrix of label transfer: true A label (rows) × label transferred from B (columns).

    Parameters
    ----------
    coupling : array-like (n_a, n_b)
    labels_a, labels_b : array-like (n_a,), (n_b,)
    how : {"argmax", "barycentric"}

    Returns
    -------
    classes : ndarray
        Sorted union of the labels on both sides (row and column order).
    counts : ndarray of int (n_classes, n_classes)
    """
    T = _as_coupling(coupling)
    la = _as_labels(labels_a, T.shape[0], "labels_a", "the coupling's rows")
    assert la is not None
    pred = transfer_labels(T, labels_b, how=how)
    classes = np.unique(np.concatenate([la, np.asarray(labels_b)]))
    ia = np.searchsorted(classes, la)
    ip = np.searchsorted(classes, pred)
    counts = np.zeros((classes.size, classes.size), dtype=np.int64)
    np.add.at(counts, (ia, ip), 1)
    return classes, counts


def _check_match(T: np.ndarray, true_match: Any) -> np.ndarray:
    if true_match is None:
        if T.shape[0] != T.shape[1]:
            raise ValueError(f"without true_match the pairing is the identity, which needs n_a == n_b; got {T.shape}")
        return np.arange(T.shape[0])
    tm = np.asarray(true_match)
    if tm.ndim != 1 or tm.shape[0] != T.shape[0] or tm.dtype.kind not in "iu":
        raise ValueError(f"true_match must hold {T.shape[0]} integer column indices (-1 for none); got {tm.shape}")
    if (tm >= T.shape[1]).any() or (tm < -1).any():
        raise ValueError(f"true_match holds indices outside 0..{T.shape[1] - 1} (or -1 for none)")
    if not (tm >= 0).any():
        raise ValueError("true_match has no pairs (every entry is -1)")
    return tm


def foscttm(coupling: Any, true_match: Any = None) -> float:
    """Fraction of samples closer than the true match (lower is better; 0 = perfect, 0.5 = chance).

    For each A point ``i`` with a partner ``j* = true_match[i]``, the share of
    B points that the coupling ranks above the partner (receive strictly more
    of ``i``'s mass than ``j*``); ties count half. When the pairing is
    one-to-one (a permutation, e.g. the identity), the B → A direction
    (columns) is averaged in, as in SCOT.

    Parameters
    ----------
    coupling : array-like (n_a, n_b)
    true_match : array-like of int (n_a,), optional
        Column of each row's partner, -1 for none. Default: the identity (needs ``n_a == n_b``).

    Returns
    -------
    float in [0, 1].
    """
    T = _as_coupling(coupling)
    tm = _check_match(T, true_match)
    rows = np.flatnonzero(tm >= 0)

    def frac(M: np.ndarray, r: np.ndarray, c: np.ndarray) -> np.ndarray:
        ref = M[r, c][:, None]
        sub = M[r]
        n_other = M.shape[1] - 1
        closer = (sub > ref).sum(1) + 0.5 * ((sub == ref).sum(1) - 1)
        return closer / max(n_other, 1)

    parts = [frac(T, rows, tm[rows])]
    if T.shape[0] == T.shape[1] and rows.size == T.shape[0] and np.unique(tm).size == tm.size:
        inv = np.empty_like(tm)
        inv[tm] = np.arange(tm.size)
        parts.append(frac(T.T, np.arange(T.shape[1]), inv))
    return float(np.mean(np.concatenate(parts)))


def recall_at_k(coupling: Any, true_match: Any = None, ks: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
    """Share of A points whose true partner is among the ``k`` B points they send the most mass to.

    Parameters
    ----------
    coupling : array-like (n_a, n_b)
    true_match : array-like of int (n_a,), optional
        Column of each row's partner, -1 for none (those rows are skipped). Default: the identity.
    ks : sequence of int
        Cut-offs (each ≥ 1).

    Returns
    -------
    dict ``{k: recall}``.
    """
    T = _as_coupling(coupling)
    tm = _check_match(T, true_match)
    ks = [int(k) for k in ks]
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive integers; got {ks}")
    rows = np.flatnonzero(tm >= 0)
    ref = T[rows, tm[rows]][:, None]
    rank = (T[rows] > ref).sum(1)  # 0 = the partner receives the most mass
    return {k: float(np.mean(rank < k)) for k in ks}
