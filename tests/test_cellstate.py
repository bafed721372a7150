"""The cell-state world: one latent state per cell drives its image and its expression."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from superwidgets.data import cellstate
from superwidgets.data.cellstate import (
    EXPRESSION_ONLY_PROGRAMS,
    GENOTYPES,
    NUISANCE_NAMES,
    PROGRAM_NAMES,
    SHARED_PROGRAMS,
    cell_states,
)
from superwidgets.data.neurons import FACTOR_NAMES, render_neurons

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def world():
    return cell_states(n=1600, seed=11, image_size=32)


def _fields(w):
    return {f: getattr(w, f) for f in w.__dataclass_fields__}


def _expression_score(w, program):
    """Mean log-normalised expression of a program's marker genes: the program as expression shows it."""
    lc = np.log1p(w.counts / w.counts.sum(1, keepdims=True) * 1e4)
    return lc[:, w.gene_program == PROGRAM_NAMES.index(program)].mean(1)


def _within_donor(w, x):
    x = np.asarray(x, dtype=np.float64).copy()
    for d in np.unique(w.donor):
        x[w.donor == d] -= x[w.donor == d].mean()
    return x


def test_same_seed_same_world_and_other_seed_differs():
    a = cell_states(n=120, seed=5, image_size=32)
    b = cell_states(n=120, seed=5, image_size=32)
    for name, v in _fields(a).items():
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(v, getattr(b, name), err_msg=name)
        else:
            assert v == getattr(b, name), name
    c = cell_states(n=120, seed=6, image_size=32)
    assert not np.array_equal(a.images, c.images)
    assert not np.array_equal(a.counts, c.counts)
    assert not np.array_equal(a.programs, c.programs)


def test_streams_are_separate():
    base = cell_states(n=120, seed=2, image_size=32)
    other_counts = cell_states(n=120, seed=2, image_size=32, dropout=0.3, library_size=800.0)
    np.testing.assert_array_equal(base.images, other_counts.images)
    np.testing.assert_array_equal(base.programs, other_counts.programs)
    assert not np.array_equal(base.counts, other_counts.counts)
    other_pixels = cell_states(n=120, seed=2, image_size=32, noise=0.1, nuisance=2.0)
    np.testing.assert_array_equal(base.counts, other_pixels.counts)
    np.testing.assert_array_equal(base.programs, other_pixels.programs)
    np.testing.assert_array_equal(base.death_rate, other_pixels.death_rate)
    assert not np.array_equal(base.images, other_pixels.images)


def test_shapes_and_ground_truth(world):
    w = world
    n, g, p = len(w), w.counts.shape[1], len(PROGRAM_NAMES)
    assert w.images.shape == (n, 4, 32, 32) and w.images.dtype == np.float32
    assert w.images.min() >= 0 and w.images.max() <= 1
    assert w.counts.shape == (n, 600) and w.counts.dtype == np.int32 and w.counts.min() >= 0
    assert w.programs.shape == (n, p) and w.programs.min() >= 0 and w.programs.max() <= 1
    assert w.loadings.shape == (p, g) and w.gene_program.shape == (g,) and len(w.gene_names) == g
    assert len(set(w.gene_names)) == g and w.gene_names[:0] == [] and "TH" in w.gene_names
    assert w.nuisance.shape == (n, len(NUISANCE_NAMES)) and w.image_factors.shape == (n, len(FACTOR_NAMES))
    # each program's markers load on it; background genes load on nothing
    for k in range(p):
        assert (w.gene_program == k).sum() == 40
        assert (w.loadings[k, w.gene_program == k] >= 0.8).all()
    assert (w.loadings[:, w.gene_program == -1] == 0).all()
    # sparse programs are exactly zero in most cells, dense ones never
    for name in ("stress", "aggregation", "degeneration", "interferon"):
        assert 0.05 < (w.program(name) > 0).mean() < 0.7, name
    for name in ("identity", "size", "metabolic"):
        assert (w.program(name) > 0).all(), name
    # design: one donor (hence one genotype) and one plate per well; death rate is the well's
    for well in np.unique(w.well):
        rows = w.well == well
        assert len(np.unique(w.donor[rows])) == 1 and len(np.unique(w.plate[rows])) == 1
    np.testing.assert_array_equal(w.donor_genotype[w.donor], w.genotype)
    np.testing.assert_array_equal(w.death_rate, w.well_death_rate[w.well])
    assert sorted(np.unique(w.genotype)) == list(range(len(GENOTYPES)))
    # split by well, 25 % held out per genotype
    assert len(np.intersect1d(w.train, w.test)) == 0 and len(w.train) + len(w.test) == n
    assert not set(w.well[w.train]) & set(w.well[w.test])
    for gi in range(len(GENOTYPES)):
        share = np.isin(w.test, np.flatnonzero(w.genotype == gi)).sum() / (w.genotype == gi).sum()
        assert 0.18 < share < 0.32
    with pytest.raises(ValueError, match="unknown program 'stres'"):
        w.program("stres")


