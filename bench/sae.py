"""SAE training race: ``superwidgets.science.sae.fit_sae`` vs SAELens' trainer, time *and* quality.

Workload: the CI-sized toy data of Sharkey et al. (d = 64, 128 true features, ≈ 5
active per sample, magnitudes U[0, 1]; data seed 1), 20,000 activations in memory;
SAEs of 256 latents (twice the true features), batch 256, 1,500 steps.

Fair by construction:

- both trainers start from their *own* random initialisation (ours: the seed's
  ``"sae.init"`` stream, independent of the data's; SAELens: its own init under
  ``torch.manual_seed``), and the benchmark asserts that neither starts near the
  truth (MMCS of the initial decoder < 0.4; chance is ≈ 0.34);
- the same activations in the same units (ours normalises inside ``fit_sae``;
  SAELens is handed the activations already scaled by the same factor) and the
  same batches in the same order (the index stream ``fit_sae`` draws);
- the same loss coefficients, learning rate and schedule (SAELens' trainer is
  given ours: lr ``default_lr(64)``, one rate for all its parameters; 5 %
  linear warm-up of the lr and of the sparsity coefficient, linear decay to 0
  over the last 20 %), the same number of steps, one CPU thread each.

Each trainer's decoder is copied every ``EVERY`` optimiser steps by one global Adam
post-step hook (the same for both; a 64 kB copy: noise in the timing) and scored
afterwards. Per architecture the figure is the wall time
to reach MMCS 0.95 (steps to 0.95 × the run's seconds per step); ratio = median
over repetitions of ours ÷ SAELens, each repetition running both back to back
in alternating order. Target ≤ 1 for every architecture SAELens trains.
"""

from __future__ import annotations

import contextlib
import io
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

import superwidgets.science.sae as sae_mod
from superwidgets.science.metrics import mmcs
from superwidgets.science.sae import default_lr, fit_sae, sparse_features, stream

from ._common import median, paired_ratio, row, table

D, N_FEATURES, N, WIDTH, K, BATCH, STEPS, EVERY = 64, 128, 20_000, 256, 5, 256, 1500, 10
SEED = 1
LR = default_lr(D)
WARMUP, DECAY_FROM = 0.05, 0.8
#: ours ÷ SAELens in wall time to MMCS 0.95
TARGET = 1.0
BAR = 0.95
#: an initial decoder must score below this (chance at d = 64 with 256 latents: ≈ 0.35)
START_BELOW = 0.4
ARCHS = ("topk", "relu", "gated", "jumprelu")
#: the coefficients both trainers use (fit_sae's defaults, in the same normalised units)
COEF = {"relu": 0.3, "gated": 0.3, "jumprelu": 0.01}


def _have_saelens() -> str | None:
    try:
        import sae_lens
    except Exception:  # any failure to import means "not available"
        return None
    return str(getattr(sae_lens, "__version__", "?"))


def _normalised(X: torch.Tensor) -> torch.Tensor:
    """``X`` in the units fit_sae trains in: mean squared distance to the mean = 1."""
    var = (X - X.mean(0)).pow(2).sum(1).mean().item()
    return X / math.sqrt(var)


def _batches(X: torch.Tensor):
    """The batches fit_sae(seed=SEED) draws, in its order."""
    idx = sae_mod._batches(X.shape[0], BATCH, stream(SEED, "train.batches"))
    while True:
        yield X[next(idx)]


