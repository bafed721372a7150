"""Gromov–Wasserstein alignment (``superwidgets.science.gw_align``): time vs n, and vs POT's plain call.

Figures:

- ``gw_align_2000``: ``gw_align`` with its defaults on 2,000 × 2,000 points
  (the default ``max_points``), distances included. Baseline: a **60 s
  budget** (a constant, not a measurement); target ratio 1.0.
- ``vs_pot_same_epsilon``: at n = 500, our defaults vs POT's
  ``ot.gromov.entropic_gromov_wasserstein(C1, C2, epsilon=5e-3)`` with its
  default solver settings (no warm start, inner Sinkhorn to 1e-9 or 1,000
  iterations, outer tol 1e-9), on the same normalised distance matrices
  (precomputed for POT, so it is not charged for them). Same problem, same
  answer; target ≤ 1.0.
- ``vs_pot_defaults`` (information): the same against POT's call with every
  default (``epsilon=0.1``), which is blurrier (see its FOSCTTM).

The data: a skewed, anisotropic 8-D cloud (no symmetries) and a randomly
rotated copy with 5% noise, paired row by row, so FOSCTTM (0 = every point
finds its partner) checks that the fast settings still find the answer.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from superwidgets.science.align import distances, foscttm, gw_align

from ._common import interleaved, median, paired_ratio, row, table

BUDGET_S = 60.0
SIZES = (250, 500, 1000, 2000)
BASELINE_N = 500


def pair(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A skewed 8-D cloud and a rotated, slightly noisy copy (row i ↔ row i)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 8)) * np.linspace(3.0, 0.5, 8)
    X[:, 0] += 0.5 * X[:, 1] ** 2
    q = np.linalg.qr(rng.standard_normal((8, 8)))[0]
    return X, X @ q + 0.05 * rng.standard_normal(X.shape)


def _normalised(X: np.ndarray) -> np.ndarray:
    D = distances(X)
    return D / D[~np.eye(D.shape[0], dtype=bool)].mean()


def run(reps: int | None = None) -> tuple[list[dict[str, Any]], str]:
    import ot

    reps = reps or 3
    curve = []
    for n in SIZES:
        X, Y = pair(n)
        times, al = [], None
        for _ in range(reps if n <= 1000 else 1):
            t0 = time.perf_counter()
            al = gw_align(X, Y, max_points=None)
            times.append(time.perf_counter() - t0)
        assert al is not None
        curve.append(
            {
                "n": n,
                "s": median(times),
                "n_iter": al.n_iter,
                "converged": bool(al.converged),
                "foscttm": foscttm(al.coupling),
                "recall1": float((al.match() == np.arange(n)).mean()),
            }
        )
    ns = np.log([c["n"] for c in curve])
    ts = np.log([c["s"] for c in curve])
    exponent = float(np.polyfit(ns, ts, 1)[0])
    tail = float(np.polyfit(ns[-2:], ts[-2:], 1)[0])

    X, Y = pair(BASELINE_N, seed=1)
    A, B = _normalised(X), _normalised(Y)
    out: dict[str, Any] = {}

    def ours() -> None:
        out["ours"] = gw_align(X, Y, max_points=None).coupling

    def pot_same() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["same"] = ot.gromov.entropic_gromov_wasserstein(A, B, epsilon=5e-3)

    def pot_default() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["default"] = ot.gromov.entropic_gromov_wasserstein(A, B)

    samples = interleaved({"ours": ours, "same": pot_same, "default": pot_default}, reps=reps, warmup=0)
    big = curve[-1]
    rows = [
        row(
            "gw_align_2000",
            big["s"],
            BUDGET_S,
            1.0,
            unit="s",
            baseline_is="60 s budget, not a measurement",
            n_iter=big["n_iter"],
            foscttm=round(big["foscttm"], 5),
            curve=[{k: (round(v, 4) if isinstance(v, float) else v) for k, v in c.items()} for c in curve],
            exponent=round(exponent, 2),
            exponent_last=round(tail, 2),
        ),
        row(
            "vs_pot_same_epsilon",
            median(samples["ours"]),
            median(samples["same"]),
            1.0,
            unit="s",
            paired=round(paired_ratio(samples["ours"], samples["same"]), 4),
            n=BASELINE_N,
            reps=reps,
            foscttm_ours=round(foscttm(out["ours"]), 5),
            foscttm_pot=round(foscttm(out["same"]), 5),
        ),
        row(
            "vs_pot_defaults",
            median(samples["ours"]),
            median(samples["default"]),
            None,
            unit="s",
            paired=round(paired_ratio(samples["ours"], samples["default"]), 4),
            n=BASELINE_N,
            reps=reps,
            foscttm_ours=round(foscttm(out["ours"]), 5),
            foscttm_pot=round(foscttm(out["default"]), 5),
        ),
    ]
    return rows, _body(rows, curve, exponent, tail)


def _body(rows: list[dict[str, Any]], curve: list[dict[str, Any]], exponent: float, tail: float) -> str:
    def notes(r: dict[str, Any]) -> str:
        if r["name"] == "gw_align_2000":
            return f"{r['n_iter']} outer iterations, FOSCTTM {r['foscttm']:.4f}; 60 s budget, not a measurement"
        what = (
            "POT, same ε = 5e-3, default solver settings"
            if r["name"] == "vs_pot_same_epsilon"
            else ("information: POT with every default (ε = 0.1)")
        )
        return (
            f"{what}; n = {r['n']}, {r['reps']} interleaved runs; FOSCTTM ours {r['foscttm_ours']:.4f}, "
            f"POT {r['foscttm_pot']:.4f}"
        )

    lines = [
        "| n | seconds | outer iterations | converged | FOSCTTM | recall@1 |",
        "|---|---|---|---|---|---|",
    ]
    for c in curve:
        lines.append(
            f"| {c['n']:,} | {c['s']:.3f} | {c['n_iter']} | {'yes' if c['converged'] else 'no'} "
            f"| {c['foscttm']:.4f} | {c['recall1']:.3f} |"
        )
    return (
        table(rows, notes)
        + f"""

`gw_align` (entropic Gromov–Wasserstein through POT, `epsilon=5e-3`, distances divided by their
mean, warm-started inner Sinkhorn capped at 100 iterations, outer tolerance 1e-3 of the uniform
coupling's norm) on a skewed 8-D cloud and a randomly rotated copy with 5% noise. Time grows
as **n^{exponent:.2f}** over n = {curve[0]["n"]:,}–{curve[-1]["n"]:,} (least-squares fit of log time on log n;
n^{tail:.2f} between the last two sizes): each outer iteration is two n × n matrix products
(O(n³)) plus a few dozen O(n²) Sinkhorn sweeps, and the count of outer iterations barely grows.
Memory is O(n²) (a 2,000² float64 matrix is 32 MB; POT holds several).

{chr(10).join(lines)}

What the defaults change against POT's plain call, with the same solver: warm-started dual
potentials between outer steps (the inner Sinkhorn starts where the last one ended), an inner
cap of 100 iterations with stop threshold 1e-6 instead of 1,000 and 1e-9, and an outer
tolerance scaled to the size of the coupling instead of an absolute 1e-9. When the last inner
loop stops at its cap, the plan's marginals are re-balanced (a Sinkhorn on the plan itself).
"""
    )
