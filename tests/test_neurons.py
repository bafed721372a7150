"""The synthetic neuron world: determinism, sparsity, documented factor effects, and every modality."""

from __future__ import annotations

import ast
import math
import pathlib
import time

import numpy as np
import pytest
import torch
from sklearn.linear_model import LinearRegression

from superwidgets.data import (
    CHANNEL_NAMES,
    FACTOR_NAMES,
    NeuronRecords,
    NeuronWorld,
    TabularData,
    death_risk,
    neurons,
    render_neurons,
)
from superwidgets.data import neurons as neurons_fn
from superwidgets.data.neurons import DISEASE_BLOCK

K = len(FACTOR_NAMES)
F = {name: i for i, name in enumerate(FACTOR_NAMES)}


@pytest.fixture(scope="module")
def world() -> NeuronWorld:
    return neurons(n=600, seed=0)


def _area(img: np.ndarray, thr: float) -> np.ndarray:
    """Foreground pixels per image (..., S, S) above ``thr``."""
    return (img > thr).sum(axis=(-2, -1))


def _peaks(img: np.ndarray, thr: float) -> np.ndarray:
    """Local maxima (3×3) above ``thr`` per image (m, S, S)."""
    p = np.pad(img, ((0, 0), (1, 1), (1, 1)), constant_values=-1.0)
    s = img.shape[-1]
    is_max = img > thr
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                is_max &= img >= p[:, 1 + dy : 1 + dy + s, 1 + dx : 1 + dx + s]
    return is_max.sum(axis=(-2, -1))


