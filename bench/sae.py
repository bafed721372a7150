"""SAE training throughput: ``superwidgets.science.sae.fit_sae`` vs SAELens' trainer on the same activations.

Workload: the toy data of Sharkey et al. (d = 256, 512 true features, ≈ 5 active
per sample, magnitudes U[0, 1]), 65,536 activations in memory; a TopK SAE with
512 latents, k = 5, batch 1024, 300 steps (307,200 activations), Adam at lr 1e-3.

Figures (time for the same number of activations; ratio = median over
repetitions of ours ÷ baseline, each repetition running every trainer back to
back in alternating order; < 1 means we train faster):

- ``topk_vs_saelens``: baseline is SAELens' ``SAETrainer`` fitting a
  ``TopKTrainingSAE`` fed by an iterator over the same batches (needs the
  ``bench`` extra: ``pip install -e .[bench]``). Target ≤ 1.1: parity, within
  the noise of a shared machine.
- ``topk_vs_plain_torch`` (information): baseline is a plain PyTorch loop
  (encode → top-k → decode → MSE → Adam, nothing else: no normalisation, dead
  latent tracking, decoder-norm constraint, logging): the floor a trainer's
  bookkeeping sits on.
- ``relu_vs_saelens`` (information): the same for ReLU + L1 (SAELens' ``standard``).

Both trainers also report the MMCS they reach in those 300 steps (quality at
equal compute; not a pass/fail figure).
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable
from typing import Any

import torch

from superwidgets.science.metrics import mmcs
from superwidgets.science.sae import fit_sae, sparse_features

from ._common import median, paired_ratio, row, table

D, N_FEATURES, N, WIDTH, K, BATCH, STEPS, LR = 256, 512, 65_536, 512, 5, 1024, 300, 1e-3
#: ours ÷ SAELens: parity, with room for the noise of a shared 2-core machine
TARGET = 1.1


def _have_saelens() -> bool:
    try:
        import sae_lens  # noqa: F401
    except Exception:  # any failure to import means "not available"
        return False
    return True


def _batches(X: torch.Tensor, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(X.shape[0], generator=gen)
        for i in range(0, X.shape[0] - BATCH + 1, BATCH):
            yield X[perm[i : i + BATCH]]


def _saelens(X: torch.Tensor, arch: str) -> torch.Tensor:
    """Train with SAELens' own trainer; returns the decoder."""
    import sae_lens
    from sae_lens.config import LoggingConfig
    from sae_lens.training.sae_trainer import SAETrainer, SAETrainerConfig

    if arch == "topk":
        sae = sae_lens.TopKTrainingSAE(sae_lens.TopKTrainingSAEConfig(d_in=D, d_sae=WIDTH, k=K))
    else:
        sae = sae_lens.StandardTrainingSAE(sae_lens.StandardTrainingSAEConfig(d_in=D, d_sae=WIDTH, l1_coefficient=5.0))
    cfg = SAETrainerConfig(
        total_training_samples=STEPS * BATCH,
        train_batch_size_samples=BATCH,
        lr=LR,
        lr_end=LR,
        device="cpu",
        n_checkpoints=0,
        save_final_checkpoint=False,
        logger=LoggingConfig(log_to_wandb=False),
    )
    with contextlib.redirect_stderr(io.StringIO()):  # its tqdm bar
        SAETrainer(cfg=cfg, sae=sae, data_provider=_batches(X)).fit()
    return sae.W_dec.detach()


def _ours(X: torch.Tensor, arch: str) -> torch.Tensor:
    kw: dict[str, Any] = {"k": K} if arch == "topk" else {}
    sae = fit_sae(X, arch=arch, width=WIDTH, steps=STEPS, batch_size=BATCH, lr=LR, progress=False, device="cpu", **kw)
    return sae.W_dec.detach()


def _plain(X: torch.Tensor, arch: str) -> torch.Tensor:
    """The textbook TopK loop: the least a trainer can do per step."""
    torch.manual_seed(0)
    W_dec = torch.nn.Parameter(torch.randn(WIDTH, D) / D**0.5)
    W_enc = torch.nn.Parameter(W_dec.detach().T.clone())
    b_enc = torch.nn.Parameter(torch.zeros(WIDTH))
    b_dec = torch.nn.Parameter(torch.zeros(D))
    opt = torch.optim.Adam([W_dec, W_enc, b_enc, b_dec], lr=LR)
    batches = _batches(X)
    for _ in range(STEPS):
        x = next(batches)
        pre = (x - b_dec) @ W_enc + b_enc
        top = pre.topk(K, dim=-1)
        c = torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))
        loss = (c @ W_dec + b_dec - x).pow(2).sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return W_dec.detach()


