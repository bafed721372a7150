"""The alignment experiment on the neuron world: image codes vs another view of the same cells, no pairing.

The patient-neuron study aligned image representations with another modality of the same cells by
Gromov–Wasserstein transport, and found that sparse-autoencoder codes align better than the
superposed activations they are computed from. :func:`neuron_alignment` repeats that on the
synthetic neuron world, where the true pairing is known and the alignment can be scored:

* modality A: a neuron CNN's bottleneck codes of some test cells — raw, or encoded by a Gated SAE
  trained on the train cells' codes;
* modality B, shuffled: the same cells' morphometry record columns
  (:data:`~superwidgets.data.neurons.MORPHOMETRY_COLUMNS`, standardised; ``modality="morphometry"``),
  or their true values of the factors the images show (:data:`~superwidgets.data.neurons.IMAGE_FACTORS`;
  ``modality="factors"``: how faithful the codes' geometry is to the ground truth);
* scores: label transfer of each cell's dominant true factor (argmax and barycentric), FOSCTTM
  and Recall@k against the hidden true pairing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["MODALITIES", "dominant_factor", "neuron_alignment"]

#: What modality B can be (see the module docstring).
MODALITIES = ("morphometry", "factors")


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
    modality : {"morphometry", "factors"}
        Modality B: the cells' standardised morphometry columns, or their true image factors.
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