def _sweep(world: NeuronWorld, name: str, cells: np.ndarray, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """Images of ``cells`` with factor ``name`` set to low and to high; shape (2, m, C, S, S)."""
    f = world.factors[cells].copy()
    f_lo, f_hi = f.copy(), f.copy()
    f_lo[:, F[name]] = low
    f_hi[:, F[name]] = high
    return np.stack([world.render(f_lo, cells), world.render(f_hi, cells)])


# ---------------------------------------------------------------------------------------------
# determinism, shapes, dtypes, ranges
# ---------------------------------------------------------------------------------------------


def _arrays(w: NeuronWorld) -> dict[str, np.ndarray]:
    return {
        "factors": w.factors,
        "images": w.images,
        "expression": w.expression,
        "loadings": w.loadings,
        "outcome": w.outcome,
        "disease": w.disease,
        "cell_seeds": w.cell_seeds,
        "raw": w.records.raw,
        "X": w.records.X.numpy(),
        "y": w.records.y.numpy(),
        "train": w.records.train,
        "test": w.records.test,
    }


def test_same_seed_same_bytes_different_seed_different() -> None:
    a, b, c = neurons(n=40, seed=5), neurons(n=40, seed=5), neurons(n=40, seed=6)
    for name, arr in _arrays(a).items():
        other = _arrays(b)[name]
        assert arr.dtype == other.dtype and arr.shape == other.shape, name
        assert arr.tobytes() == other.tobytes(), f"{name} differs between two runs with the same seed"
    for name in ("factors", "images", "expression", "raw", "cell_seeds"):
        assert _arrays(a)[name].tobytes() != _arrays(c)[name].tobytes(), f"{name} ignores the seed"
    assert a.gene_names == b.gene_names and a.records.feature_names == b.records.feature_names


def test_shapes_dtypes_ranges(world: NeuronWorld) -> None:
    n, s = len(world), world.image_size
    assert n == 600 and 16 <= K <= 24
    assert world.factor_names == list(FACTOR_NAMES) and len(set(FACTOR_NAMES)) == K
    assert world.factors.shape == (n, K) and world.factors.dtype == np.float32
    assert world.factors.min() >= 0.0 and world.factors.max() <= 1.0
    assert world.images.shape == (n, 4, s, s) and world.images.dtype == np.float32
    assert world.images.min() >= 0.0 and world.images.max() <= 1.0
    assert world.channel_names == list(CHANNEL_NAMES) == ["neurites", "nuclei", "puncta", "ais"]
    g = len(world.gene_names)
    assert world.expression.shape == (n, g) and world.expression.dtype == np.float32 and g == 300
    assert world.loadings.shape == (g, K) and world.loadings.dtype == np.float32
    assert len(set(world.gene_names)) == g
    assert world.outcome.shape == (n,) and world.outcome.dtype == np.float32
    assert world.disease.shape == (n,) and world.disease.dtype == np.int64
    assert set(np.unique(world.disease)) == {0, 1}
    assert world.seed == 0 and len(world.cell_seeds) == n
    text = repr(world)
    assert "600 cells" in text and "20 factors" in text and "seed 0" in text
    # images are not blank: every cell has a soma, a nucleus and an axon initial segment
    assert (_area(world.images[:, 0], 0.3) > 20).all()
    assert (_area(world.images[:, 1], 0.3) > 5).all()
    # ... an axon initial segment unless the axon has degenerated short of it
    intact = world.factors[:, F["neurite_degeneration"]] == 0
    assert (_area(world.images[intact, 3], 0.3) > 3).all()


@pytest.mark.parametrize("size", [16, 96])
def test_other_image_sizes(size: int) -> None:
    w = neurons(n=8, seed=1, image_size=size, n_genes=40)
    assert w.images.shape == (8, 4, size, size)
    assert w.expression.shape == (8, 40)
    assert np.isfinite(w.images).all()


def test_render_reproduces_world_images(world: NeuronWorld) -> None:
    cells = np.array([0, 7, 129, 300, 599])
    assert np.array_equal(world.render(world.factors[cells], cells), world.images[cells])
    for i in (3, 128):
        one = render_neurons(world.factors[i], world.cell_seeds[i], world.image_size, world.noise)
        assert np.array_equal(one[0], world.images[i])
    # one cell's layout for every row: a sweep of one factor over one cell
    f = np.repeat(world.factors[5:6], 3, axis=0)
    f[:, F["soma_size"]] = [0.0, 0.5, 1.0]
    sweep = world.render(f, 5)
    assert sweep.shape == (3, 4, world.image_size, world.image_size)
    assert not np.array_equal(sweep[0], sweep[2])


# ---------------------------------------------------------------------------------------------
# sparsity and the disease block
# ---------------------------------------------------------------------------------------------


def test_sparse_zipf_activation() -> None:
    w = neurons(n=4000, seed=2, image_size=16, n_genes=10)
    active = w.factors > 0
    per_cell = active.sum(1)
    assert 2.0 <= per_cell.mean() <= 6.0, per_cell.mean()
    assert per_cell.max() <= 12
    freq = active.mean(0)
    # each factor's marginal rate is its documented Zipf probability (binomial s.e. < 0.008 here)
    assert np.abs(freq - w.activation_prob).max() < 0.03, np.round(freq - w.activation_prob, 3)
    expected = w.activation_prob
    assert np.all(np.diff(expected) <= 0) and expected[0] / expected[-1] > 15
    # frequencies decrease: block means of 5 factors strictly decrease, and the rank correlation is strong
    blocks = freq.reshape(4, 5).mean(1)
    assert np.all(np.diff(blocks) < 0), blocks
    ranks = np.argsort(np.argsort(-freq))
    rho = np.corrcoef(ranks, np.arange(K))[0, 1]
    assert rho > 0.9, rho
    # active continuous factors take values in [0.2, 1], binary ones are exactly 1
    cont = [F[n] for n in FACTOR_NAMES if n not in ("disease", "lrrk2_g2019s", "gba_n370s", "snca_triplication")]
    vals = w.factors[:, cont][active[:, cont]]
    assert vals.min() >= 0.2 - 1e-6 and vals.max() <= 1.0
    for name in ("disease", "lrrk2_g2019s", "gba_n370s", "snca_triplication"):
        assert set(np.unique(w.factors[:, F[name]])) <= {0.0, 1.0}


def test_disease_block_correlation() -> None:
    w = neurons(n=3000, seed=3, image_size=16, n_genes=10)
    dis = w.disease == 1
    assert 0.08 < dis.mean() < 0.3
    for name, parents in DISEASE_BLOCK.items():
        m1 = w.factors[dis, F[name]].mean()
        m0 = w.factors[~dis, F[name]].mean()
        if parents["disease"] > 0:
            assert m1 > 1.5 * m0, (name, m1, m0)
        else:
            assert m1 < m0, (name, m1, m0)
    assert w.factors[dis, F["puncta_density"]].mean() > 3 * w.factors[~dis, F["puncta_density"]].mean()
    # genotypes raise the odds of disease
    carriers = (w.factors[:, [F["lrrk2_g2019s"], F["gba_n370s"], F["snca_triplication"]]] > 0).any(1)
    assert w.disease[carriers].mean() > 2 * w.disease[~carriers].mean()
    # with correlation=0 the factors are independent: no disease gap in puncta
    w0 = neurons(n=3000, seed=3, image_size=16, n_genes=10, correlation=0.0)
    d0 = w0.disease == 1
    gap = w0.factors[d0, F["puncta_density"]].mean() - w0.factors[~d0, F["puncta_density"]].mean()
    assert abs(gap) < 0.06, gap


# ---------------------------------------------------------------------------------------------
# documented factor → image effects
# ---------------------------------------------------------------------------------------------

CELLS = np.arange(0, 600, 30)  # 20 cells


def test_neurite_length_grows_neurite_area(world: NeuronWorld) -> None:
    lo, hi = _sweep(world, "neurite_length", CELLS)
    a_lo, a_hi = _area(lo[:, 0], 0.25), _area(hi[:, 0], 0.25)
    assert (a_hi > a_lo).all(), (a_lo, a_hi)
    assert a_hi.mean() > 1.4 * a_lo.mean()
    # nuclei untouched
    assert np.array_equal(lo[:, 1], hi[:, 1])


def test_branch_count_adds_neurites(world: NeuronWorld) -> None:
    lo, hi = _sweep(world, "branch_count", CELLS)
    a_lo, a_hi = _area(lo[:, 0], 0.25), _area(hi[:, 0], 0.25)
    assert (a_hi > a_lo).all() and a_hi.mean() > 1.3 * a_lo.mean()


def test_neurite_degeneration_shrinks_and_fragments(world: NeuronWorld) -> None:
    lo, hi = _sweep(world, "neurite_degeneration", CELLS)
    assert (_area(hi[:, 0], 0.25) < _area(lo[:, 0], 0.25)).all()


def test_puncta_density_adds_puncta_only(world: NeuronWorld) -> None:
    lo, hi = _sweep(world, "puncta_density", CELLS)
    a_lo, a_hi = _area(lo[:, 2], 0.35), _area(hi[:, 2], 0.35)
    assert (a_hi > a_lo).all() and a_hi.mean() > 3 * a_lo.mean(), (a_lo, a_hi)
    assert _peaks(hi[:, 2], 0.35).mean() > 3 * _peaks(lo[:, 2], 0.35).mean()
    # only the puncta channel changes
    for c in (0, 1, 3):
        assert np.array_equal(lo[:, c], hi[:, c]), CHANNEL_NAMES[c]


def test_soma_size_grows_soma_and_nucleus(world: NeuronWorld) -> None:
    lo, hi = _sweep(world, "soma_size", CELLS)
    n_lo, n_hi = _area(lo[:, 1], 0.3), _area(hi[:, 1], 0.3)
    assert (n_hi > n_lo).all() and n_hi.mean() > 1.5 * n_lo.mean(), (n_lo, n_hi)
    assert (_area(hi[:, 0], 0.5) > _area(lo[:, 0], 0.5)).all()


def test_nuclear_condensation_shrinks_and_brightens_nucleus(world: NeuronWorld) -> None:
    lo, hi = _sweep(world, "nuclear_condensation", CELLS)
    assert (_area(hi[:, 1], 0.3) < _area(lo[:, 1], 0.3)).all()
    assert (hi[:, 1].max(axis=(-2, -1)) > lo[:, 1].max(axis=(-2, -1))).all()


def test_ais_length_grows_ais(world: NeuronWorld) -> None:
    lo, hi = _sweep(world, "ais_length", CELLS)
    # the AIS can be cut short by a short axon, so most (not all) cells gain area
    assert (_area(hi[:, 3], 0.3) >= _area(lo[:, 3], 0.3)).all()
    assert (_area(hi[:, 3], 0.3) > _area(lo[:, 3], 0.3)).mean() >= 0.8
    assert np.array_equal(lo[:, 0], hi[:, 0]) and np.array_equal(lo[:, 2], hi[:, 2])


def test_invisible_factors_leave_images_unchanged(world: NeuronWorld) -> None:
    for name in ("th_intensity", "disease", "age", "mito_fragmentation", "oxidative_stress", "lrrk2_g2019s"):
        lo, hi = _sweep(world, name, CELLS[:5])
        assert np.array_equal(lo, hi), name


# ---------------------------------------------------------------------------------------------
# records, expression, outcome
# ---------------------------------------------------------------------------------------------


def test_records_are_tabular_and_predictable(world: NeuronWorld) -> None:
    rec = world.records
    assert isinstance(rec, NeuronRecords) and isinstance(rec, TabularData)
    assert len(rec) == len(world) and 28 <= len(rec.feature_names) <= 34
    assert rec.X.dtype == torch.float32 and rec.X.shape == (len(world), len(rec.feature_names))
    assert torch.equal(rec.y, torch.from_numpy(world.disease))
    assert rec.class_names == ["control", "PD"]
    assert np.allclose(rec.X.numpy()[rec.train].mean(0), 0.0, atol=1e-4)
    assert len(np.intersect1d(rec.train, rec.test)) == 0 and len(rec.train) + len(rec.test) == len(world)
    assert set(rec.categorical) == {"genotype", "sex", "site", "th_status"}
    mask = rec.categorical_mask
    assert mask.sum() == 4
    for name in rec.categorical:
        codes = rec.raw[:, rec.feature_names.index(name)]
        assert np.array_equal(codes, np.round(codes)) and codes.min() >= 0
        assert len(np.unique(codes)) <= len(rec.categories[name]) <= 4
    # genotype follows the genotype flags
    geno = rec.raw[:, rec.feature_names.index("genotype")]
    assert np.array_equal(geno == 3, world.factors[:, F["snca_triplication"]] > 0)
    assert (geno[world.factors[:, F["lrrk2_g2019s"]] > 0] != 0).all()
    # every continuous column is a noisy function of the factors: linear R² > 0.5 for most
    r2 = []
    for j in np.flatnonzero(~mask):
        y = rec.raw[:, j]
        r2.append(LinearRegression().fit(world.factors, y).score(world.factors, y))
    r2 = np.array(r2)
    assert (r2 > 0.5).mean() >= 0.85, dict(zip(np.array(rec.feature_names)[~mask], np.round(r2, 2), strict=True))
    assert np.median(r2) > 0.75
    # ... and not a copy: noise is present
    assert r2.max() < 0.999
    # sex and site are independent of the factors
    for name in ("sex", "site"):
        y = rec.raw[:, rec.feature_names.index(name)]
        assert LinearRegression().fit(world.factors, y).score(world.factors, y) < 0.1
    assert set(rec.record(0)) == set(rec.feature_names)
    assert "categorical" in repr(rec)


def test_expression_zero_inflated_and_loaded(world: NeuronWorld) -> None:
    e = world.expression
    assert np.array_equal(e, np.round(e)) and e.min() >= 0
    zeros = (e == 0).mean()
    assert 0.3 < zeros < 0.85, zeros
    # zero inflation: more zeros than a negative binomial with the same mean and variance would give alone
    w_nodrop = neurons(n=600, seed=0, image_size=16, dropout=0.0)
    assert zeros > (w_nodrop.expression == 0).mean() + 0.1
    # the loading matrix is sparse, every gene loads on at most 3 factors
    nnz = (world.loadings != 0).sum(1)
    assert nnz.max() <= 3 and (nnz == 0).any() and (world.loadings != 0).mean() < 0.15
    # genes correlate with the factors they load on, in the loading's direction
    x = np.log1p(e.astype(np.float64))
    x = x - x.mean(0)
    f = world.factors.astype(np.float64) - world.factors.mean(0)
    corr = (x.T @ f) / np.sqrt((x**2).sum(0)[:, None] * (f**2).sum(0)[None, :] + 1e-12)
    strong = np.abs(world.loadings) >= 0.8
    signed = corr[strong] * np.sign(world.loadings[strong])
    assert (signed > 0).mean() > 0.9
    assert signed.mean() > 0.1
    assert signed.mean() > 4 * np.abs(corr[world.loadings == 0]).mean()
    th = world.gene_names.index("TH")
    assert corr[th, F["th_intensity"]] > 0.2


def test_outcome_is_documented_function(world: NeuronWorld) -> None:
    g = {name: world.factors[:, i].astype(np.float64) for i, name in enumerate(FACTOR_NAMES)}
    logit = (
        -3.0
        + 2.0 * g["nuclear_condensation"]
        + 1.5 * g["puncta_density"] * (1 + g["aggregate_size"])
        + 1.2 * g["mito_fragmentation"] * (1 + g["oxidative_stress"])
        + 1.0 * g["neurite_degeneration"]
        + 0.8 * g["age"]
        + 0.6 * g["disease"]
        - 0.8 * g["th_intensity"]
    )
    expected = 1.0 / (1.0 + np.exp(-logit))
    np.testing.assert_allclose(world.outcome, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(death_risk(world.factors), world.outcome)
    assert np.array_equal(world.disease, (world.factors[:, F["disease"]] > 0).astype(np.int64))
    assert world.outcome[world.disease == 1].mean() > world.outcome[world.disease == 0].mean()


# ---------------------------------------------------------------------------------------------
# performance, errors, layering
# ---------------------------------------------------------------------------------------------


def test_500_cells_generate_fast() -> None:
    t = time.perf_counter()
    w = neurons(n=500, seed=9)
    dt = time.perf_counter() - t
    assert len(w) == 500
    assert dt < 5.0, f"500 cells took {dt:.2f} s"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, r"n must be ≥ 1"),
        ({"n": -3}, r"n must be ≥ 1"),
        ({"n": 2.5}, r"n must be an integer"),
        ({"n": True}, r"n must be an integer"),
        ({"image_size": 8}, r"image_size must be ≥ 16"),
        ({"image_size": 1024}, r"image_size must be ≤ 512"),
        ({"seed": -1}, r"seed must be ≥ 0"),
        ({"n_genes": 0}, r"n_genes must be ≥ 1"),
        ({"mean_active": 0.0}, r"mean_active must be in"),
        ({"correlation": -1.0}, r"correlation must be ≥ 0"),
        ({"correlation": math.nan}, r"correlation must be a finite number"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"noise": -0.1}, r"noise must be ≥ 0"),
        ({"test_fraction": 1.0}, r"test_fraction must be in \(0, 1\)"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"n": 4, "image_size": 16, "n_genes": 5, **kwargs}
    with pytest.raises(ValueError, match=match):
        neurons_fn(**args)  # type: ignore[arg-type]