@contextlib.contextmanager
def _snapshots(out: list[torch.Tensor], W_dec: Callable[[], torch.Tensor]):
    """Copy the decoder ``W_dec()`` after every EVERY-th optimiser step, of whichever trainer runs
    (both take exactly one Adam step per training step): one global post-step hook, the same for both."""
    count = [0]

    def hook(*_: Any) -> None:
        count[0] += 1
        if count[0] % EVERY == 0:
            out.append(W_dec().detach().clone())

    handle = register_optimizer_step_post_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _saelens(Xn: torch.Tensor, arch: str) -> list[torch.Tensor]:
    """Train with SAELens' own trainer on ``Xn``; returns the decoder every EVERY steps."""
    import sae_lens
    from sae_lens.config import LoggingConfig
    from sae_lens.training.sae_trainer import SAETrainer, SAETrainerConfig

    n_warm = int(WARMUP * STEPS)
    torch.manual_seed(SEED)
    if arch == "topk":
        sae = sae_lens.TopKTrainingSAE(sae_lens.TopKTrainingSAEConfig(d_in=D, d_sae=WIDTH, k=K))
    elif arch == "relu":
        sae = sae_lens.StandardTrainingSAE(
            sae_lens.StandardTrainingSAEConfig(d_in=D, d_sae=WIDTH, l1_coefficient=COEF[arch], l1_warm_up_steps=n_warm)
        )
    elif arch == "gated":
        sae = sae_lens.GatedTrainingSAE(
            sae_lens.GatedTrainingSAEConfig(d_in=D, d_sae=WIDTH, l1_coefficient=COEF[arch], l1_warm_up_steps=n_warm)
        )
    else:
        sae = sae_lens.JumpReLUTrainingSAE(
            sae_lens.JumpReLUTrainingSAEConfig(
                d_in=D,
                d_sae=WIDTH,
                l0_coefficient=COEF[arch],
                l0_warm_up_steps=n_warm,
                jumprelu_init_threshold=0.001,
                jumprelu_bandwidth=0.001,
            )
        )
    with torch.no_grad():
        sae.b_dec.copy_(Xn.mean(0))  # as fit_sae starts b_dec at the data's mean
    cfg = SAETrainerConfig(
        total_training_samples=STEPS * BATCH,
        train_batch_size_samples=BATCH,
        lr=LR,
        lr_end=LR,  # the constant schedule's level; the decay then goes from it to 0
        lr_warm_up_steps=n_warm,
        lr_decay_steps=STEPS - int(DECAY_FROM * STEPS),
        device="cpu",
        n_checkpoints=0,
        save_final_checkpoint=False,
        logger=LoggingConfig(log_to_wandb=False),
    )
    snaps: list[torch.Tensor] = [sae.W_dec.detach().clone()]
    with _snapshots(snaps, lambda: sae.W_dec), contextlib.redirect_stderr(io.StringIO()):  # its tqdm bar
        SAETrainer(cfg=cfg, sae=sae, data_provider=_batches(Xn)).fit()
    return snaps


def _ours(X: torch.Tensor, arch: str) -> list[torch.Tensor]:
    """Train with fit_sae; returns the initial decoder (as make_sae builds it) and a copy every EVERY steps."""
    kw: dict[str, Any] = {"k": K} if arch == "topk" else {}
    snaps: list[torch.Tensor] = []
    built: list[torch.nn.Module] = []
    make = sae_mod.make_sae

    def recording_make(*args: Any, **kwargs: Any) -> torch.nn.Module:
        built.append(make(*args, **kwargs))
        snaps.append(built[-1].W_dec.detach().clone())
        return built[-1]

    sae_mod.make_sae = recording_make
    try:
        with _snapshots(snaps, lambda: built[-1].W_dec):
            fit_sae(
                X, arch=arch, width=WIDTH, steps=STEPS, batch_size=BATCH, seed=SEED, progress=False, device="cpu", **kw
            )
    finally:
        sae_mod.make_sae = make
    return snaps


def _curve(dirs: torch.Tensor, snaps: list[torch.Tensor]) -> list[float]:
    return [mmcs(dirs, W) for W in snaps]


def _steps_to(curve: list[float], bar: float) -> int | None:
    for i, m in enumerate(curve):
        if m >= bar:
            return min(i * EVERY, STEPS)
    return None