def _time(fn: Callable[[], torch.Tensor]) -> tuple[float, torch.Tensor]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def run(reps: int | None = None) -> tuple[list[dict[str, Any]], str]:
    reps = reps or 5
    X, dirs, _ = sparse_features(N, d=D, n_features=N_FEATURES, mean_active=5, seed=0)
    have = _have_saelens()
    variants: dict[str, Callable[[], torch.Tensor]] = {
        "ours_topk": lambda: _ours(X, "topk"),
        "plain_topk": lambda: _plain(X, "topk"),
    }
    if have:
        variants["saelens_topk"] = lambda: _saelens(X, "topk")
        variants["ours_relu"] = lambda: _ours(X, "relu")
        variants["saelens_relu"] = lambda: _saelens(X, "relu")
    times: dict[str, list[float]] = {k: [] for k in variants}
    quality: dict[str, float] = {}
    _ours(X[: BATCH * 4], "topk")  # warm-up (allocator, kernels)
    for rep in range(reps):
        order = list(variants) if rep % 2 == 0 else list(reversed(variants))
        for name in order:
            secs, W = _time(variants[name])
            times[name].append(secs)
            quality[name] = mmcs(dirs, W)
    acts = STEPS * BATCH

    def extra(name: str) -> dict[str, Any]:
        t = median(times[name])
        return {
            "acts_per_s": round(acts / t),
            "mmcs": round(quality[name], 3),
            "samples": [round(s, 3) for s in times[name]],
        }

    rows = []

    def figure(name: str, ours: str, base: str, target: float | None, baseline_is: str) -> None:
        # paired: each repetition ran both back to back, so the per-repetition ratio cancels slow drifts
        ratio = paired_ratio(times[ours], times[base])
        b = median(times[base])
        rows.append(
            row(
                name,
                b * ratio,
                b,
                target,
                unit="s",
                baseline_is=baseline_is,
                ours_median=round(median(times[ours]), 4),
                ours_info=extra(ours),
                base_info=extra(base),
                reps=reps,
            )
        )

    if have:
        figure("topk_vs_saelens", "ours_topk", "saelens_topk", TARGET, "SAELens SAETrainer + TopKTrainingSAE")
    figure("topk_vs_plain_torch", "ours_topk", "plain_topk", None, "plain PyTorch TopK loop")
    if have:
        figure("relu_vs_saelens", "ours_relu", "saelens_relu", None, "SAELens SAETrainer + StandardTrainingSAE")
    return rows, _body(rows, have)


def _body(rows: list[dict[str, Any]], have: bool) -> str:
    def notes(r: dict[str, Any]) -> str:
        o, b = r["ours_info"], r["base_info"]
        return (
            f"{r['baseline_is']}; {o['acts_per_s']:,} vs {b['acts_per_s']:,} activations/s; "
            f"MMCS after {STEPS} steps {o['mmcs']:.3f} vs {b['mmcs']:.3f}; paired median of {r['reps']}"
        )

    saelens_note = (
        "SAELens is installed: the baseline is its own trainer."
        if have
        else "SAELens is not installed here (`pip install -e .[bench]`): only the plain-PyTorch reference ran."
    )
    return (
        table(rows, notes)
        + f"""

Same activations for every trainer: the toy data of Sharkey et al. (d = {D}, {N_FEATURES} unit-norm
features, ≈ 5 active per sample, magnitudes U[0, 1]), {N:,} activations in memory; SAE width
{WIDTH}, TopK k = {K}; batch {BATCH}, {STEPS} steps ({STEPS * BATCH:,} activations), Adam lr {LR:g},
CPU float32. ours = `fit_sae(X, arch=..., width={WIDTH}, steps={STEPS}, batch_size={BATCH}, lr={LR:g},
progress=False)`, which includes its normalisation pass, dead-latent tracking (AuxK for TopK),
the unit-norm decoder constraint and history logging every 50 steps. SAELens = `SAETrainer` on a
`TopKTrainingSAE` (`StandardTrainingSAE` with L1 coefficient 5 for ReLU), default settings, fed the
same shuffled batches by an iterator. The plain loop has none of the bookkeeping. The MMCS column
is quality at equal compute, for information: SAELens' defaults are tuned for long language-model
runs, not {STEPS} steps. {saelens_note}
"""
    )
