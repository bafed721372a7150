"""The CLIP-style two-tower reference: with pairs to train on, held-out points find their partners."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import superwidgets as sw
from superwidgets.data.neurons import MORPHOMETRY_COLUMNS
from superwidgets.science.align import foscttm, label_transfer_accuracy, recall_at_k
from superwidgets.science.contrastive import TwoTower, fit_two_tower
from superwidgets.zoo.alignment import dominant_factor


def test_two_towers_learn_a_nonlinear_pairing():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((1200, 3))
    A = np.c_[z, z[:, :1] * z[:, 1:2]] + 0.05 * rng.standard_normal((1200, 4))
    B = np.tanh(z @ rng.standard_normal((3, 6))) + 0.05 * rng.standard_normal((1200, 6))
    tt = fit_two_tower(A[:1000], B[:1000], epochs=40, seed=1)
    assert isinstance(tt, TwoTower) and not tt.training
    C = tt.coupling(A[1000:], B[1000:])
    np.testing.assert_allclose(C.sum(1), 1 / 200, rtol=1e-9)
    assert foscttm(C) < 0.02 and recall_at_k(C)[10] > 0.8
    emb = tt.embed_a(A[:5])
    assert emb.shape == (5, 16) and torch.allclose(emb.norm(dim=1), torch.ones(5), atol=1e-5)


def test_same_seed_same_model():
    rng = np.random.default_rng(1)
    A, B = rng.standard_normal((300, 3)), rng.standard_normal((300, 5))
    t1, t2 = fit_two_tower(A, B, epochs=3, seed=7), fit_two_tower(A, B, epochs=3, seed=7)
    for (k, v), (_, w) in zip(t1.state_dict().items(), t2.state_dict().items(), strict=True):
        assert torch.equal(v, w), k


@pytest.mark.parametrize(
    ("A", "B", "match"),
    [
        (np.zeros((10, 3)), np.zeros((9, 3)), "X_a has 10 rows but X_b 9"),
        (np.zeros(10), np.zeros((10, 3)), "must be 2-D"),
        (np.zeros((1, 3)), np.zeros((1, 3)), "at least 2 pairs"),
        (np.full((10, 3), np.nan), np.zeros((10, 3)), "finite"),
    ],
)
def test_bad_inputs_say_what_to_fix(A, B, match):
    with pytest.raises(ValueError, match=match):
        fit_two_tower(A, B)


def test_paired_reference_on_the_neuron_world_beats_unpaired_alignment():
    # the supervised ceiling for the alignment experiment: narrow CNN codes <-> morphometry of the same cells
    model, world = sw.zoo.load("neuron-cnn-narrow")
    tr, te = world.records.train, world.records.test
    with torch.no_grad():
        codes = model.encode(torch.as_tensor(world.images)).numpy()
    cols = [world.records.feature_names.index(c) for c in MORPHOMETRY_COLUMNS]
    morph = world.records.X[:, cols].numpy()
    tt = fit_two_tower(codes[tr], morph[tr], seed=0)
    cells = np.random.default_rng(0).choice(te, 500, replace=False)
    C = tt.coupling(codes[cells], morph[cells])
    labels = dominant_factor(world.factors[cells])
    r = recall_at_k(C)
    lt = label_transfer_accuracy(C, labels, labels, how="barycentric")
    print(f"two-tower on held-out cells: FOSCTTM {foscttm(C):.3f}, recall@1/5/10 {r[1]:.3f}/{r[5]:.3f}/{r[10]:.3f}, "
          f"label transfer {lt:.3f}")  # fmt: skip
    # unpaired GW reaches FOSCTTM ≈ 0.23 and recall@10 ≈ 0.17 on the same cells (docs/align.md)
    assert foscttm(C) < 0.05 and r[10] > 0.5 and lt > 0.5
