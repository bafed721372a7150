"""The patient-neuron study's five claims, tested on one encoder and one SAE (arXiv 2606.31394).

:func:`study_claims` takes, for the same held-out cells, an encoder's pooled features (the
"CNN" representation), an SAE's codes of those features, each cell's death rate and genotype,
and the cells' expression counts, and returns every number behind claims (a)–(d) of
``docs/study.md`` with a verdict for each; claim (e) compares the gaps of two encoders
(:func:`gap_shrinks`). It only composes :mod:`.study` (kNN SD ratio with permutations, Moran's I
with a paired bootstrap, ridge R²) and :mod:`.align` (GW-map and label transfer); the
experiment over seeds is ``scripts/study_experiment.py``.

The claims, as the study states them, each within genotype:

(a) the SAE codes have a lower kNN SD ratio of the death rate than the CNN features
    (in every genotype, at every ``k``) and their ratio is below chance (permutation p < 0.05);
(b) they have a higher Moran's I of the death rate (paired bootstrap interval of
    I(SAE) − I(CNN) above 0);
(c) their ridge R² of the death rate is at least as high;
(d) Gromov–Wasserstein transport from them to the expression profiles transfers genotype
    labels better (one-to-one and barycentric) than transport from the CNN features;
(e) the gap of (a)–(d) shrinks for a wider (less superposed) encoder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import study
from .align import gw_align

__all__ = ["CLAIMS", "ClaimResult", "expression_pcs", "gap_shrinks", "study_claims"]

#: The claims (a)–(d) that :func:`study_claims` judges, in order.
CLAIMS = ("a_knn_sd_ratio", "b_morans_i", "c_ridge_r2", "d_gw_label_transfer")


@dataclasses.dataclass
class ClaimResult:
    """Every number of :func:`study_claims` for one representation pair.

    Attributes
    ----------
    values : dict
        Flat ``name → float`` of every measured number (e.g. ``knn_cnn_k10_LRRK2``,
        ``moran_diff``, ``moran_ci_low``, ``r2_sae``, ``lt_argmax_cnn``).
    holds : dict
        Claim name (:data:`CLAIMS`) → whether it holds on these data.
    settings : dict
        The settings used (``ks``, ``k_moran``, ``permutations``, ``n_boot``, ``l2``, ``gw_points``).
    """

    values: dict[str, float]
    holds: dict[str, bool]
    settings: dict[str, Any]

    def row(self) -> dict[str, Any]:
        """One flat dict: the values and the verdicts (``holds_<claim>``)."""
        return {**self.values, **{f"holds_{c}": v for c, v in self.holds.items()}}


def expression_pcs(counts: Any, *, n_pcs: int = 30, seed: int = 0) -> np.ndarray:
    """Counts → the usual single-cell representation: CP10k, log1p, standardised genes, PCA.

    Parameters
    ----------
    counts : array (cells, genes)
        Raw counts (non-negative).
    n_pcs : int
        Principal components kept.
    seed : int
        PCA's random state.

    Returns
    -------
    ndarray (cells, n_pcs), float64.
    """
    from sklearn.decomposition import PCA

    C = np.asarray(counts, dtype=np.float64)
    if C.ndim != 2 or (C < 0).any() or not np.isfinite(C).all():
        raise ValueError("counts must be a finite, non-negative (cells, genes) array")
    lib = C.sum(1, keepdims=True)
    X = np.log1p(1e4 * C / np.maximum(lib, 1))
    sd = X.std(0)
    X = (X - X.mean(0)) / np.where(sd > 0, sd, 1)
    n = int(min(n_pcs, *X.shape))
    return PCA(n_components=n, random_state=seed).fit_transform(X)


def study_claims(
    cnn: Any,
    sae: Any,
    death: Any,
    genotype: Any,
    expression: Any,
    *,
    ks: Sequence[int] = (5, 10, 15),
    k_moran: int = 10,
    permutations: int = 1000,
    n_boot: int = 1000,
    l2: bool = True,
    gw_points: int = 500,
    epsilon: float = 5e-3,
    seed: int = 0,
) -> ClaimResult:
    """Test claims (a)–(d) of the study on one encoder's features and one SAE's codes.

    Parameters
    ----------
    cnn : array (n, d)
        The encoder's pooled features of ``n`` cells.
    sae : array (n, m)
        The SAE codes of the same features (same rows).
    death : array (n,)
        Each cell's death rate (its well's, as measured).
    genotype : array (n,)
        Genotype labels: every locality measure is computed within genotype.
    expression : array (n, p)
        The same cells' expression representation (e.g. :func:`expression_pcs` of their
        counts). GW-map never sees which row pairs with which; the pairing is only used to
        score FOSCTTM.
    ks : sequence of int
        Neighbour counts of the kNN SD ratio.
    k_moran : int
        Neighbours of Moran's I.
    permutations, n_boot : int
        Permutations of the kNN test, bootstrap resamples of the Moran's I difference.
    l2 : bool
        L2-normalise each representation's rows first (the study's ``--gap_l2_norm``).
    gw_points : int
        Cells aligned by GW-map (a seeded subsample of both sides, the same cells).
    epsilon : float
        Entropic regularisation of GW-map.
    seed : int
        Seeds the permutations, bootstrap and subsample.

    Returns
    -------
    ClaimResult
    """
    X_c = np.asarray(cnn, dtype=np.float64)
    X_s = np.asarray(sae, dtype=np.float64)
    y = np.asarray(death, dtype=np.float64)
    g = np.asarray(genotype)
    E = np.asarray(expression, dtype=np.float64)
    n = len(y)
    if not (len(X_c) == len(X_s) == len(g) == len(E) == n):
        raise ValueError(
            f"cnn, sae, death, genotype and expression must have one row per cell; got "
            f"{len(X_c)}, {len(X_s)}, {n}, {len(g)}, {len(E)}"
        )
    ks = tuple(int(k) for k in ks)
    v: dict[str, float] = {}
    kw = {"l2": l2, "seed": seed}

    # (a) kNN SD ratio within genotype, with permutation p-values
    knn = {
        name: study.knn_sd_test(X, y, groups=g, ks=ks, permutations=permutations, **kw)
        for name, X in (("cnn", X_c), ("sae", X_s))
    }
    labels = [str(x) for x in np.unique(g)]
    a_lower, a_sig = True, True
    for k in ks:
        for grp in [*np.unique(g), study.POOLED]:
            tag = str(grp) if grp is not study.POOLED else "pooled"
            for name in ("cnn", "sae"):
                v[f"knn_{name}_k{k}_{tag}"] = knn[name].ratio(k, group=grp)
                v[f"knn_p_{name}_k{k}_{tag}"] = knn[name].p(k, group=grp)
            if grp is not study.POOLED:
                a_lower &= v[f"knn_sae_k{k}_{tag}"] < v[f"knn_cnn_k{k}_{tag}"]
                a_sig &= v[f"knn_p_sae_k{k}_{tag}"] < 0.05

    # (b) Moran's I, paired bootstrap of the difference SAE − CNN
    d = study.morans_i_difference(X_s, X_c, y, k=k_moran, groups=g, n_boot=n_boot, **kw)
    v.update(moran_sae=d.i_a, moran_cnn=d.i_b, moran_diff=d.difference, moran_ci_low=d.ci_low, moran_ci_high=d.ci_high)

    # (c) ridge R² within genotype
    r2 = {name: study.ridge_r2_by_group(X, y, groups=g, **kw) for name, X in (("cnn", X_c), ("sae", X_s))}
    v.update(r2_cnn=r2["cnn"].value, r2_sae=r2["sae"].value)

    # (d) GW-map to expression, genotype label transfer (the pairing only scores FOSCTTM)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(n, size=min(gw_points, n), replace=False))
    for name, X in (("cnn", X_c), ("sae", X_s)):
        A = study.preprocess(X[pick], l2=l2)
        al = gw_align(A, E[pick], epsilon=epsilon, max_points=None, seed=seed)
        sc = study.label_transfer_scores(al.coupling, g[pick], g[pick], true_match=np.arange(len(pick)))
        v[f"lt_argmax_{name}"] = sc["label_transfer_argmax"]
        v[f"lt_bary_{name}"] = sc["label_transfer_barycentric"]
        v[f"foscttm_{name}"] = sc["foscttm"]
        v["lt_chance"] = sc["chance"]

    holds = {
        "a_knn_sd_ratio": bool(a_lower and a_sig),
        "b_morans_i": bool(d.ci_low > 0),
        "c_ridge_r2": bool(v["r2_sae"] >= v["r2_cnn"]),
        "d_gw_label_transfer": bool(v["lt_argmax_sae"] > v["lt_argmax_cnn"] and v["lt_bary_sae"] > v["lt_bary_cnn"]),
    }
    v["a_sae_lower_everywhere"] = float(a_lower)
    v["a_sae_significant_everywhere"] = float(a_sig)
    settings = {
        "ks": ks,
        "k_moran": k_moran,
        "permutations": permutations,
        "n_boot": n_boot,
        "l2": l2,
        "gw_points": len(pick),
        "epsilon": epsilon,
        "groups": labels,
    }
    return ClaimResult(v, holds, settings)


_GAPS = ("knn", "moran", "r2", "lt")


def gap_shrinks(narrow: Sequence[ClaimResult], wide: Sequence[ClaimResult], *, k: int = 10) -> dict[str, Any]:
    """Claim (e): is the SAE − CNN gap smaller for the wider encoder, on each measure?

    The gap of each measure is oriented so that positive means "the SAE codes are better":
    kNN SD ratio (pooled, ``k``) CNN − SAE; Moran's I SAE − CNN; ridge R² SAE − CNN; label
    transfer (one-to-one) SAE − CNN. Means over the results given (e.g. every encoder × SAE seed).

    Parameters
    ----------
    narrow, wide : sequence of ClaimResult
        Results on the narrow and on the wide encoder.
    k : int
        The kNN SD ratio's ``k``.

    Returns
    -------
    dict
        ``gap_<measure>_narrow``, ``gap_<measure>_wide`` and ``holds``: on every measure the SAE helps
        on the narrow encoder (gap > 0) and the wide encoder's gap is smaller.
    """
    if not narrow or not wide:
        raise ValueError("gap_shrinks needs at least one result for each encoder")

    def gaps(r: ClaimResult) -> dict[str, float]:
        x = r.values
        return {
            "knn": x[f"knn_cnn_k{k}_pooled"] - x[f"knn_sae_k{k}_pooled"],
            "moran": x["moran_diff"],
            "r2": x["r2_sae"] - x["r2_cnn"],
            "lt": x["lt_argmax_sae"] - x["lt_argmax_cnn"],
        }

    out: dict[str, Any] = {}
    for name, rs in (("narrow", narrow), ("wide", wide)):
        for m, val in {m: float(np.mean([gaps(r)[m] for r in rs])) for m in _GAPS}.items():
            out[f"gap_{m}_{name}"] = val
    # the claim presupposes an SAE advantage on the narrow encoder: a gap that is negative there cannot "shrink"
    out["holds"] = all(0 < out[f"gap_{m}_narrow"] and out[f"gap_{m}_wide"] < out[f"gap_{m}_narrow"] for m in _GAPS)
    return out
