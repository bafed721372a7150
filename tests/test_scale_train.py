"""Distributed SAE training (superwidgets.scale.train): 2 gloo ranks under torchrun match 1 rank; resume is exact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from _util import kill_job, run_group
from torch import nn

import superwidgets as sw
from superwidgets.scale import free_port, harvest, read_progress, train
from superwidgets.scale._util import alive as _alive
from superwidgets.scale._util import descendants
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


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the ranks through /proc (Linux)")
def test_stop_ends_a_launched_two_rank_run_and_every_rank(tmp_path):
    from superwidgets.scale import launch, stop

    store, _ = _toy_store(tmp_path / "acts")
    args = ["train", "--store", str(store.path), "--out", str(tmp_path / "run"), *KILL_ARGS]
    proc = launch(args, nproc=2, log=tmp_path / "run.log", env={"PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 120
    while (read_progress(tmp_path / "run" / "progress.json") or {}).get("done", 0) < 20:
        assert proc.poll() is None, (tmp_path / "run.log").read_text()[-2000:]
        assert time.monotonic() < deadline, "the run did not start in 120 s"
        time.sleep(0.05)
    ranks = descendants(proc.pid)
    assert len([p for p in ranks if _alive(p)]) >= 2  # torchrun's two ranks (and its helpers) are running
    stop(proc, timeout=10)
    assert proc.poll() is not None
    assert not [p for p in ranks if _alive(p)], "a rank outlived stop()"
    assert not (tmp_path / "run" / "sae" / "sae.json").exists()  # stopped mid-run: nothing final written


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


#: The command line of the SIGKILL test: long enough (600 steps) to kill mid-run, checkpoints every 20 steps.
KILL_ARGS = ["--arch", "topk", "--width", "48", "--k", "4", "--steps", "600", "--batch-size", "64"]
KILL_ARGS += ["--checkpoint-every", "20", "--log-every", "10", "--threads", "1", "--quiet"]


def _train_cmd(store: Path, out: Path) -> list[str]:
    """``python -m superwidgets.scale train ...`` under torchrun with 2 gloo ranks (a fresh port each time)."""
    run = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}"]
    return [*run, "-m", "superwidgets.scale", "train", "--store", str(store), "--out", str(out), *KILL_ARGS]


def _run_through_gloo_aborts(cmd, tmp_path: Path, env: dict, *, fresh: bool, log: list[str] | None = None):
    """Run a 2-rank training command; rerun it (at most twice) when a rank died in gloo's C++ code.

    On two loaded cores a gloo rank now and then aborts (SIGABRT, "terminate called without an active
    exception", about 1 run in 8 here) — torch's transport, not this package. A crash is what the resume is
    for, so the rerun resumes (``fresh=False``) and must still end at the same weights; an uninterrupted
    reference run (``fresh=True``) is instead restarted from scratch in an empty folder.
    """
    import shutil

    for attempt in range(3):
        c = cmd()
        if fresh and attempt:
            shutil.rmtree(c[c.index("--out") + 1], ignore_errors=True)
        got = run_group(c, cwd=tmp_path, env=env, timeout=180)
        if log is not None:
            log.append(got.stderr)
        if got.returncode == 0 or "terminate called" not in got.stderr:
            return got
        print(f"a gloo rank aborted (attempt {attempt + 1}); rerunning")
    return got


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the ranks through /proc (Linux)")
def test_a_training_run_killed_with_sigkill_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path):
    import signal

    store, _ = _toy_store(tmp_path / "acts")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    full = _run_through_gloo_aborts(lambda: _train_cmd(store.path, tmp_path / "full"), tmp_path, env, fresh=True)
    assert full.returncode == 0, full.stderr[-3000:]
    assert "resuming" not in full.stderr and read_progress(tmp_path / "full" / "progress.json")["resumed_from"] == 0

    out, log = tmp_path / "killed", tmp_path / "killed.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen(
            _train_cmd(store.path, out),
            cwd=tmp_path,
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    ranks: list[int] = []
    ck_step, deadline = 0, time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:  # written atomically: either absent or whole
            ck_step = json.loads((out / "checkpoint.json").read_text())["step"]
        except (OSError, ValueError):
            ck_step = 0
        if ck_step >= 60:  # three checkpoints written: the kill lands mid-run
            ranks = descendants(proc.pid)
            break
        time.sleep(0.01)
    assert proc.poll() is None and ranks, log.read_text()[-3000:]
    # SIGKILL the job: torchrun's process group, then each rank's (torchrun puts the ranks in sessions of
    # their own, so killing torchrun's group alone leaves them training as orphans)
    kill_job(proc.pid, ranks)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while any(map(_alive, ranks)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(map(_alive, ranks)), "a rank survived the kill"
    # earned: the run was cut short -- no SAE, a checkpoint and a progress file from the middle of the run
    assert not (out / "sae" / "sae.json").exists()
    ck = json.loads((out / "checkpoint.json").read_text())
    prog = read_progress(out / "progress.json")
    assert prog["state"] == "running" and prog["done"] < 600  # written at most twice a second: may lag
    assert 60 <= ck["step"] < 600

    first: list[str] = []
    again = _run_through_gloo_aborts(lambda: _train_cmd(store.path, out), tmp_path, env, fresh=False, log=first)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming from {out / 'checkpoint.json'} at step {ck['step']} of 600" in first[0]
    prog = read_progress(out / "progress.json")
    assert prog["state"] == "done" and prog["done"] == 600 and prog["resumed_from"] >= ck["step"] > 0
    assert not (out / "checkpoint.json").exists() and not list(out.glob(".*.tmp"))
    a, b = load_sae(tmp_path / "full" / "sae"), load_sae(out / "sae")
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    diff = max((sa[k].float() - sb[k].float()).abs().max().item() for k in sa)
    print(
        f"killed after the checkpoint of step {ck['step']} of 600, resumed on 2 ranks; largest weight difference {diff}"
    )
    assert diff == 0 and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert prog["metrics"] == read_progress(tmp_path / "full" / "progress.json")["metrics"]  # the last logged loss


def test_a_kill_between_the_two_renames_of_a_checkpoint_still_resumes_exactly(tmp_path):
    """write_pair renames the tensors, then the JSON: a SIGKILL between leaves a mismatched pair on disk."""
    import shutil

    store, _ = _toy_store(tmp_path / "acts")
    kw = {"arch": "topk", "seed": 0, "checkpoint_every": 10, **RECIPE}
    full = train(store, tmp_path / "full", **kw)
    cut = tmp_path / "cut"
    assert train(store, cut, until=10, **kw) is None
    shutil.copy(cut / "checkpoint.json", tmp_path / "old.json")
    shutil.copy(cut / "checkpoint.safetensors", tmp_path / "old.safetensors")
    assert train(store, cut, until=20, **kw) is None
    # the state of a kill after os.replace(tensors) and before os.replace(json): new tensors, old JSON;
    # the new JSON in write_pair's temporary file, the old tensors in its backup link, plus a half-written
    # temporary file of an earlier kill
    shutil.move(cut / "checkpoint.json", cut / ".checkpoint.json.0123456789ab.tmp")
    shutil.copy(tmp_path / "old.json", cut / "checkpoint.json")
    shutil.copy(tmp_path / "old.safetensors", cut / ".checkpoint.safetensors.ba9876543210.tmp")
    half = (tmp_path / "old.safetensors").read_bytes()
    (cut / ".checkpoint.safetensors.ffffffffffff.tmp").write_bytes(half[: len(half) // 2])
    # earned: the pair on disk no longer matches, so the plain loader's check would refuse it
    from safetensors.torch import load_file

    from superwidgets.engine.files import digest

    old_doc = json.loads((cut / "checkpoint.json").read_text())
    assert old_doc["step"] == 10
    assert digest(load_file(str(cut / "checkpoint.safetensors"))) != old_doc["tensors_sha256"]

    resumed = train(store, cut, **kw)
    assert read_progress(cut / "progress.json")["resumed_from"] == 20  # the newest complete pair
    assert torch.equal(resumed.W_dec, full.W_dec) and torch.equal(resumed.W_enc, full.W_enc)
    assert resumed.history["loss"] == full.history["loss"]
    assert not list(cut.glob(".*.tmp"))  # the leftovers are cleaned up


def test_a_trained_sae_loads_into_the_sae_basis_and_the_feature_dashboard(tmp_path):
    import numpy as np

    model, data = sw.zoo.load("breast-cancer-mlp")
    store = harvest(model, "hidden", data.X, tmp_path / "acts", rows_per_shard=200, chunk_size=64)
    assert len(store) == 569 and store.d == 16 and store.n_shards == 3
    train(store, tmp_path / "run", arch="topk", width=48, k=4, steps=300, batch_size=64, seed=0)
    sae = load_sae(tmp_path / "run" / "sae")
    assert isinstance(sae, TopKSAE) and sae.n_latents == 48
    acts = store.read_all()
    with torch.no_grad():
        assert torch.equal(acts, torch.relu(model.inp(data.X)))  # the store holds the site's activations
        codes = sae.encode(acts)
        # the SAE works on the raw activations (the training's normalisation is folded back in)
        fvu = ((sae.decode(codes) - acts) ** 2).sum() / ((acts - acts.mean(0)) ** 2).sum()
    print(f"fraction of variance unexplained on the harvested rows: {fvu.item():.3f}")
    assert fvu < 0.3

    dash = sw.FeatureDashboard(model, "hidden", sae, data, effect_sample=0, effect_candidates=0, top_k=5)
    try:
        c = codes.numpy()
        np.testing.assert_allclose(dash.frequency, (c > 0).mean(0), atol=1e-6)
        np.testing.assert_allclose(dash.max_activation, c.max(0), rtol=1e-5, atol=1e-6)
        assert dash.n_inputs == 569 and dash.n_dead == int((c.max(0) <= 0).sum()) < 48
        f = int(dash.order[0])  # the most frequent latent, selected first
        assert dash.selected == f and dash.error == "" and dash.frequency[f] == dash.frequency.max() > 0.1
        assert list(dash.top_indices) == list(np.argsort(-c[:, f], kind="stable")[:5])
        # an edit in the SAE basis, through the dashboard's Lens: the latent's decoder row is taken out
        lens = dash.lens
        e = lens.edit("hidden", sw.Ablate([f]), basis=sw.SAE(sae))
        try:
            r = lens.run(data.X)
        finally:
            lens.remove(e)
        with torch.no_grad():
            direct = model.out(acts - codes[:, f : f + 1] * sae.W_dec[f])
        assert (r.edited - r.baseline).abs().max() > 1e-2
        torch.testing.assert_close(r.edited, direct, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(r.baseline, model(data.X))
    finally:
        dash.lens.close()
