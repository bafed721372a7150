"""The study's experiment on the neuron world: SAE codes restore the geometry that superposition corrupts.

Modality A is a neuron CNN's bottleneck codes of 500 held-out cells (raw, or a Gated SAE's codes);
modality B is the same cells' true image factors (``modality="factors"``) or their morphometry
(``"morphometry"``), shuffled; unpaired GW alignment, scored against the hidden pairing. Numbers are in
docs/align.md.
"""

from __future__ import annotations

import numpy as np
import pytest

from superwidgets.zoo.alignment import dominant_factor, neuron_alignment

WIDTHS = (32, 64)


def _show(res):
    s = res["settings"]
    for rep in ("raw", "sae"):
        scores = "  ".join(f"{k} {res[rep][k]:.3f}" for k in ("label_transfer_barycentric", "foscttm", "recall@10"))
        print(f"{s['name']:18s} {s['modality']:11s} width {s['sae_width']:3d} {rep:4s} {scores}")


@pytest.fixture(scope="module")
def factors():
    out = {}
    for name in ("neuron-cnn-narrow", "neuron-cnn-wide"):
        for w in WIDTHS:
            out[name, w] = neuron_alignment(name, modality="factors", sae_width=w)
            _show(out[name, w])
    return out


def test_sae_codes_align_with_the_true_factors_better_than_superposed_raw_codes(factors):
    for w in WIDTHS:
        narrow = factors["neuron-cnn-narrow", w]
        # averaged over 3 draws of 500 cells: true partners closer, labels transferred better (the draws
        # vary: in some the raw codes align better, see docs/align.md)
        print("per draw FOSCTTM raw/sae:", [(round(d["raw"]["foscttm"], 3), round(d["sae"]["foscttm"], 3))
                                            for d in narrow["per_repeat"]])  # fmt: skip
        assert narrow["sae"]["foscttm"] < narrow["raw"]["foscttm"]
        assert narrow["sae"]["label_transfer_barycentric"] > narrow["raw"]["label_transfer_barycentric"]


def test_superposition_costs_alignment_and_the_wide_model_gains_less(factors):
    for w in WIDTHS:
        narrow, wide = factors["neuron-cnn-narrow", w], factors["neuron-cnn-wide", w]
        # the wide bottleneck (48 dimensions, no need to superpose) aligns better raw than the narrow (6)
        assert wide["raw"]["foscttm"] < narrow["raw"]["foscttm"]
        # and the SAE helps it less: the smaller gap of the study
        gain_n, gain_w = -narrow["gap"]["foscttm"], -wide["gap"]["foscttm"]
        print(f"width {w}: FOSCTTM gain from the SAE: narrow {gain_n:+.3f}, wide {gain_w:+.3f}")
        assert gain_w < gain_n


def test_morphometry_alignment_is_reported():
    # Cross-modal, with a measured table as modality B: both representations align far above chance
    # (FOSCTTM 0.5), but whether the SAE codes beat the raw ones depends on the SAE's width (see
    # docs/align.md), so only the numbers are printed and the chance level asserted.
    res = neuron_alignment("neuron-cnn-narrow", modality="morphometry", repeats=1)
    _show(res)
    assert res["raw"]["foscttm"] < 0.35 and res["sae"]["foscttm"] < 0.35
    with pytest.raises(ValueError, match="modality must be one of"):
        neuron_alignment(modality="expression")


def test_dominant_factor_labels():
    f = np.array([[0.0, 0.0, 0.0], [0.2, 0.9, 0.0], [0.5, 0.0, 0.1]])
    assert dominant_factor(f).tolist() == [-1, 1, 0]
