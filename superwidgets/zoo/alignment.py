"""The alignment experiment on the neuron world: image codes vs another view of the same cells, no pairing.

The patient-neuron study aligned image representations with another modality of the same cells by
Gromov–Wasserstein transport, and found that sparse-autoencoder codes align better than the
superposed activations they are computed from. :func:`neuron_alignment` repeats that on the
synthetic neuron world, where the true pairing is known and the alignment can be scored:

* modality A: a neuron CNN's bottleneck codes of some test cells — raw, or encoded by a Gated SAE
  trained on the train cells' codes;
* modality B, shuffled: the same cells' morphometry record columns
  (:data:`~superwidgets.data.neurons.MORPHOMETRY_COLUMNS`, standardised; ``modality="morphometry"``),
  their true values of the factors the images show (:data:`~superwidgets.data.neurons.IMAGE_FACTORS`;
  ``modality="factors"``: how faithful the codes' geometry is to the ground truth), or their expression
  profiles (``modality="expression"``: library-size normalised, ``log1p``, standardised and reduced to
  :data:`EXPRESSION_COMPONENTS` principal components fitted on the train cells — the study's pairing);
* scores: label transfer of each cell's dominant true factor (argmax and barycentric), FOSCTTM
  and Recall@k against the hidden true pairing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["EXPRESSION_COMPONENTS", "MODALITIES", "dominant_factor", "expression_features", "neuron_alignment"]

#: What modality B can be (see the module docstring).
MODALITIES = ("morphometry", "factors", "expression")
#: Principal components kept of the expression profiles.
EXPRESSION_COMPONENTS = 30


def expression_features(counts: np.ndarray, fit_rows: np.ndarray | None = None, n_components: int = 30) -> np.ndarray:
    """The usual single-cell preprocessing of count profiles: normalise, ``log1p``, standardise, PCA.

    Each cell's counts are scaled to the median library size, ``log1p``-transformed, each gene
    standardised, and the result projected on the top ``n_components`` principal axes; the means,
    scales and axes are fitted on ``fit_rows`` only (e.g. the train cells), so held-out cells are
    transformed, never fitted.

    Parameters
    ----------
    counts : array, shape (n, genes)
        Non-negative counts (``world.expression``).
    fit_rows : array of int, optional
        Rows to fit the normalisation and the axes on; all rows when omitted.
    n_components : int
        Principal components kept (at most the number of genes).

    Returns
    -------
    numpy.ndarray, shape (n, n_components), float32

    Raises
    ------
    ValueError
        Counts that are not a 2-D, finite, non-negative array, or ``n_components`` out of range.
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 2 or not np.isfinite(c).all() or (c < 0).any():
        raise ValueError(f"counts must be a 2-D array of finite non-negative numbers; got shape {c.shape}")
    if not 1 <= int(n_components) <= c.shape[1]:
        raise ValueError(f"n_components must be between 1 and the number of genes ({c.shape[1]}); got {n_components}")
    rows = np.arange(len(c)) if fit_rows is None else np.asarray(fit_rows)
    lib = c.sum(1, keepdims=True)
    logged = np.log1p(c / np.maximum(lib, 1.0) * np.median(lib[rows]))
    mu, sd = logged[rows].mean(0), logged[rows].std(0)
    z = (logged - mu) / np.where(sd > 0, sd, 1.0)
    axes = np.linalg.svd(z[rows], full_matrices=False)[2][: int(n_components)]
    return (z @ axes.T).astype(np.float32)


def dominant_factor(factors: np.ndarray) -> np.ndarray:
    """Label of each cell: the index of its largest true factor, ``-1`` when no factor is active.

    Parameters
    ----------
    factors : array, shape (n, K)
        Ground-truth factors (``world.factors``).

    Returns
    -------
    numpy.ndarray of int, shape (n,)
    """
    f = np.asarray(factors)
    return np.where(f.max(1) > 0, f.argmax(1), -1).astype(np.int64)


