"""Past one machine (``superwidgets.scale``): what the disk store and the ranks cost.

Workload: an MLP 784-512-512-10 (seeded), 20,000 random inputs, site ``"2"`` (the first hidden
layer after its ReLU, width 512): 20,000 rows × 512 float32 = 41 MB.

Figures (each a median over ``reps`` repetitions; no targets -- these are costs to know, not goals):

* ``harvest_store`` -- :func:`superwidgets.scale.harvest` to sharded safetensors in a temporary
  folder (65,536-row shards, chunks of 256 inputs), against ``baseline`` = the plain in-memory
  :func:`superwidgets.science.sae.harvest` with the same chunks. Rows/s and MB written are extras.
* ``train_store_1_rank`` -- :func:`superwidgets.scale.train` (TopK, 2,048 latents, batch 256,
  ``STEPS`` steps, one thread) reading batches from the memory-mapped store, against ``baseline`` =
  :func:`superwidgets.science.sae.fit_sae` on the same rows in memory: the cost of the store reads.
* ``train_2_ranks_vs_1`` -- the same training under ``torchrun --nproc_per_node=2`` (gloo, one
  thread per rank, global batch 256 = 128 per rank) against the same under ``--nproc_per_node=1``,
  seconds per step from rank 0's progress file (start-up excluded). On a 2-core machine this measures
  the overhead of gradient all-reduce and the split, not a speed-up: each rank does half the work but
  both share the cores with everything else.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._common import ROOT, median, row, table

N_INPUTS, STEPS, WIDTH, BATCH = 20_000, 100, 2048, 256


def _model_and_inputs() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    return model.eval(), torch.randn(N_INPUTS, 784, generator=torch.Generator().manual_seed(1))


def _launch(script: Path, store: Path, out: Path, nproc: int) -> float:
    """Seconds per step of a torchrun training run, from rank 0's progress file."""
    from superwidgets.scale import free_port

    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", f"--master_port={free_port()}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    got = subprocess.run([*cmd, str(script), str(store), str(out)], env=env, capture_output=True, text=True)
    if got.returncode:
        raise RuntimeError(f"torchrun failed: {got.stderr[-2000:]}")
    prog = json.loads((out / "progress.json").read_text())
    return prog["elapsed_s"] / prog["done"]


_SCRIPT = """
import sys, torch
torch.set_num_threads(1)
from superwidgets.scale import train
train(sys.argv[1], sys.argv[2], arch="topk", width={width}, steps={steps}, batch_size={batch}, seed=0,
      checkpoint_every=10**9, log_every=10**9)
"""


def run(reps: int | None = None) -> tuple[list[dict[str, Any]], str]:
    from superwidgets.scale import harvest, train
    from superwidgets.science.sae import fit_sae
    from superwidgets.science.sae import harvest as plain_harvest

    reps = reps or 3
    model, X = _model_and_inputs()
    tmp = Path(tempfile.mkdtemp(prefix="bench-dist-"))
    try:
        t_store, t_plain, mb = [], [], 0.0
        for i in range(reps):
            t0 = time.perf_counter()
            plain = plain_harvest(model, "2", X, chunk_size=256)
            t1 = time.perf_counter()
            store = harvest(model, "2", X, tmp / f"store{i}", rows_per_shard=65536, chunk_size=256)
            t2 = time.perf_counter()
            t_plain.append(t1 - t0)
            t_store.append(t2 - t1)
            mb = sum(p.stat().st_size for p in (tmp / f"store{i}").iterdir()) / 1e6
        assert store is not None and torch.equal(store.read_all(), plain)
        rows_n = len(store)

        t_train, t_fit = [], []
        kw = {"arch": "topk", "width": WIDTH, "steps": STEPS, "batch_size": BATCH, "seed": 0, "log_every": 10**9}
        for i in range(reps):
            t0 = time.perf_counter()
            fit_sae(plain, progress=False, device="cpu", **kw)
            t1 = time.perf_counter()
            train(store, tmp / f"train{i}", checkpoint_every=10**9, **kw)
            t2 = time.perf_counter()
            t_fit.append((t1 - t0) / STEPS)
            t_train.append((t2 - t1) / STEPS)

        script = tmp / "rank.py"
        script.write_text(_SCRIPT.format(width=WIDTH, steps=STEPS, batch=BATCH))
        one, two = [], []
        for i in range(reps):
            one.append(_launch(script, store.path, tmp / f"one{i}", 1))
            two.append(_launch(script, store.path, tmp / f"two{i}", 2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rows = [
        row(
            "harvest_store",
            median(t_store),
            median(t_plain),
            None,
            baseline_is="in-memory science.sae.harvest",
            rows_per_s=round(rows_n / median(t_store)),
            baseline_rows_per_s=round(rows_n / median(t_plain)),
            mb_written=round(mb, 1),
            reps=reps,
        ),
        row("train_store_1_rank", median(t_train), median(t_fit), None, baseline_is="fit_sae in memory", reps=reps),
        row(
            "train_2_ranks_vs_1",
            median(two),
            median(one),
            None,
            baseline_is="torchrun, 1 rank",
            steps_per_s_2=round(1 / median(two), 2),
            steps_per_s_1=round(1 / median(one), 2),
            reps=reps,
        ),
    ]

    def notes(r: dict[str, Any]) -> str:
        if r["name"] == "harvest_store":
            return (
                f"{r['rows_per_s']:,} rows/s to disk vs {r['baseline_rows_per_s']:,} in memory; "
                f"{r['mb_written']} MB written"
            )
        if r["name"] == "train_store_1_rank":
            return "seconds per step: batches gathered from the memory-mapped shards vs a tensor in memory"
        return (
            f"seconds per step: {r['steps_per_s_2']} steps/s on 2 gloo ranks vs {r['steps_per_s_1']} on 1; "
            f"{os.cpu_count()} cores: overhead and correctness, not speed-up"
        )

    body = (
        f"MLP 784-512-512-10, {N_INPUTS:,} inputs, site width 512; TopK SAE of {WIDTH:,} latents, batch {BATCH}, "
        f"{STEPS} steps, one thread per rank; see `bench/dist.py`.\n\n" + table(rows, notes)
    )
    return rows, body
