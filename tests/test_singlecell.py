"""SAE codes through scanpy (superwidgets.science.singlecell) on a planted 3-cluster trajectory.

600 "cells" move along one planted trajectory time ``t`` in [0, 1], crowded into three states
(t ≈ 0.15, 0.5, 0.85). Each state switches on its own block of 15 latents (a Gaussian bump in
``t``, wide enough that neighbouring states share cells in between) and 10 more latents ramp up
with ``t``; counts are Poisson. Leiden must find the three states and diffusion pseudotime must
follow ``t``; pure-noise codes must do neither.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.stats import spearmanr
from sklearn.metrics import adjusted_rand_score

from superwidgets.science import singlecell
from superwidgets.science.singlecell import singlecell_summary, to_anndata

torch.set_num_threads(1)


def planted(n: int = 600, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = np.array([0.15, 0.5, 0.85])
    state = rng.integers(0, 3, n)
    t = np.clip(centres[state] + rng.normal(0, 0.07, n), 0, 1)
    rate = np.zeros((n, 60))
    for j, c in enumerate(centres):
        rate[:, 15 * j : 15 * (j + 1)] = np.exp(-((t - c) ** 2) / (2 * 0.18**2))[:, None] * rng.uniform(2, 5, 15)
    rate[:, 45:55] = t[:, None] * rng.uniform(2, 5, 10)
    return rng.poisson(rate).astype(np.float32), state, t


@pytest.fixture(scope="module")
def world():
    codes, state, t = planted()
    return {"codes": codes, "state": state, "t": t}


@pytest.fixture(scope="module")
def summary(world):
    # scanpy's defaults for the graph (method="umap"): the path users get
    return singlecell_summary(world["codes"], obs={"state": world["state"], "t": world["t"]}, resolution=0.5)


def test_noise_codes_have_no_clusters_or_trajectory(world):
    """Not earned by the pipeline alone: codes that ignore the planted states recover neither."""
    rng = np.random.default_rng(1)
    noise = rng.poisson(3.0, world["codes"].shape).astype(np.float32)
    with pytest.warns(UserWarning, match="Leiden found a single cluster at resolution=0.5; PAGA skipped"):
        ad = singlecell_summary(noise, resolution=0.5, neighbors_method="gauss")
    assert ad.uns["paga"]["connectivities"].shape == (1, 1)
    assert adjusted_rand_score(world["state"], ad.obs["leiden"]) < 0.1
    assert abs(spearmanr(ad.obs["dpt_pseudotime"], world["t"]).statistic) < 0.3
    finer = singlecell_summary(noise, resolution=1.0, neighbors_method="gauss")
    assert finer.obs["leiden"].nunique() > 3  # clusters of noise, unrelated to the planted states
    assert adjusted_rand_score(world["state"], finer.obs["leiden"]) < 0.1


def test_leiden_recovers_the_planted_clusters(world, summary):
    assert summary.obs["leiden"].nunique() == 3
    assert adjusted_rand_score(world["state"], summary.obs["leiden"]) > 0.8


def test_dpt_follows_the_planted_trajectory(world, summary):
    pt = summary.obs["dpt_pseudotime"].to_numpy()
    assert np.isfinite(pt).all() and pt.min() == 0.0 and pt.max() == pytest.approx(1.0)
    assert pt[summary.uns["iroot"]] == 0.0
    assert abs(spearmanr(pt, world["t"]).statistic) > 0.8


def test_summary_holds_the_ecosystem_results(world, summary):
    n = world["codes"].shape[0]
    assert summary.shape == (n, 60)
    assert summary.obsm["X_pca"].shape == (n, 20)
    assert summary.obsm["X_diffmap"].shape[0] == n
    assert summary.obsp["connectivities"].shape == (n, n)
    assert summary.uns["paga"]["connectivities"].shape == (3, 3)
    assert list(summary.obs["state"]) == list(world["state"])  # obs carried over, in order
    s = summary.uns["superwidgets"]
    assert s["leiden_flavor"] == "igraph" and s["neighbors_method"] == "umap" and s["root"] == summary.uns["iroot"]
    # the input is not modified (log1p/scale run on a copy)
    assert world["codes"].max() > 10 and world["codes"].min() == 0


def test_root_fixes_the_direction_and_sparse_input_works(world):
    first = int(np.argmin(world["t"]))
    ad = singlecell_summary(sp.csr_matrix(world["codes"]), root=first, neighbors_method="gauss", seed=1)
    assert ad.uns["iroot"] == first and ad.obs["dpt_pseudotime"].iloc[first] == 0.0
    assert spearmanr(ad.obs["dpt_pseudotime"], world["t"]).statistic > 0.8  # positive: starts at t = 0
    by_name = singlecell_summary(world["codes"][:100], root=str(first % 100), neighbors_method="gauss", n_pcs=10)
    assert by_name.uns["iroot"] == first % 100


def test_phate_option(world):
    try:
        import phate  # noqa: F401
    except ImportError:
        # phate is not part of the [singlecell] extra: check the message says how to get it
        with pytest.raises(ImportError, match="pip install phate"):
            singlecell_summary(world["codes"][:200], phate=True, neighbors_method="gauss")
        return
    ad = singlecell_summary(world["codes"][:200], phate=True, neighbors_method="gauss")
    assert ad.obsm["X_phate"].shape == (200, 2) and np.isfinite(ad.obsm["X_phate"]).all()


def test_to_anndata(world):
    codes = world["codes"][:50]
    ad = to_anndata(codes, obs={"genotype": ["ctrl"] * 25 + ["mut"] * 25}, var_names=[f"f{i}" for i in range(60)])
    assert ad.shape == (50, 60) and ad.X.dtype == np.float32
    assert np.array_equal(ad.X, codes)
    assert list(ad.obs_names[:3]) == ["0", "1", "2"] and ad.var_names[5] == "f5"
    assert list(ad.obs["genotype"][24:26]) == ["ctrl", "mut"]
    assert list(to_anndata(codes).var_names[:2]) == ["latent_0", "latent_1"]
    assert sp.issparse(to_anndata(sp.csr_matrix(codes)).X)
    assert np.array_equal(to_anndata(torch.from_numpy(codes)).X, codes)
    import pandas as pd

    frame = pd.DataFrame({"death": np.arange(50.0)}, index=[f"img{i}" for i in range(50)])
    assert list(to_anndata(codes, obs=frame).obs["death"]) == list(np.arange(50.0))


def test_errors_say_what_to_fix(world):
    codes = world["codes"][:50]
    with pytest.raises(ValueError, match="obs has 49 rows but codes has 50 cells"):
        to_anndata(codes, obs={"a": np.arange(49)})
    with pytest.raises(ValueError, match="var_names has 2 names but codes has 60 latents"):
        to_anndata(codes, var_names=["a", "b"])
    with pytest.raises(ValueError, match="var_names must be unique"):
        to_anndata(codes, var_names=["a"] * 60)
    bad = codes.copy()
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match="codes contains NaN or Inf"):
        to_anndata(bad)
    with pytest.raises(ValueError, match=r"codes must be 2-D \(n cells, d latents\)"):
        to_anndata(codes[0])
    with pytest.raises(ValueError, match="negative values, so log1p is undefined; pass log1p=False"):
        singlecell_summary(codes - 1.0)
    with pytest.raises(ValueError, match="n_pcs must be an integer between 1 and min"):
        singlecell_summary(codes, n_pcs=60)
    with pytest.raises(ValueError, match="n_neighbors must be an integer between 2 and n - 1 = 49"):
        singlecell_summary(codes, n_neighbors=50)
    with pytest.raises(ValueError, match="resolution must be positive"):
        singlecell_summary(codes, resolution=0)
    with pytest.raises(ValueError, match="root=50 is out of range for 50 cells"):
        singlecell_summary(codes, root=50)
    with pytest.raises(ValueError, match="root='x' is not a cell name"):
        singlecell_summary(codes, root="x")
    with pytest.raises(ValueError, match="neighbors_method must be 'umap' or 'gauss'"):
        singlecell_summary(codes, neighbors_method="rapids")


@pytest.mark.parametrize("missing", ["scanpy", "anndata", "igraph"])
def test_missing_extra_says_how_to_install(monkeypatch, world, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import <missing>` raise ImportError
    with pytest.raises(ImportError, match=r"needs " + missing + r'.*pip install "superwidgets\[singlecell\]"'):
        singlecell_summary(world["codes"][:50])
    if missing == "anndata":
        with pytest.raises(ImportError, match=r'pip install "superwidgets\[singlecell\]"'):
            to_anndata(world["codes"][:50])


def test_importing_superwidgets_does_not_import_scanpy():
    code = (
        "import sys, superwidgets, superwidgets.science, superwidgets.science.singlecell;"
        "bad = [m for m in ('scanpy', 'anndata', 'igraph', 'pandas') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert singlecell.__all__ == ["singlecell_summary", "to_anndata"]