def test_image_is_the_renderer_of_the_state_when_nuisance_is_off():
    w = cell_states(n=40, seed=4, image_size=32, nuisance=0.0)
    np.testing.assert_array_equal(w.images, render_neurons(w.image_factors, w.cell_seeds, 32, w.noise))
    on = cell_states(n=40, seed=4, image_size=32)
    assert np.abs(on.images - w.images).mean() > 0.005  # the nuisances do reach the image


def test_genotype_shifts_the_programs(world):
    w = world
    healthy = w.genotype == GENOTYPES.index("healthy")
    snca = w.genotype == GENOTYPES.index("SNCA")
    assert w.program("aggregation")[snca].mean() > 2 * w.program("aggregation")[healthy].mean()
    assert w.program("identity")[snca].mean() < w.program("identity")[healthy].mean() - 0.1
    assert w.death_rate[~healthy].mean() > w.death_rate[healthy].mean() + 0.05


def test_expression_and_image_share_the_state(world):
    w = world
    puncta = w.images[:, 2].mean((1, 2))  # the image's readout of aggregation
    neurites = w.images[:, 0].mean((1, 2))  # … and of identity (neurite arbour, MAP2)
    agg = _expression_score(w, "aggregation")
    ident = _expression_score(w, "identity")
    shuffled = np.random.default_rng(0).permutation(len(w))
    # earned: unpaired cells show no agreement, so the agreement below comes from the shared state
    assert abs(spearmanr(agg[shuffled], puncta)[0]) < 0.1
    assert spearmanr(agg, puncta)[0] > 0.5
    assert spearmanr(ident, neurites)[0] > 0.3
    # an expression-only program leaves no trace in any channel of the image (within a donor: its
    # genotype and donor shift both it and the shared programs)
    readouts = w.images.mean((2, 3))
    for name in EXPRESSION_ONLY_PROGRAMS:
        for c in range(4):
            assert abs(spearmanr(_within_donor(w, w.program(name)), _within_donor(w, readouts[:, c]))[0]) < 0.08
    assert abs(spearmanr(_within_donor(w, w.program("aggregation")), _within_donor(w, puncta))[0]) > 0.5
    # every shared program is recovered from expression
    for name in SHARED_PROGRAMS:
        assert spearmanr(_expression_score(w, name), w.program(name))[0] > 0.6, name


def test_count_noise():
    w0 = cell_states(n=1200, seed=8, image_size=16, dropout=0.0)
    w1 = cell_states(n=1200, seed=8, image_size=16, dropout=0.3)
    # overdispersed: background genes at a fixed library size have variance well above the mean
    bg = w0.gene_program == -1
    rate = w0.counts[:, bg] / w0.library_size[:, None]
    fano = rate.var(0) / rate.mean(0) * w0.library_size.mean()
    assert np.median(fano[w0.counts[:, bg].mean(0) > 2]) > 1.5
    # dropout zeroes the stated share of the non-zero counts (same streams, so the same cells)
    nz0 = w0.counts > 0
    lost = (w1.counts[nz0] == 0).mean()
    assert abs(lost - 0.3) < 0.01
    # library size drives the total count
    assert spearmanr(w0.counts.sum(1), w0.library_size)[0] > 0.7


def test_death_rate_comes_from_degeneration(world):
    w = world
    wells = np.unique(w.well)
    deg = np.array([w.program("degeneration")[w.well == k].mean() for k in wells])
    geno = np.array([w.genotype[w.well == k][0] for k in wells])
    for gi in range(len(GENOTYPES)):
        m = geno == gi
        assert spearmanr(deg[m], w.well_death_rate[wells][m])[0] > 0.6
    # the measurement is binomial around the well's mean death probability
    mean_p = np.bincount(w.well, weights=w.death_prob) / np.bincount(w.well)
    resid = (w.well_death_rate - mean_p) / np.sqrt(mean_p * (1 - mean_p) / w.well_population)
    assert abs(resid.std() - 1) < 0.15 and abs(resid.mean()) < 0.15


def test_generation_of_6000_cells_is_quick():
    # CPU time of this process (all its threads), not wall time: other jobs on the machine do not count.
    # Measured 7-8 s on one idle core.
    t = time.process_time()
    w = cell_states(n=6000, seed=0)
    assert time.process_time() - t < 30
    assert w.images.shape == (6000, 4, 48, 48)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n": 4}, ValueError, "n must be ≥ 8"),
        ({"seed": -1}, ValueError, "seed must be ≥ 0"),
        ({"image_size": 8}, ValueError, "image_size must be between 16 and 128"),
        ({"n_genes": 100}, ValueError, "raise n_genes or lower markers_per_program"),
        ({"dropout": 1.5}, ValueError, r"dropout must lie in \[0.0, 0.9\]"),
        ({"n": 10.5}, TypeError, "n must be an integer"),
    ],
)
def test_bad_arguments_say_what_to_do(kwargs, error, match):
    with pytest.raises(error, match=match):
        cell_states(**kwargs)


def test_exported_from_data():
    import superwidgets.data as d

    assert d.cell_states is cellstate.cell_states and d.CellStateWorld is cellstate.CellStateWorld