def neuron_alignment(
    name: str = "neuron-cnn-narrow",
    *,
    modality: str = "morphometry",
    n: int = 500,
    repeats: int = 3,
    sae_width: int = 32,
    sae_steps: int = 3000,
    epsilon: float = 0.01,
    starts: int = 1,
    seed: int = 0,
) -> dict[str, Any]:
    """Align a zoo neuron CNN's codes (raw and SAE) with another view of the same cells, unpaired.

    Parameters
    ----------
    name : str
        A neuron CNN of the zoo (``"neuron-cnn-narrow"`` or ``"neuron-cnn-wide"``).
    modality : {"morphometry", "factors", "expression"}
        Modality B: the cells' standardised morphometry columns, their true image factors, or their
        preprocessed expression profiles (:func:`expression_features`, fitted on the train cells).
    n : int
        Test cells per repeat (drawn without replacement, seeded).
    repeats : int
        Independent draws of cells; scores are averaged over them.
    sae_width : int
        Latents of the Gated SAE trained on the bottleneck codes of the train cells.
    sae_steps : int
        SAE training steps.
    epsilon : float
        Entropic regularisation of :func:`~superwidgets.science.align.gw_align`.
    starts : int
        Solver starts per draw, scores averaged over them: POT's default start, then
        ``starts - 1`` seeded random couplings (GW is non-convex; on superposed codes its
        optima differ a lot in quality at nearly equal cost).
    seed : int
        Seeds the SAE and the draws of cells (repeat ``r`` uses ``seed + r``).

    Returns
    -------
    dict
        ``{"raw": scores, "sae": scores, "gap": sae − raw per score, "per_repeat": [...], "sae_module": sae,
        "settings": {...}}``, each ``scores`` a dict of mean ``label_transfer_argmax``,
        ``label_transfer_barycentric``, ``foscttm``, ``recall@1``, ``recall@5``, ``recall@10``.
    """
    from ..data.neurons import IMAGE_FACTORS, MORPHOMETRY_COLUMNS
    from ..science.align import gw_align
    from ..science.sae import fit_sae
    from .registry import load
    from .train import _batched

    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}; got {modality!r}")
    model, world = load(name)
    train, test = world.records.train, world.records.test
    codes = _batched(model.encode, model.world_inputs(world))
    sae = fit_sae(codes[train], arch="gated", width=sae_width, steps=sae_steps, seed=seed, progress=False)
    if modality == "morphometry":
        other = world.records.X[:, [world.records.feature_names.index(c) for c in MORPHOMETRY_COLUMNS]].numpy()
    elif modality == "expression":
        other = expression_features(world.expression, train, EXPRESSION_COMPONENTS)
    else:
        other = world.factors[:, [world.factor_names.index(f) for f in IMAGE_FACTORS]]
    per_repeat = []
    for r in range(repeats):
        rng = np.random.default_rng(seed + r)
        cells = rng.choice(test, n, replace=False)
        labels = dominant_factor(world.factors[cells])
        perm = rng.permutation(n)
        true_match = np.argsort(perm)  # row i of A is row true_match[i] of B
        with torch.no_grad():
            sae_codes = sae.encode(codes[cells]).numpy()
        row = {}
        for rep, X in (("raw", codes[cells].numpy()), ("sae", sae_codes)):
            runs = [
                gw_align(
                    X,
                    other[cells][perm],
                    labels_a=labels,
                    labels_b=labels[perm],
                    true_match=true_match,
                    epsilon=epsilon,
                    start=None if s == 0 else 1000 * (seed + r) + s,
                ).scores
                for s in range(starts)
            ]
            row[rep] = {k: float(np.mean([run[k] for run in runs])) for k in runs[0]}
        per_repeat.append(row)
    mean = {
        rep: {k: float(np.mean([p[rep][k] for p in per_repeat])) for k in per_repeat[0][rep]} for rep in ("raw", "sae")
    }
    return {
        **mean,
        "gap": {k: mean["sae"][k] - mean["raw"][k] for k in mean["raw"]},
        "per_repeat": per_repeat,
        "sae_module": sae,
        "settings": {"name": name, "modality": modality, "n": n, "repeats": repeats, "sae_width": sae_width,
                     "sae_steps": sae_steps, "epsilon": epsilon, "starts": starts, "seed": seed},
    }  # fmt: skip
