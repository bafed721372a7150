"""Distributed SAE training (superwidgets.scale.train): 2 gloo ranks under torchrun match 1 rank; resume is exact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _util import run_group
from torch import nn

import superwidgets as sw
from superwidgets.scale import free_port, harvest, read_progress, train
from superwidgets.science.sae import TopKSAE, fit_sae, load_sae, sparse_features

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
ARCHS = ("topk", "relu", "gated", "jumprelu")
RECIPE = {"width": 48, "steps": 40, "batch_size": 64, "log_every": 10}

#: What each rank runs under torchrun: the four architectures on one store, in one launch.
RANK_SCRIPT = """
import sys, torch
torch.set_num_threads(1)
from superwidgets.scale import train
store, out = sys.argv[1], sys.argv[2]
for arch in {archs!r}:
    train(store, out + "/" + arch, arch=arch, seed=0, checkpoint_every=15, **{recipe!r})
"""


def _toy_store(path: Path):
    """A store of 4,096 toy activations (d = 16, 32 sparse features), harvested at an identity site."""
    X, _, _ = sparse_features(4096, d=16, n_features=32, seed=0)
    return harvest(nn.Sequential(nn.Identity()), "0", X, path, rows_per_shard=600, chunk_size=512), X


def _torchrun(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    got = run_group(cmd, cwd=cwd, env=env, timeout=timeout)  # a timeout kills torchrun and its ranks
    assert got.returncode == 0, got.stdout[-3000:] + got.stderr[-3000:]
    return got


def test_two_gloo_ranks_train_the_same_sae_as_one_rank(tmp_path):
    store, X = _toy_store(tmp_path / "acts")
    one = {a: train(store, tmp_path / "one" / a, arch=a, seed=0, checkpoint_every=15, **RECIPE) for a in ARCHS}
    # earned: the seed changes the weights by far more than the tolerance
    other = train(store, tmp_path / "seed1", arch="topk", seed=1, checkpoint_every=15, **RECIPE)
    assert (other.W_dec - one["topk"].W_dec).abs().max() > 1e-2
    # the same recipe as fit_sae on the same rows (normalisation from float64 shard sums: rounding only)
    ref = fit_sae(X, arch="relu", seed=0, progress=False, device="cpu", **RECIPE)
    assert (ref.W_dec - one["relu"].W_dec).abs().max() < 1e-4

    script = tmp_path / "ranks.py"
    script.write_text(RANK_SCRIPT.format(archs=ARCHS, recipe=RECIPE))
    _torchrun([str(script), str(store.path), str(tmp_path / "two")], cwd=tmp_path)
    for a in ARCHS:
        two = load_sae(tmp_path / "two" / a / "sae")
        diff = (two.W_dec - one[a].W_dec).abs().max().item()
        print(f"{a}: largest decoder difference, 1 vs 2 ranks: {diff:.3g}")
        assert diff < 1e-5, a
        assert type(two) is type(one[a])
        prog = read_progress(tmp_path / "two" / a / "progress.json")
        assert prog["state"] == "done" and prog["world_size"] == 2 and prog["done"] == RECIPE["steps"]
        assert not (tmp_path / "two" / a / "checkpoint.json").exists()  # removed once the run completed
    # the saved SAE goes straight into the engine's SAE basis
    sae = load_sae(tmp_path / "two" / "topk" / "sae")
    assert isinstance(sae, TopKSAE)
    basis = sw.SAE(sae)
    assert basis is not None


def test_checkpoint_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path):
    store, _ = _toy_store(tmp_path / "acts")
    kw = {"arch": "topk", "seed": 0, "checkpoint_every": 10, **RECIPE}
    full = train(store, tmp_path / "full", **kw)
    assert train(store, tmp_path / "cut", until=25, **kw) is None
    ck = json.loads((tmp_path / "cut" / "checkpoint.json").read_text())
    assert ck["step"] == 25 and read_progress(tmp_path / "cut" / "progress.json")["state"] == "stopped"
    # earned: the checkpoint's decoder is not yet the final one
    from safetensors.torch import load_file

    mid = load_file(str(tmp_path / "cut" / "checkpoint.safetensors"))["sae.W_dec"]
    assert (mid - full.W_dec).abs().max() > 1e-3
    resumed = train(store, tmp_path / "cut", **kw)
    assert torch.equal(resumed.W_dec, full.W_dec) and torch.equal(resumed.W_enc, full.W_enc)
    assert resumed.history["loss"] == full.history["loss"]


def test_a_checkpoint_of_another_recipe_is_refused(tmp_path):
    store, _ = _toy_store(tmp_path / "acts")
    train(store, tmp_path / "run", arch="relu", seed=0, checkpoint_every=10, until=10, **RECIPE)
    with pytest.raises(ValueError, match=r"another run \(recipe differs.*resume=False"):
        train(store, tmp_path / "run", arch="relu", seed=1, checkpoint_every=10, **RECIPE)
    fresh = train(store, tmp_path / "run", arch="relu", seed=1, checkpoint_every=10, resume=False, **RECIPE)
    assert fresh is not None and (tmp_path / "run" / "sae" / "sae.json").exists()


def test_bad_training_arguments_say_how_to_fix_them(tmp_path):
    store, _ = _toy_store(tmp_path / "acts")
    with pytest.raises(ValueError, match="k = 99 is larger than width = 48"):
        train(store, tmp_path / "x", arch="topk", k=99, **RECIPE)
    with pytest.raises(FileNotFoundError, match=r"index\.json is missing"):
        train(tmp_path / "nowhere", tmp_path / "x")


def test_the_notebook_pattern_launches_a_run_and_reads_its_progress(tmp_path):
    from superwidgets.scale import launch

    store, _ = _toy_store(tmp_path / "acts")
    assert read_progress(tmp_path / "run" / "progress.json") is None  # nothing yet
    args = ["train", "--store", str(store.path), "--out", str(tmp_path / "run"), "--arch", "relu", "--width", "48"]
    args += ["--steps", "30", "--batch-size", "64", "--threads", "1", "--quiet"]
    proc = launch(args, nproc=1, log=tmp_path / "run.log", env={"PYTHONPATH": str(ROOT)})
    assert proc.wait(timeout=60) == 0, (tmp_path / "run.log").read_text()[-2000:]
    prog = read_progress(tmp_path / "run" / "progress.json")
    assert prog["state"] == "done" and prog["done"] == prog["total"] == 30 and prog["fraction"] == 1.0
    assert set(prog["metrics"]) == {"loss", "mse", "l0", "dead_fraction"}
    assert load_sae(tmp_path / "run" / "sae").n_latents == 48