def run(reps: int | None = None) -> tuple[list[dict[str, Any]], str]:
    reps = reps or 3
    X, dirs, _ = sparse_features(N, d=D, n_features=N_FEATURES, mean_active=5, seed=SEED)
    Xn = _normalised(X)
    version = _have_saelens()
    trainers: dict[str, Callable[[str], list[torch.Tensor]]] = {"ours": lambda a: _ours(X, a)}
    if version:
        trainers["saelens"] = lambda a: _saelens(Xn, a)
    rows: list[dict[str, Any]] = []
    info: dict[str, dict[str, dict[str, Any]]] = {}
    for arch in ARCHS:
        secs: dict[str, list[float]] = {t: [] for t in trainers}
        curves: dict[str, list[float]] = {}
        for rep in range(reps):
            order = list(trainers) if rep % 2 == 0 else list(reversed(trainers))
            for t in order:
                t0 = time.perf_counter()
                snaps = trainers[t](arch)
                secs[t].append(time.perf_counter() - t0)
                curves[t] = _curve(dirs, snaps)
                if curves[t][0] >= START_BELOW:
                    raise AssertionError(f"{t} {arch} starts at MMCS {curves[t][0]:.3f}: not a random start")
        info[arch] = {}
        for t in trainers:
            per_step = median(secs[t]) / STEPS
            n95 = _steps_to(curves[t], BAR)
            info[arch][t] = {
                "s_per_step": per_step,
                "start": curves[t][0],
                "mmcs_half": curves[t][len(curves[t]) // 2],
                "mmcs_end": curves[t][-1],
                "steps_95": n95,
                "s_95": None if n95 is None else n95 * per_step,
                "samples": [round(s, 3) for s in secs[t]],
            }
        if "saelens" in trainers:
            o, b = info[arch]["ours"], info[arch]["saelens"]
            if o["steps_95"] is not None and b["steps_95"] is not None:
                ratio = paired_ratio(
                    [s * o["steps_95"] for s in secs["ours"]], [s * b["steps_95"] for s in secs["saelens"]]
                )
                rows.append(
                    row(f"{arch}_seconds_to_mmcs_{BAR}", b["s_95"] * ratio, b["s_95"], TARGET, unit="s", arch=arch)
                )
            else:  # a trainer that never reached the bar: ours must have, SAELens may not
                ours = o["s_95"] if o["s_95"] is not None else math.inf
                base = b["s_95"] if b["s_95"] is not None else math.inf
                rows.append(row(f"{arch}_seconds_to_mmcs_{BAR}", ours, base, TARGET, unit="s", arch=arch))
            rows[-1]["info"] = info[arch]
    return rows, _body(rows, info, version)


def _fmt_steps(n: int | None) -> str:
    return f"> {STEPS}" if n is None else str(n)


def _body(rows: list[dict[str, Any]], info: dict[str, dict[str, dict[str, Any]]], version: str | None) -> str:
    def notes(r: dict[str, Any]) -> str:
        o, b = r["info"]["ours"], r["info"]["saelens"]
        return (
            f"steps to {BAR}: {_fmt_steps(o['steps_95'])} vs {_fmt_steps(b['steps_95'])}; "
            f"{o['s_per_step'] * 1e3:.1f} vs {b['s_per_step'] * 1e3:.1f} ms/step"
        )

    lines = [
        "| arch | trainer | MMCS at step 0 | at step " + f"{STEPS // 2} | at step {STEPS} | steps to {BAR} | "
        f"ms/step | s to {BAR} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arch, per in info.items():
        for t, v in per.items():
            s95 = "not reached" if v["s_95"] is None else f"{v['s_95']:.1f}"
            lines.append(
                f"| {arch} | {t} | {v['start']:.3f} | {v['mmcs_half']:.3f} | {v['mmcs_end']:.3f} | "
                f"{_fmt_steps(v['steps_95'])} | {v['s_per_step'] * 1e3:.1f} | {s95} |"
            )
    saelens_note = (
        f"SAELens {version} is installed: the baseline is its own `SAETrainer` with `TopKTrainingSAE`, "
        "`StandardTrainingSAE`, `GatedTrainingSAE` and `JumpReLUTrainingSAE` (its default initialisation: "
        "decoder rows of norm 0.1, encoder = decoder transposed, as ours for TopK, ReLU and Gated; "
        "AuxK coefficient 1 for TopK, dead after 1,000 steps; gradient norm clipped at 1, as ours)."
        if version
        else "SAELens is not installed here (`pip install -e .[bench]`): only our curves ran, no race."
    )
    head = table(rows, notes) if rows else ""
    return (
        head
        + "\n\n"
        + "\n".join(lines)
        + f"""

Same activations, batches and hyperparameters for both trainers: the toy data of Sharkey et al.
(d = {D}, {N_FEATURES} unit-norm features, ≈ 5 active per sample, magnitudes U[0, 1], seed {SEED}),
{N:,} activations in memory, normalised to mean squared distance 1 from their mean; {WIDTH} latents
(TopK k = {K}); batch {BATCH}, {STEPS} steps, the batches `fit_sae(seed={SEED})` draws in its order; Adam,
lr {LR:g} (`default_lr({D})`; ours trains biases and thresholds at lr / 8, SAELens takes one rate
for every parameter), lr and sparsity coefficient warmed up over the first {WARMUP:.0%},
lr decayed linearly to 0 over the last {1 - DECAY_FROM:.0%}; L1 coefficient {COEF["relu"]} (ReLU, Gated),
L0 coefficient {COEF["jumprelu"]} with threshold 0.001 and bandwidth 0.001 (JumpReLU); one CPU thread.
Each trainer starts from its own random initialisation (asserted: initial MMCS < {START_BELOW}).
MMCS is scored on decoder copies taken (by one global optimiser post-step hook, the same for both)
every {EVERY} steps; seconds to {BAR} = steps to {BAR} × the
run's median seconds per step (which includes our normalisation pass, dead-latent tracking and
logging). ours = `fit_sae(X, arch=..., width={WIDTH}, steps={STEPS}, batch_size={BATCH}, seed={SEED})`
with every other setting at its default. {saelens_note}
"""
    )