def test_render_errors(world: NeuronWorld) -> None:
    with pytest.raises(ValueError, match=r"shape \(K,\) or \(m, K\) with K = 20"):
        world.render(np.zeros(5), 0)
    bad = world.factors[0].copy()
    bad[F["soma_size"]] = 1.5
    with pytest.raises(ValueError, match=r"'soma_size'.*np.clip"):
        world.render(bad, 0)
    bad[F["soma_size"]] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        world.render(bad, 0)
    with pytest.raises(ValueError, match=r"cells must lie in 0..599"):
        world.render(world.factors[0], 600)
    with pytest.raises(ValueError, match="pass cells="):
        world.render(world.factors[:3])
    with pytest.raises(ValueError, match="seed must be"):
        render_neurons(world.factors[:2], [1, 2, 3])
    with pytest.raises(ValueError, match="did you mean 'soma_size'"):
        world.factor_index("soma_sise")
    assert world.factor_index("puncta_density") == F["puncta_density"]


def test_data_layer_imports_only_allowed_packages() -> None:
    src = pathlib.Path(__file__).parents[1] / "superwidgets" / "data" / "neurons.py"
    allowed = {"__future__", "dataclasses", "difflib", "math", "collections", "numpy", "torch", "sklearn"}
    for node in ast.walk(ast.parse(src.read_text())):
        if isinstance(node, ast.Import):
            mods = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mods = [] if node.level else [(node.module or "").split(".")[0]]
        else:
            continue
        assert set(mods) <= allowed, mods
