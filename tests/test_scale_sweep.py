"""Sweeps past one process (superwidgets.scale.sweep): a cohort split over 2 gloo ranks equals one process."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch
from _util import run_group

import superwidgets as sw
from superwidgets.scale import free_port, sweep
from superwidgets.scale.spec import load_model

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]


def test_a_sweep_split_over_two_ranks_equals_one_process(tmp_path):
    model, X = load_model("breast-cancer-mlp")
    softmax = lambda y: y.softmax(-1)  # noqa: E731
    with sw.Lens(model) as lens:
        mean_ref = lens.sweep("hidden", X, op="mean", readout=softmax)
        ablate_ref = lens.sweep("hidden", X, op="ablate", readout=softmax)
    assert mean_ref.shape == (16, 569, 2)
    # earned: the two ops give different effects, so matching one of them means something
    assert (mean_ref - ablate_ref).abs().max() > 1e-2

    out = tmp_path / "effects"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}"]
    cmd += ["-m", "superwidgets.scale", "sweep", "--model", "breast-cancer-mlp", "--site", "hidden"]
    cmd += ["--op", "mean", "--readout", "softmax", "--out", str(out), "--threads", "1", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    got = run_group(cmd, cwd=tmp_path, env=env, timeout=300)  # a timeout kills torchrun and its ranks
    assert got.returncode == 0, got.stdout[-3000:] + got.stderr[-3000:]
    from safetensors.torch import load_file

    effect = load_file(str(out.with_suffix(".safetensors")))["effect"]
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["world_size"] == 2 and doc["shape"] == [16, 569, 2]
    diff = (effect - mean_ref).abs().max().item()
    print(f"largest difference, 2-rank vs 1-process sweep: {diff:.3g}")
    assert diff <= 1e-6  # the mean is the whole cohort's on both ranks, not each slice's
    assert torch.allclose(effect, mean_ref, atol=1e-6, rtol=0)


def test_one_process_sweep_is_the_lens_sweep(tmp_path):
    model, X = load_model("breast-cancer-mlp")
    with sw.Lens(model) as lens:
        ref = lens.sweep("hidden", X[:100], features=[1, 3, 5])
        got = sweep(lens, "hidden", X[:100], features=[1, 3, 5])
        assert lens.edits == []
    assert torch.equal(got, ref)
    with pytest.raises(TypeError, match=r"Lens or a torch\.nn\.Module"):
        sweep("model", "hidden", X)
    with pytest.raises(ValueError, match=r"tensor \(n, \.\.\.\) holding the whole cohort"):
        sweep(model, "hidden", [1, 2])
