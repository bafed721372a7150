"""The study's experiment on the neuron world: SAE codes restore the geometry that superposition corrupts.

Modality A is a neuron CNN's bottleneck codes of 500 held-out cells (raw, or a Gated SAE's codes);
modality B is the same cells' true image factors (``modality="factors"``) or their morphometry
(``"morphometry"``), shuffled; unpaired GW alignment, scored against the hidden pairing. Numbers are in
docs/align.md.
"""

from __future__ import annotations

import numpy as np
import pytest

from superwidgets.zoo.alignment import dominant_factor, expression_features, neuron_alignment

WIDTHS = (32, 64)
STARTS = 3  # GW is non-convex: each draw is scored as the mean over 3 solver starts


def _show(res):
    s = res["settings"]
    for rep in ("raw", "sae"):
        scores = "  ".join(f"{k} {res[rep][k]:.3f}" for k in ("label_transfer_barycentric", "foscttm", "recall@10"))
        print(f"{s['name']:18s} {s['modality']:11s} width {s['sae_width']:3d} {rep:4s} {scores}")
    print("  per draw FOSCTTM raw/sae:", [(round(d["raw"]["foscttm"], 3), round(d["sae"]["foscttm"], 3))
                                          for d in res["per_repeat"]])  # fmt: skip


@pytest.fixture(scope="module")
def factors():
    out = {}
    for name, widths in (("neuron-cnn-narrow", WIDTHS), ("neuron-cnn-wide", WIDTHS[:1])):
        for w in widths:
            out[name, w] = neuron_alignment(name, modality="factors", sae_width=w, starts=STARTS)
            _show(out[name, w])
    return out


def test_sae_codes_alignment_with_the_true_factors_is_measured(factors):
    narrow = factors["neuron-cnn-narrow", WIDTHS[0]]
    # Both codes align with the true factors far above chance (FOSCTTM 0.5). Whether the Gated SAE's
    # codes beat the superposed raw codes is reported, not asserted: with the Gated recipe of issue 13
    # (decoder-norm-weighted gate L1, auxiliary loss through the gate) they do not (FOSCTTM 0.223 vs
    # 0.159 at 32 latents, every draw worse); with the earlier recipe they did on two of three draws.
    # docs/align.md has both and what it means.
    for rep in ("raw", "sae"):
        assert narrow[rep]["foscttm"] < 0.3, (rep, narrow[rep])


def test_superposition_costs_alignment(factors):
    narrow, wide = factors["neuron-cnn-narrow", WIDTHS[0]], factors["neuron-cnn-wide", WIDTHS[0]]
    # the wide bottleneck (48 dimensions, no need to superpose) aligns better raw than the narrow one (6)
    assert wide["raw"]["foscttm"] < narrow["raw"]["foscttm"]
    # the study's "smaller gap for the wide model" is reported, not asserted: it holds at 32 latents
    # but not robustly across SAE widths and solver starts (docs/align.md)
    gain_n, gain_w = -narrow["gap"]["foscttm"], -wide["gap"]["foscttm"]
    print(f"FOSCTTM gain from a 32-latent SAE: narrow {gain_n:+.3f}, wide {gain_w:+.3f}")


def test_morphometry_alignment_is_reported():
    # Cross-modal, with a measured table as modality B: both representations align above chance
    # (FOSCTTM 0.5); the raw codes far better than the Gated SAE's codes since issue 13's recipe
    # (docs/align.md), so only the numbers are printed and the chance level asserted.
    res = neuron_alignment("neuron-cnn-narrow", modality="morphometry", repeats=1)
    _show(res)
    assert res["raw"]["foscttm"] < 0.3 and res["sae"]["foscttm"] < 0.45  # measured 0.236 / 0.356
    with pytest.raises(ValueError, match="modality must be one of"):
        neuron_alignment(modality="rna")


def test_expression_alignment_is_reported():
    # The study's pairing, image codes vs expression profiles. In this world it stays close to chance for
    # raw codes, SAE codes and the wide model alike (FOSCTTM ≈ 0.43; docs/align.md): the counts are
    # too noisy and carry 8 factors the images never show. Only "better than chance" is asserted.
    res = neuron_alignment("neuron-cnn-narrow", modality="expression", repeats=1)
    _show(res)
    assert res["raw"]["foscttm"] < 0.48 and res["sae"]["foscttm"] < 0.48


def test_expression_features():
    rng = np.random.default_rng(0)
    counts = rng.poisson(3.0, size=(50, 20)).astype(np.float32)
    z = expression_features(counts, np.arange(40), n_components=5)
    assert z.shape == (50, 5) and np.isfinite(z).all()
    assert abs(z[:40].mean()) < 1e-5  # centred on the rows it was fitted on
    with pytest.raises(ValueError, match="non-negative"):
        expression_features(-counts)
    with pytest.raises(ValueError, match="n_components"):
        expression_features(counts, n_components=21)


def test_dominant_factor_labels():
    f = np.array([[0.0, 0.0, 0.0], [0.2, 0.9, 0.0], [0.5, 0.0, 0.1]])
    assert dominant_factor(f).tolist() == [-1, 1, 0]
