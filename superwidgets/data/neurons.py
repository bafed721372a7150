"""A synthetic neuron world with known ground truth, for superposition research.

Modelled, loosely, on imaging studies of patient-derived (iPSC) dopaminergic
neurons in Parkinson's disease: each cell carries a sparse vector of named
ground-truth factors (morphology, aggregates, organelle stress, genotype,
disease, donor age), and every modality is generated from those factors by a
documented process:

* a 4-channel multiplexed image (neurites, nuclei, α-synuclein-like puncta,
  axon initial segment), rendered procedurally with numpy;
* a patient/cell record (28 continuous + 4 categorical columns), a known
  linear-plus-nonlinear mixing of the factors plus noise;
* a zero-inflated negative-binomial expression profile whose genes load on the
  factors through a known sparse loading matrix;
* a death-risk score (a known function of the factors) and a disease label.

Nothing here is real data, and nothing touches the network. See
``docs/neurons.md`` for the full specification.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from .patients import TabularData

__all__ = [
    "CHANNEL_NAMES",
    "FACTOR_NAMES",
    "IMAGE_FACTORS",
    "MORPHOMETRY_COLUMNS",
    "NeuronRecords",
    "NeuronWorld",
    "death_risk",
    "neurons",
    "render_neurons",
]

# --------------------------------------------------------------------------------------------
# Factors
# --------------------------------------------------------------------------------------------

#: Ground-truth factor names, in Zipf order (factor k is active with probability ∝ 1/(k+1)^s).
FACTOR_NAMES: tuple[str, ...] = (
    "neurite_length",  # 0  longer neurites                        (image: neurites, puncta placement)
    "soma_size",  # 1  larger soma and nucleus                    (image: neurites, nuclei)
    "th_intensity",  # 2  tyrosine hydroxylase / dopaminergic identity (records, expression)
    "branch_count",  # 3  more primary neurites and branches      (image: neurites)
    "disease",  # 4  Parkinson's disease donor (binary)            (via the disease block)
    "puncta_density",  # 5  α-synuclein-like aggregates          (image: puncta)
    "map2_intensity",  # 6  brighter MAP2 neurite stain           (image: neurites)
    "age",  # 7  older donor                                       (records, expression)
    "nuclear_condensation",  # 8  pyknotic, bright, small nucleus (image: nuclei)
    "mito_fragmentation",  # 9  fragmented mitochondria           (records, expression)
    "neurite_degeneration",  # 10 beaded, fragmented, shorter neurites (image: neurites)
    "ais_length",  # 11 longer axon initial segment                (image: ais)
    "oxidative_stress",  # 12 ROS burden                          (records, expression)
    "aggregate_size",  # 13 larger puncta + a somatic inclusion     (image: puncta)
    "lysosomal_dysfunction",  # 14 lysosomal / GCase impairment   (records, expression)
    "ais_position",  # 15 AIS starts further from the soma          (image: ais)
    "soma_elongation",  # 16 elongated (bipolar-like) soma          (image: neurites, nuclei)
    "lrrk2_g2019s",  # 17 LRRK2 G2019S-like genotype (binary)
    "gba_n370s",  # 18 GBA N370S-like genotype (binary)
    "snca_triplication",  # 19 SNCA triplication-like genotype (binary; also brighter diffuse α-syn)
)
K = len(FACTOR_NAMES)
#: The factors the image renderer draws (the ones marked "image:" above); the others reach the images
#: only through their correlations with these.
IMAGE_FACTORS: tuple[str, ...] = (
    "neurite_length",
    "soma_size",
    "branch_count",
    "puncta_density",
    "map2_intensity",
    "nuclear_condensation",
    "neurite_degeneration",
    "ais_length",
    "aggregate_size",
    "ais_position",
    "soma_elongation",
    "snca_triplication",
)
_F = {name: i for i, name in enumerate(FACTOR_NAMES)}
BINARY_FACTORS: tuple[str, ...] = ("disease", "lrrk2_g2019s", "gba_n370s", "snca_triplication")
_ROOTS = ("age", "lrrk2_g2019s", "gba_n370s", "snca_triplication")

#: Log-odds shift of ``disease`` per active parent (times ``correlation``).
DISEASE_PARENTS: dict[str, float] = {"lrrk2_g2019s": 1.2, "gba_n370s": 1.2, "snca_triplication": 2.0, "age": 0.8}

#: The disease block: log-odds shifts (times ``correlation``) of each child factor per active parent.
DISEASE_BLOCK: dict[str, dict[str, float]] = {
    "puncta_density": {"disease": 1.6, "snca_triplication": 1.5},
    "aggregate_size": {"disease": 1.6, "snca_triplication": 1.0},
    "mito_fragmentation": {"disease": 1.4, "lrrk2_g2019s": 0.8},
    "neurite_degeneration": {"disease": 1.6, "lrrk2_g2019s": 1.2},
    "nuclear_condensation": {"disease": 1.0},
    "oxidative_stress": {"disease": 1.2},
    "lysosomal_dysfunction": {"disease": 1.0, "gba_n370s": 2.0},
    "th_intensity": {"disease": -0.8},
}

#: Channels of the multiplexed image.
CHANNEL_NAMES: tuple[str, ...] = ("neurites", "nuclei", "puncta", "ais")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _zipf_probs(k: int, mean_active: float, exponent: float, cap: float = 0.95) -> np.ndarray:
    """Activation probabilities ``min(cap, c / (i+1)^exponent)`` with ``sum = mean_active``."""
    base = 1.0 / np.arange(1, k + 1, dtype=np.float64) ** exponent
    lo, hi = 0.0, cap / base.min() + 1.0
    for _ in range(200):
        c = 0.5 * (lo + hi)
        if np.minimum(cap, c * base).sum() < mean_active:
            lo = c
        else:
            hi = c
    return np.minimum(cap, 0.5 * (lo + hi) * base)


def _solve_bias(target: float, shifts: np.ndarray, weights: np.ndarray) -> float:
    """Bias b with ``sum(weights * sigmoid(b + shifts)) = target`` (bisection)."""
    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if float((weights * _sigmoid(mid + shifts)).sum()) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _sample_factors(
    rng: np.random.Generator, n: int, probs: np.ndarray, correlation: float
) -> tuple[np.ndarray, dict[str, float]]:
    """Draw the (n, K) factor matrix; each factor's marginal activation rate is exactly ``probs[k]``."""
    u_act = rng.random((n, K))
    u_mag = rng.random((n, K))
    active = np.zeros((n, K), dtype=bool)
    # roots: independent
    for name in _ROOTS:
        active[:, _F[name]] = u_act[:, _F[name]] < probs[_F[name]]
    # the 16 root configurations and their probabilities
    configs = np.array(np.meshgrid(*[[0, 1]] * len(_ROOTS), indexing="ij")).reshape(len(_ROOTS), -1).T
    pw = np.ones(len(configs))
    for j, name in enumerate(_ROOTS):
        p = probs[_F[name]]
        pw *= np.where(configs[:, j] == 1, p, 1 - p)
    d_shift = correlation * sum(DISEASE_PARENTS[name] * configs[:, j] for j, name in enumerate(_ROOTS))
    biases: dict[str, float] = {}
    biases["disease"] = _solve_bias(probs[_F["disease"]], d_shift, pw)
    roots_now = {name: active[:, _F[name]].astype(np.float64) for name in _ROOTS}
    logit = biases["disease"] + correlation * sum(DISEASE_PARENTS[n_] * roots_now[n_] for n_ in _ROOTS)
    active[:, _F["disease"]] = u_act[:, _F["disease"]] < _sigmoid(logit)
    # children of the block: exact marginals over the 32 (roots, disease) configurations
    p_dis = _sigmoid(biases["disease"] + d_shift)
    cfg2 = {name: np.concatenate([configs[:, j], configs[:, j]]) for j, name in enumerate(_ROOTS)}
    cfg2["disease"] = np.concatenate([np.zeros(len(configs)), np.ones(len(configs))])
    pw2 = np.concatenate([pw * (1 - p_dis), pw * p_dis])
    parents_now = {**roots_now, "disease": active[:, _F["disease"]].astype(np.float64)}
    for name in FACTOR_NAMES:
        k = _F[name]
        if name in _ROOTS or name == "disease":
            continue
        if name in DISEASE_BLOCK:
            w = DISEASE_BLOCK[name]
            shifts = correlation * sum(wt * cfg2[par] for par, wt in w.items())
            biases[name] = _solve_bias(probs[k], shifts, pw2)
            lg = biases[name] + correlation * sum(wt * parents_now[par] for par, wt in w.items())
            active[:, k] = u_act[:, k] < _sigmoid(lg)
        else:
            active[:, k] = u_act[:, k] < probs[k]
    # magnitudes
    values = 0.2 + 0.8 * u_mag
    dis = active[:, _F["disease"]]
    pull = min(1.0, 0.4 * correlation)
    for name, w in DISEASE_BLOCK.items():
        k = _F[name]
        if w.get("disease", 0.0) > 0:
            values[dis, k] += (1.0 - values[dis, k]) * pull
        elif w.get("disease", 0.0) < 0:
            values[dis, k] = 0.2 + (values[dis, k] - 0.2) * (1.0 - min(0.5, 0.3 * correlation))
    for name in BINARY_FACTORS:
        values[:, _F[name]] = 1.0
    f = np.where(active, values, 0.0).astype(np.float32)
    return f, biases


# --------------------------------------------------------------------------------------------
# Outcome
# --------------------------------------------------------------------------------------------


def death_risk(factors: np.ndarray) -> np.ndarray:
    """The documented death-risk score of each cell, a known function of its factors.

    ``risk = sigmoid(-3 + 2.0·nuclear_condensation + 1.5·puncta_density·(1 + aggregate_size)
    + 1.2·mito_fragmentation·(1 + oxidative_stress) + 1.0·neurite_degeneration + 0.8·age
    + 0.6·disease − 0.8·th_intensity)``

    Parameters
    ----------
    factors : numpy.ndarray, shape (n, K) or (K,)
        Factor values in the order of :data:`FACTOR_NAMES`.

    Returns
    -------
    numpy.ndarray, shape (n,) or (), float32
        Risk in (0, 1), computed in float64 and rounded to float32.
    """
    f = np.asarray(factors, dtype=np.float64)
    if f.shape[-1] != K:
        raise ValueError(f"factors must have {K} columns (one per FACTOR_NAMES entry); got shape {f.shape}")
    g = {name: f[..., i] for i, name in enumerate(FACTOR_NAMES)}
    logit = (
        -3.0
        + 2.0 * g["nuclear_condensation"]
        + 1.5 * g["puncta_density"] * (1.0 + g["aggregate_size"])
        + 1.2 * g["mito_fragmentation"] * (1.0 + g["oxidative_stress"])
        + 1.0 * g["neurite_degeneration"]
        + 0.8 * g["age"]
        + 0.6 * g["disease"]
        - 0.8 * g["th_intensity"]
    )
    return _sigmoid(logit).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------

_P = 6  # primary neurites (slot 0 is the axon)
_B = 3  # branch slots per primary
_M = 40  # puncta slots
_Q = 6  # chromatin spots
_STEP = 0.6  # px between samples along a neurite
_CHUNK = 128  # cells rendered at once


def _layout(image_size: int) -> dict[str, int]:
    s = image_size
    tp = math.ceil(0.65 * 1.15 * s / _STEP) + 2  # longest axon (longer than any dendrite)
    tb = math.ceil(0.44 * 1.25 * 0.55 * s / _STEP) + 2  # longest branch
    nu = 4 + 7 * _P + 7 * _P * _B + 2 + 3 * _Q + 8 * _M + 2
    nz = _P * tp + _P * _B * tb
    return {"tp": tp, "tb": tb, "nu": nu, "nz": nz}


def _draws(seeds: np.ndarray, image_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-cell random numbers, a fixed amount per cell: the layout never depends on the factors."""
    lay = _layout(image_size)
    uniq, inv = np.unique(seeds, return_inverse=True)
    m = len(uniq)
    u = np.empty((m, lay["nu"]))
    z = np.empty((m, lay["nz"]))
    noise = np.empty((m, len(CHANNEL_NAMES), image_size, image_size), dtype=np.float32)
    for i, s in enumerate(uniq):
        rng = np.random.default_rng(int(s))
        rng.random(out=u[i])
        rng.standard_normal(out=z[i])
        rng.standard_normal(dtype=np.float32, out=noise[i])
    return u[inv], z[inv], noise[inv]


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of (n, s, s) images (kernel truncated at 3.5 σ, zero padding)."""
    r = max(1, math.ceil(3.5 * sigma))
    taps = np.arange(-r, r + 1, dtype=np.float64)
    w = np.exp(-0.5 * (taps / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    s = img.shape[-1]
    pad = np.pad(img, ((0, 0), (0, 0), (r, r)))
    rows = w[0] * pad[:, :, 0:s]
    for k in range(1, 2 * r + 1):
        rows += w[k] * pad[:, :, k : k + s]
    pad = np.pad(rows, ((0, 0), (r, r), (0, 0)))
    out = w[0] * pad[:, 0:s, :]
    for k in range(1, 2 * r + 1):
        out += w[k] * pad[:, k : k + s, :]
    return out


def _splat(n: int, s: int, cell: np.ndarray, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Bilinear splat of weighted points into (n, s, s) images (points outside are dropped)."""
    x0 = np.floor(x)
    y0 = np.floor(y)
    fx = x - x0
    fy = y - y0
    x0 = x0.astype(np.int64)
    y0 = y0.astype(np.int64)
    out = np.zeros(n * s * s)
    for dx, dy, ww in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi = x0 + dx
        yi = y0 + dy
        ok = (xi >= 0) & (xi < s) & (yi >= 0) & (yi < s)
        idx = (cell[ok] * s + yi[ok]) * s + xi[ok]
        out += np.bincount(idx, weights=(w * ww)[ok], minlength=n * s * s)
    return out.reshape(n, s, s)


def _gauss_spots(s: int, cx: np.ndarray, cy: np.ndarray, sigma: np.ndarray, amp: np.ndarray) -> np.ndarray:
    """Sum of isotropic Gaussian spots per cell, (n, m) parameters → (n, s, s), as one batched matmul."""
    grid = np.arange(s, dtype=np.float64)
    gx = np.exp(-0.5 * ((grid[None, None, :] - cx[..., None]) / sigma[..., None]) ** 2)  # (n, m, s)
    gy = np.exp(-0.5 * ((grid[None, None, :] - cy[..., None]) / sigma[..., None]) ** 2)
    return np.matmul((gy * amp[..., None]).transpose(0, 2, 1), gx)  # (n, s, s): [y, x]


def _render_chunk(f: np.ndarray, u: np.ndarray, z: np.ndarray, noise_z: np.ndarray, s: int, noise: float) -> np.ndarray:
    n = f.shape[0]
    lay = _layout(s)
    tp, tb = lay["tp"], lay["tb"]
    sc = s / 64.0  # pixel scale relative to the 64-px reference
    g = {name: f[:, i][:, None] for i, name in enumerate(FACTOR_NAMES)}  # (n, 1) columns
    ptr = [0]

    def take(cols: int) -> np.ndarray:
        out = u[:, ptr[0] : ptr[0] + cols]
        ptr[0] += cols
        return out

    # --- soma ----------------------------------------------------------------------------
    cen = take(2)
    cx = s / 2 + (cen[:, 0:1] - 0.5) * 0.12 * s
    cy = s / 2 + (cen[:, 1:2] - 0.5) * 0.12 * s
    psi = take(1) * math.pi
    asp_j = 1.0 + (take(1) - 0.5) * 0.2
    r = s * (0.075 + 0.05 * g["soma_size"]) * (1.0 - 0.15 * g["nuclear_condensation"])
    elong = np.sqrt((1.0 + 2.0 * g["soma_elongation"]) * asp_j)
    sa, sb = r * elong, r / elong  # semi-axes along psi and across

    # --- primaries ------------------------------------------------------------------------
    keys = take(_P)
    sector = np.argsort(keys, axis=1).astype(np.float64)  # a fixed random sector per slot
    ang_j = take(_P)
    len_j = take(_P)
    curv = take(_P)
    bead_ph = take(_P)
    gap_ph = take(_P)
    gap_wl = take(_P)
    theta0 = 2 * math.pi * (sector + 0.15 + 0.7 * ang_j) / _P + psi
    n_prim = 3 + np.round(3 * g["branch_count"])  # 3..6 including the axon
    present_p = np.arange(_P)[None, :] < n_prim
    deg = g["neurite_degeneration"]
    lp = s * (0.14 + 0.30 * g["neurite_length"]) * (1.0 - 0.45 * deg) * (0.75 + 0.5 * len_j)
    # slot 0 is the axon: longer, so that the axon initial segment fits on it
    lp[:, 0] = s * (0.30 + 0.35 * g["neurite_length"][:, 0]) * (1.0 - 0.45 * deg[:, 0]) * (0.85 + 0.3 * len_j[:, 0])
    rel = theta0 - psi
    edge = sa * sb / np.sqrt((sb * np.cos(rel)) ** 2 + (sa * np.sin(rel)) ** 2)  # soma radius towards theta0
    x_start = cx + 0.8 * edge * np.cos(theta0)
    y_start = cy + 0.8 * edge * np.sin(theta0)
    zp = z[:, : _P * tp].reshape(n, _P, tp)
    turn = 0.10 * zp + ((curv - 0.5) * 0.04)[..., None]
    theta = theta0[..., None] + np.cumsum(turn, axis=2)
    px = x_start[..., None] + _STEP * np.cumsum(np.cos(theta), axis=2)
    py = y_start[..., None] + _STEP * np.cumsum(np.sin(theta), axis=2)
    dist_p = _STEP * np.arange(1, tp + 1, dtype=np.float64)[None, None, :]
    valid_p = (dist_p <= lp[..., None]) & present_p[..., None]
    taper_p = np.clip(1.0 - 0.7 * dist_p / np.maximum(lp[..., None], 1e-6), 0.2, 1.0)

    def degen(dist: np.ndarray, bead: np.ndarray, gph: np.ndarray, gwl: np.ndarray, d: np.ndarray) -> np.ndarray:
        beads = 1.0 + 2.5 * d[..., None] * np.maximum(0.0, np.sin(2 * math.pi * (dist / (2.5 * sc) + bead[..., None])))
        lam = (5.0 + 4.0 * gwl[..., None]) * sc
        gap = np.mod(dist / lam + gph[..., None], 1.0) < 0.45 * d[..., None]
        return np.where(gap, 0.05, beads)

    d3 = np.broadcast_to(deg, (n, _P))
    w_p = taper_p * degen(dist_p, bead_ph, gap_ph, gap_wl, d3) * valid_p

    # --- branches ------------------------------------------------------------------------
    att = take(_P * _B).reshape(n, _P, _B)
    side = take(_P * _B).reshape(n, _P, _B)
    bang = take(_P * _B).reshape(n, _P, _B)
    blen = take(_P * _B).reshape(n, _P, _B)
    bpres = take(_P * _B).reshape(n, _P, _B)
    b_bead = take(_P * _B).reshape(n, _P * _B)
    b_gph = take(_P * _B).reshape(n, _P * _B)
    frac = 0.2 + 0.6 * att
    t0 = np.clip(np.floor(frac * lp[..., None] / _STEP).astype(np.int64) - 1, 0, tp - 1)  # (n, P, B)
    bx0 = np.take_along_axis(px, t0, axis=2)
    by0 = np.take_along_axis(py, t0, axis=2)
    bth0 = np.take_along_axis(theta, t0, axis=2) + np.where(side < 0.5, -1.0, 1.0) * (0.4 + 0.6 * bang)
    lb = lp[..., None] * (0.25 + 0.3 * blen)
    present_b = present_p[..., None] & (bpres < 0.1 + 0.8 * g["branch_count"][..., None])
    zb = z[:, _P * tp :].reshape(n, _P * _B, tb)
    bth = bth0.reshape(n, -1)[..., None] + np.cumsum(0.10 * zb, axis=2)
    bx = bx0.reshape(n, -1)[..., None] + _STEP * np.cumsum(np.cos(bth), axis=2)
    by = by0.reshape(n, -1)[..., None] + _STEP * np.cumsum(np.sin(bth), axis=2)
    dist_b = _STEP * np.arange(1, tb + 1, dtype=np.float64)[None, None, :]
    lb2 = lb.reshape(n, -1)
    valid_b = (dist_b <= lb2[..., None]) & present_b.reshape(n, -1)[..., None]
    taper_b = np.clip(1.0 - 0.7 * dist_b / np.maximum(lb2[..., None], 1e-6), 0.2, 1.0)
    gwl_b = np.repeat(gap_wl, _B, axis=1)
    w_b = 0.75 * taper_b * degen(dist_b, b_bead, b_gph, gwl_b, np.broadcast_to(deg, (n, _P * _B))) * valid_b

    # --- neurite channel ---------------------------------------------------------------------
    cell_p = np.broadcast_to(np.arange(n)[:, None, None], px.shape)
    cell_b = np.broadcast_to(np.arange(n)[:, None, None], bx.shape)
    all_x = np.concatenate([px.reshape(n, -1), bx.reshape(n, -1)], axis=1)
    all_y = np.concatenate([py.reshape(n, -1), by.reshape(n, -1)], axis=1)
    all_w = np.concatenate([w_p.reshape(n, -1), w_b.reshape(n, -1)], axis=1)
    all_c = np.concatenate([cell_p.reshape(n, -1), cell_b.reshape(n, -1)], axis=1)
    all_valid = np.concatenate([valid_p.reshape(n, -1), valid_b.reshape(n, -1)], axis=1)
    keep = all_w > 0
    lines = _splat(n, s, all_c[keep], all_x[keep], all_y[keep], all_w[keep])

    grid = np.arange(s, dtype=np.float64)
    gxx = grid[None, None, :] - cx[:, :, None]  # (n, 1, s) → broadcast with y
    gyy = grid[None, :, None] - cy[:, :, None]
    cp, sp = np.cos(psi)[:, :, None], np.sin(psi)[:, :, None]
    xr = gxx * cp + gyy * sp
    yr = -gxx * sp + gyy * cp
    dsoma = np.sqrt((xr / sa[:, :, None]) ** 2 + (yr / sb[:, :, None]) ** 2)
    soma = _sigmoid((1.0 - dsoma) * r[:, :, None] * 1.5)
    map2 = (0.55 + 0.9 * g["map2_intensity"])[:, :, None]
    neur = _blur(lines, 0.7 * sc) * map2 * 1.2 + 0.9 * soma * map2

    # --- nuclei --------------------------------------------------------------------------
    noff = take(2)
    cond = g["nuclear_condensation"]
    rn = 0.62 * r * (1.0 - 0.4 * cond)
    ncx = cx + (noff[:, 0:1] - 0.5) * 0.3 * r
    ncy = cy + (noff[:, 1:2] - 0.5) * 0.3 * r
    nel = np.sqrt(elong)
    gxn = grid[None, None, :] - ncx[:, :, None]
    gyn = grid[None, :, None] - ncy[:, :, None]
    xr = gxn * cp + gyn * sp
    yr = -gxn * sp + gyn * cp
    dnuc = np.sqrt((xr / (rn * nel)[:, :, None]) ** 2 + (yr / (rn / nel)[:, :, None]) ** 2)
    nucleus = _sigmoid((1.0 - dnuc) * rn[:, :, None] * 2.0) * (0.45 + 0.6 * cond)[:, :, None]
    ch = take(3 * _Q).reshape(n, 3, _Q)
    rad = 0.7 * rn * np.sqrt(ch[:, 0])
    phi = 2 * math.pi * ch[:, 1]
    spots = _gauss_spots(
        s,
        ncx + rad * np.cos(phi),
        ncy + rad * np.sin(phi),
        np.broadcast_to(np.maximum(0.7 * sc, 0.22 * rn), rad.shape),
        (0.15 + 0.6 * cond) * (0.5 + ch[:, 2]),
    )
    nuc = _blur(nucleus, 0.6 * sc) + spots

    # --- puncta --------------------------------------------------------------------------
    pu = take(8 * _M).reshape(n, 8, _M)
    incl = take(2)
    count = np.round(4 + 36 * g["puncta_density"])  # (n, 1)
    on = np.arange(_M)[None, :] < count
    # positions along the cell's own neurite points (fixed u → rank among its valid points)
    nvalid = all_valid.sum(axis=1)
    flat_idx = np.flatnonzero(all_valid.reshape(-1))
    offs = np.concatenate([[0], np.cumsum(nvalid)[:-1]])
    rank = np.minimum(np.floor(pu[:, 1] * nvalid[:, None]).astype(np.int64), np.maximum(nvalid[:, None] - 1, 0))
    gi = flat_idx[np.minimum(offs[:, None] + rank, max(len(flat_idx) - 1, 0))]
    nx_ = all_x.reshape(-1)[gi]
    ny_ = all_y.reshape(-1)[gi]
    rr = 0.85 * np.sqrt(pu[:, 2])
    ph = 2 * math.pi * pu[:, 3]
    sx_ = cx + rr * sa * np.cos(ph) * np.cos(psi) - rr * sb * np.sin(ph) * np.sin(psi)
    sy_ = cy + rr * sa * np.cos(ph) * np.sin(psi) + rr * sb * np.sin(ph) * np.cos(psi)
    on_neurite = (pu[:, 0] < 0.7) & (nvalid[:, None] > 0)
    qx = np.where(on_neurite, nx_, sx_) + (pu[:, 6] - 0.5) * 1.0 * sc
    qy = np.where(on_neurite, ny_, sy_) + (pu[:, 7] - 0.5) * 1.0 * sc
    agg = g["aggregate_size"]
    qsig = (0.6 + 0.7 * agg + 0.25 * pu[:, 5]) * sc
    qamp = (0.7 + 0.6 * pu[:, 4]) * on
    # one Lewy-body-like somatic inclusion, present when aggregate_size > 0
    iph = 2 * math.pi * incl[:, 0:1]
    ir = 0.5 * r * (0.3 + 0.7 * incl[:, 1:2])
    qx = np.concatenate([qx, cx + ir * np.cos(iph)], axis=1)
    qy = np.concatenate([qy, cy + ir * np.sin(iph)], axis=1)
    qsig = np.concatenate([qsig, (1.0 + 2.0 * agg) * sc], axis=1)
    qamp = np.concatenate([qamp, 1.6 * agg], axis=1)
    diffuse = (0.05 + 0.15 * g["snca_triplication"])[:, :, None] * (_blur(lines, 1.2 * sc) + 1.2 * soma)
    punc = _gauss_spots(s, qx, qy, qsig, qamp) + diffuse

    # --- axon initial segment (on primary 0, the axon) ---------------------------------------
    a_start = (0.02 + 0.15 * g["ais_position"]) * s  # distance from the soma edge, px
    a_len = (0.08 + 0.16 * g["ais_length"]) * s
    d0 = dist_p[:, 0, :]
    ais_w = _sigmoid((d0 - a_start) / (0.8 * sc)) * _sigmoid((a_start + a_len - d0) / (0.8 * sc)) * valid_p[:, 0, :]
    keep_a = ais_w > 1e-3
    cell_a = np.broadcast_to(np.arange(n)[:, None], ais_w.shape)
    ais = _blur(_splat(n, s, cell_a[keep_a], px[:, 0, :][keep_a], py[:, 0, :][keep_a], ais_w[keep_a]), 0.8 * sc) * 2.2

    # --- assemble: saturating intensity map, background, noise --------------------------------
    stack = np.stack([neur, nuc, punc, ais], axis=1)
    gain = np.array([1.6, 2.2, 2.0, 1.8])[None, :, None, None]
    img = 1.0 - np.exp(-gain * np.maximum(stack, 0.0))
    img = img + 0.03 + noise * noise_z
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _check_factors(factors: np.ndarray | Sequence[float]) -> np.ndarray:
    f = np.asarray(factors, dtype=np.float64)
    if f.ndim == 1:
        f = f[None, :]
    if f.ndim != 2 or f.shape[1] != K:
        raise ValueError(
            f"factors must have shape (K,) or (m, K) with K = {K} (see FACTOR_NAMES); got shape {np.shape(factors)}"
        )
    if not np.all(np.isfinite(f)):
        raise ValueError("factors contain NaN or Inf; every value must be a finite number in [0, 1]")
    if f.size and (f.min() < 0.0 or f.max() > 1.0):
        bad = int(np.argmax((f < 0).any(0) | (f > 1).any(0)))
        raise ValueError(
            f"factor values must lie in [0, 1] (0 = inactive, 1 = strongest); column {FACTOR_NAMES[bad]!r} has "
            f"values in [{f[:, bad].min():.3g}, {f[:, bad].max():.3g}]; clip with np.clip(factors, 0, 1)"
        )
    return f


def _check_int(name: str, value: object, low: int, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer ≥ {low}; got {value!r} ({type(value).__name__}). {hint}")
    if value < low:
        raise ValueError(f"{name} must be ≥ {low}; got {value}. {hint}")
    return int(value)


def _check_image_size(image_size: object) -> int:
    s = _check_int("image_size", image_size, 16, "Pass e.g. image_size=64 (square images, side in pixels).")
    if s > 512:
        raise ValueError(f"image_size must be ≤ 512; got {s}. Pass e.g. image_size=64 or 128.")
    return s


def render_neurons(
    factors: np.ndarray | Sequence[float],
    seed: int | Sequence[int] | np.ndarray,
    image_size: int = 64,
    noise: float = 0.03,
) -> np.ndarray:
    """Render multiplexed neuron images from factor vectors.

    Each row's random layout (soma position, neurite directions and turns,
    puncta positions, pixel noise) comes from its own seed only, and a fixed
    amount of randomness is drawn per cell whatever the factor values, so
    re-rendering a cell after changing one factor changes only what that factor
    controls. ``NeuronWorld.images[i]`` equals
    ``render_neurons(world.factors[i], world.cell_seeds[i], world.image_size, world.noise)[0]``.

    Parameters
    ----------
    factors : array-like, shape (K,) or (m, K)
        Factor values in [0, 1], columns in the order of :data:`FACTOR_NAMES`.
    seed : int or array-like of int, shape (m,)
        Layout seed: one for every row (the same cell drawn with different
        factors, e.g. a sweep) or one per row.
    image_size : int
        Side ``S`` of the square images in pixels (16 to 512).
    noise : float
        Standard deviation of the additive Gaussian pixel noise (≥ 0).

    Returns
    -------
    numpy.ndarray, shape (m, 4, S, S), float32 in [0, 1]
        Channels in the order of :data:`CHANNEL_NAMES`.
    """
    f = _check_factors(factors)
    s = _check_image_size(image_size)
    if not (isinstance(noise, (int, float, np.floating)) and math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number ≥ 0 (pixel noise s.d.); got {noise!r}")
    seeds = np.asarray(seed)
    if seeds.ndim == 0:
        seeds = np.full(len(f), seeds)
    if seeds.shape != (len(f),) or not (
        np.issubdtype(seeds.dtype, np.integer) and (len(seeds) == 0 or seeds.min() >= 0)
    ):
        raise ValueError(
            f"seed must be a non-negative int or one non-negative int per factor row ({len(f)}); got {seed!r}"
        )
    out = np.empty((len(f), len(CHANNEL_NAMES), s, s), dtype=np.float32)
    for a in range(0, len(f), _CHUNK):
        b = min(a + _CHUNK, len(f))
        u, z, nz = _draws(seeds[a:b].astype(np.int64), s)
        out[a:b] = _render_chunk(f[a:b], u, z, nz, s, float(noise))
    return out


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------

_Fn = Callable[[dict[str, np.ndarray]], np.ndarray]

#: Continuous record columns: (name, formula as documented, mean function of the factors, noise s.d.).
RECORD_COLUMNS: tuple[tuple[str, str, _Fn, float], ...] = (
    ("age_years", "45 + 30·age", lambda g: 45 + 30 * g["age"], 3.0),
    (
        "updrs_part3",
        "4 + 22·disease + 10·disease·age + 3·neurite_degeneration",
        lambda g: 4 + 22 * g["disease"] + 10 * g["disease"] * g["age"] + 3 * g["neurite_degeneration"],
        3.0,
    ),
    (
        "disease_duration_years",
        "max(0, disease·(2 + 8·age) + noise)",
        lambda g: g["disease"] * (2 + 8 * g["age"]),
        1.0,
    ),
    (
        "moca_score",
        "28 − 3·age − 3·disease·age − 1·nuclear_condensation",
        lambda g: 28 - 3 * g["age"] - 3 * g["disease"] * g["age"] - g["nuclear_condensation"],
        0.7,
    ),
    (
        "soma_area_um2",
        "110 + 140·soma_size + 40·soma_size² − 30·nuclear_condensation + 20·soma_elongation",
        lambda g: (
            110
            + 140 * g["soma_size"]
            + 40 * g["soma_size"] ** 2
            - 30 * g["nuclear_condensation"]
            + 20 * g["soma_elongation"]
        ),
        8.0,
    ),
    (
        "nucleus_area_um2",
        "60 + 45·soma_size − 35·nuclear_condensation",
        lambda g: 60 + 45 * g["soma_size"] - 35 * g["nuclear_condensation"],
        4.0,
    ),
    (
        "neurite_total_length_um",
        "350 + 700·neurite_length·(1 − 0.5·neurite_degeneration) + 250·branch_count − 200·neurite_degeneration",
        lambda g: (
            350
            + 700 * g["neurite_length"] * (1 - 0.5 * g["neurite_degeneration"])
            + 250 * g["branch_count"]
            - 200 * g["neurite_degeneration"]
        ),
        40.0,
    ),
    (
        "branch_points",
        "round(3 + 12·branch_count + 3·neurite_length + noise), ≥ 0",
        lambda g: 3 + 12 * g["branch_count"] + 3 * g["neurite_length"],
        1.5,
    ),
    (
        "primary_neurites",
        "round(2.5 + 4·branch_count + noise), ≥ 1",
        lambda g: 2.5 + 4 * g["branch_count"],
        0.6,
    ),
    ("ais_length_um", "22 + 25·ais_length − 3·disease", lambda g: 22 + 25 * g["ais_length"] - 3 * g["disease"], 2.0),
    ("ais_start_um", "4 + 15·ais_position", lambda g: 4 + 15 * g["ais_position"], 1.5),
    (
        "puncta_per_100um",
        "2 + 20·puncta_density + 6·aggregate_size + 8·snca_triplication",
        lambda g: 2 + 20 * g["puncta_density"] + 6 * g["aggregate_size"] + 8 * g["snca_triplication"],
        1.5,
    ),
    (
        "aggregate_area_um2",
        "0.6 + 2.5·aggregate_size + 1.0·puncta_density·aggregate_size",
        lambda g: 0.6 + 2.5 * g["aggregate_size"] + 1.0 * g["puncta_density"] * g["aggregate_size"],
        0.3,
    ),
    (
        "map2_mean_intensity",
        "site_gain·(900 + 800·map2_intensity − 150·neurite_degeneration)",
        lambda g: 900 + 800 * g["map2_intensity"] - 150 * g["neurite_degeneration"],
        60.0,
    ),
    (
        "th_mean_intensity",
        "site_gain·(300 + 1500·th_intensity·(1 − 0.4·disease))",
        lambda g: 300 + 1500 * g["th_intensity"] * (1 - 0.4 * g["disease"]),
        80.0,
    ),
    (
        "dapi_integrated",
        "site_gain·(1.0 + 0.8·nuclear_condensation + 0.3·soma_size)",
        lambda g: 1.0 + 0.8 * g["nuclear_condensation"] + 0.3 * g["soma_size"],
        0.08,
    ),
    ("soma_eccentricity", "0.3 + 0.5·soma_elongation", lambda g: 0.3 + 0.5 * g["soma_elongation"], 0.05),
    (
        "mito_membrane_potential",
        "1.0 − 0.45·mito_fragmentation − 0.2·oxidative_stress",
        lambda g: 1.0 - 0.45 * g["mito_fragmentation"] - 0.2 * g["oxidative_stress"],
        0.05,
    ),
    (
        "mito_count",
        "120 + 150·mito_fragmentation − 20·neurite_degeneration",
        lambda g: 120 + 150 * g["mito_fragmentation"] - 20 * g["neurite_degeneration"],
        12.0,
    ),
    (
        "mito_aspect_ratio",
        "3.0·exp(−0.8·mito_fragmentation)",
        lambda g: 3.0 * np.exp(-0.8 * g["mito_fragmentation"]),
        0.15,
    ),
    (
        "ros_level",
        "1 + 1.5·oxidative_stress + 0.6·mito_fragmentation·oxidative_stress + 0.4·lrrk2_g2019s",
        lambda g: (
            1
            + 1.5 * g["oxidative_stress"]
            + 0.6 * g["mito_fragmentation"] * g["oxidative_stress"]
            + 0.4 * g["lrrk2_g2019s"]
        ),
        0.12,
    ),
    (
        "gcase_activity",
        "1.0 − 0.5·gba_n370s − 0.3·lysosomal_dysfunction",
        lambda g: 1.0 - 0.5 * g["gba_n370s"] - 0.3 * g["lysosomal_dysfunction"],
        0.05,
    ),
    (
        "lamp1_intensity",
        "1 + 1.2·lysosomal_dysfunction + 0.3·gba_n370s",
        lambda g: 1 + 1.2 * g["lysosomal_dysfunction"] + 0.3 * g["gba_n370s"],
        0.1,
    ),
    (
        "prab10_ratio",
        "1 + 1.8·lrrk2_g2019s + 0.2·disease",
        lambda g: 1 + 1.8 * g["lrrk2_g2019s"] + 0.2 * g["disease"],
        0.12,
    ),
    (
        "dopamine_release_pmol",
        "5 + 20·th_intensity − 6·disease·th_intensity − 3·oxidative_stress",
        lambda g: 5 + 20 * g["th_intensity"] - 6 * g["disease"] * g["th_intensity"] - 3 * g["oxidative_stress"],
        1.5,
    ),
    (
        "caspase3_activity",
        "1 + 2·nuclear_condensation + 0.5·neurite_degeneration + 0.5·puncta_density·nuclear_condensation",
        lambda g: (
            1
            + 2 * g["nuclear_condensation"]
            + 0.5 * g["neurite_degeneration"]
            + 0.5 * g["puncta_density"] * g["nuclear_condensation"]
        ),
        0.15,
    ),
    (
        "firing_rate_hz",
        "max(0, 2 + 4·ais_length − 2·neurite_degeneration + 1·map2_intensity + noise)",
        lambda g: 2 + 4 * g["ais_length"] - 2 * g["neurite_degeneration"] + g["map2_intensity"],
        0.5,
    ),
    (
        "syn_oligomer_ng_ml",
        "5 + 10·snca_triplication + 6·puncta_density + 3·aggregate_size",
        lambda g: 5 + 10 * g["snca_triplication"] + 6 * g["puncta_density"] + 3 * g["aggregate_size"],
        1.0,
    ),
)

#: Categorical record columns and their levels (codes are the level indices).
RECORD_CATEGORIES: dict[str, list[str]] = {
    "genotype": ["WT", "LRRK2", "GBA", "SNCA"],
    "sex": ["F", "M"],
    "site": ["site-A", "site-B", "site-C", "site-D"],
    "th_status": ["TH-", "TH+"],
}
_SITE_GAIN = np.array([0.94, 0.98, 1.02, 1.06])
_SITE_COLUMNS = ("map2_mean_intensity", "th_mean_intensity", "dapi_integrated")


@dataclasses.dataclass(repr=False)
class NeuronRecords(TabularData):
    """Patient/cell records of a :class:`NeuronWorld`: a :class:`TabularData` with categorical columns.

    Categorical columns hold integer codes in ``raw`` (and, standardised like
    every other column, in ``X``); ``categories[name][code]`` is the level name.

    Attributes
    ----------
    categorical : list of str
        Names of the categorical columns.
    categories : dict of str to list of str
        Level names of each categorical column.
    """

    categorical: list[str] = dataclasses.field(default_factory=list)
    categories: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    @property
    def categorical_mask(self) -> np.ndarray:
        """Boolean mask over ``feature_names``: True for categorical columns."""
        return np.array([c in self.categorical for c in self.feature_names])

    def __repr__(self) -> str:
        return (
            f"NeuronRecords({self.name!r}: {len(self)} records × {len(self.feature_names)} features "
            f"({len(self.categorical)} categorical), classes {self.class_names})"
        )


#: The record columns that a high-content morphometry screen measures on the cells themselves (shape,
#: stains, puncta): they depend on the factors the images show, unlike the clinical, biochemical and
#: electrophysiology columns. The second modality of the cross-modal alignment experiment.
MORPHOMETRY_COLUMNS: tuple[str, ...] = (
    "soma_area_um2",
    "nucleus_area_um2",
    "neurite_total_length_um",
    "branch_points",
    "primary_neurites",
    "ais_length_um",
    "ais_start_um",
    "puncta_per_100um",
    "aggregate_area_um2",
    "map2_mean_intensity",
    "dapi_integrated",
    "soma_eccentricity",
)


def _make_records(rng: np.random.Generator, f: np.ndarray, disease: np.ndarray, test_fraction: float) -> NeuronRecords:
    n = len(f)
    g = {name: f[:, i].astype(np.float64) for i, name in enumerate(FACTOR_NAMES)}
    eps = rng.standard_normal((n, len(RECORD_COLUMNS)))
    sex = (rng.random(n) < 0.5).astype(np.float64)
    site = rng.integers(0, 4, size=n)
    cols: dict[str, np.ndarray] = {}
    for j, (name, _formula, fn, sd) in enumerate(RECORD_COLUMNS):
        v = np.broadcast_to(fn(g), (n,)) + sd * eps[:, j]
        if name in _SITE_COLUMNS:
            v = v * _SITE_GAIN[site]
        if name in ("disease_duration_years", "firing_rate_hz"):
            v = np.maximum(v, 0.0)
        if name == "branch_points":
            v = np.maximum(np.round(v), 0.0)
        if name == "primary_neurites":
            v = np.maximum(np.round(v), 1.0)
        cols[name] = v
    genotype = np.zeros(n)
    genotype[g["lrrk2_g2019s"] > 0] = 1
    genotype[g["gba_n370s"] > 0] = 2
    genotype[g["snca_triplication"] > 0] = 3  # priority SNCA > GBA > LRRK2 when several are present
    cols["genotype"] = genotype
    cols["sex"] = sex
    cols["site"] = site.astype(np.float64)
    cols["th_status"] = (cols["th_mean_intensity"] > 600).astype(np.float64)
    names = list(cols)
    raw = np.stack([cols[c] for c in names], axis=1)
    # stratified seeded split
    test_idx: list[int] = []
    for c in np.unique(disease):
        rows = np.flatnonzero(disease == c)
        rng.shuffle(rows)
        test_idx.extend(rows[: round(len(rows) * test_fraction)].tolist())
    test = np.sort(np.asarray(test_idx, dtype=np.int64))
    train = np.setdiff1d(np.arange(n), test)
    ref = raw[train] if len(train) else raw
    mean = ref.mean(0)
    std = ref.std(0)
    std = np.where(std > 0, std, 1.0)
    x = ((raw - mean) / std).astype(np.float32)
    return NeuronRecords(
        name="neuron-records",
        X=torch.from_numpy(x),
        y=torch.from_numpy(disease.astype(np.int64)),
        raw=raw,
        feature_names=names,
        class_names=["control", "PD"],
        mean=mean,
        std=std,
        train=train,
        test=test,
        description=(
            "Synthetic patient/cell records from superwidgets.data.neurons: 28 continuous columns, each a "
            "documented linear-plus-nonlinear function of the ground-truth factors plus Gaussian noise, and 4 "
            "categorical columns (genotype, sex, site, th_status). Not real data."
        ),
        categorical=list(RECORD_CATEGORIES),
        categories={k: list(v) for k, v in RECORD_CATEGORIES.items()},
    )


# --------------------------------------------------------------------------------------------
# Expression
# --------------------------------------------------------------------------------------------

#: Named marker genes and their loadings on the factors (log-scale effect per unit factor).
NAMED_GENES: dict[str, dict[str, float]] = {
    "TH": {"th_intensity": 2.0},
    "DDC": {"th_intensity": 1.2},
    "SLC6A3": {"th_intensity": 1.5, "disease": -0.5},
    "NR4A2": {"th_intensity": 0.8},
    "KCNJ6": {"th_intensity": 1.0},
    "MAP2": {"map2_intensity": 1.5, "neurite_length": 0.5},
    "TUBB3": {"neurite_length": 0.8, "branch_count": 0.6},
    "GAP43": {"neurite_length": 1.0},
    "RBFOX3": {"soma_size": 0.6},
    "SNCA": {"snca_triplication": 1.8, "puncta_density": 0.6},
    "LRRK2": {"lrrk2_g2019s": 1.2},
    "GBA1": {"gba_n370s": -0.8},
    "LAMP1": {"lysosomal_dysfunction": 1.2},
    "CTSD": {"lysosomal_dysfunction": 1.0, "gba_n370s": 0.5},
    "TFEB": {"lysosomal_dysfunction": 0.8},
    "SQSTM1": {"aggregate_size": 1.2, "lysosomal_dysfunction": 0.4},
    "HSPA1A": {"puncta_density": 1.0, "aggregate_size": 0.6},
    "TOMM20": {"mito_fragmentation": -0.6, "soma_size": 0.3},
    "MFN2": {"mito_fragmentation": -1.2},
    "DNM1L": {"mito_fragmentation": 1.2},
    "PINK1": {"mito_fragmentation": 0.8, "oxidative_stress": 0.4},
    "PRKN": {"mito_fragmentation": 0.6},
    "HMOX1": {"oxidative_stress": 1.5},
    "NQO1": {"oxidative_stress": 1.2},
    "SOD2": {"oxidative_stress": 0.8, "mito_fragmentation": 0.4},
    "CASP3": {"nuclear_condensation": 1.2},
    "BAX": {"nuclear_condensation": 1.0, "oxidative_stress": 0.4},
    "CDKN1A": {"age": 1.0, "nuclear_condensation": 0.5},
    "ANK3": {"ais_length": 1.2},
    "SCN8A": {"ais_length": 0.8, "ais_position": -0.4},
    "NEFL": {"neurite_degeneration": -1.0, "neurite_length": 0.4},
    "ATF3": {"neurite_degeneration": 1.2},
    "VIM": {"soma_elongation": 0.8},
}


def _make_loadings(rng: np.random.Generator, n_genes: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    names = list(NAMED_GENES)[: min(n_genes, len(NAMED_GENES))]
    load = np.zeros((n_genes, K))
    for gi, gname in enumerate(names):
        for fac, w in NAMED_GENES[gname].items():
            load[gi, _F[fac]] = w
    n_rand = n_genes - len(names)
    # random genes: 20 % housekeeping (no loadings), the rest load on 1–3 factors
    nload = rng.choice([0, 1, 2, 3], size=n_rand, p=[0.2, 0.4, 0.25, 0.15])
    facs = np.argsort(rng.random((n_rand, K)), axis=1)[:, :3]
    mags = 0.8 + 1.2 * rng.random((n_rand, 3))
    signs = np.where(rng.random((n_rand, 3)) < 0.7, 1.0, -1.0)
    for j in range(n_rand):
        for t in range(nload[j]):
            load[len(names) + j, facs[j, t]] = mags[j, t] * signs[j, t]
    width = len(str(n_genes))
    names += [f"GENE_{len(names) + j:0{width}d}" for j in range(n_rand)]
    base = np.concatenate([np.full(min(n_genes, len(NAMED_GENES)), 1.0), rng.normal(0.0, 1.0, size=n_rand)])
    return names, load.astype(np.float32), base


def _make_expression(
    rng: np.random.Generator, f: np.ndarray, load: np.ndarray, base: np.ndarray, dropout: float
) -> np.ndarray:
    n, gcount = f.shape[0], load.shape[0]
    lib = np.exp(0.25 * rng.standard_normal(n))
    theta = 1.0 + 4.0 * rng.random(gcount)  # per-gene NB dispersion
    mu = np.exp(base[None, :] + f.astype(np.float64) @ load.astype(np.float64).T) * lib[:, None]
    lam = rng.gamma(theta[None, :], mu / theta[None, :])
    counts = rng.poisson(lam).astype(np.float64)
    counts[rng.random((n, gcount)) < dropout] = 0.0
    return counts.astype(np.float32)


# --------------------------------------------------------------------------------------------
# The world
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(repr=False)
class NeuronWorld:
    """A synthetic population of neurons with known ground-truth factors and four modalities.

    Attributes
    ----------
    factors : numpy.ndarray, shape (n, K), float32
        Ground-truth factor values in [0, 1]; 0 = inactive (the cell is at baseline for that factor).
    factor_names : list of str
        Names of the K factors (:data:`FACTOR_NAMES`).
    images : numpy.ndarray, shape (n, 4, S, S), float32 in [0, 1]
        Multiplexed images, channels :data:`CHANNEL_NAMES`.
    channel_names : list of str
        ``["neurites", "nuclei", "puncta", "ais"]``.
    records : NeuronRecords
        Patient/cell records (``TabularData``-compatible; ``y`` = disease).
    expression : numpy.ndarray, shape (n, G), float32
        Zero-inflated negative-binomial counts (integer-valued).
    gene_names : list of str
        Names of the G genes.
    loadings : numpy.ndarray, shape (G, K), float32
        Log-scale loading of each gene on each factor (sparse).
    outcome : numpy.ndarray, shape (n,), float32
        Death-risk score, :func:`death_risk` of the factors.
    disease : numpy.ndarray, shape (n,), int64
        1 for Parkinson's-disease cells (the ``disease`` factor is active), else 0.
    seed : int
        The seed everything was generated from.
    cell_seeds : numpy.ndarray, shape (n,), int64
        Per-cell image-layout seeds (see :meth:`render`).
    image_size : int
        Image side S in pixels.
    noise : float
        Pixel noise s.d. used for the images.
    activation_prob : numpy.ndarray, shape (K,)
        Target marginal activation probability of each factor (Zipf-like).
    correlation : float
        Strength of the disease block (0 = independent factors).
    """

    factors: np.ndarray
    factor_names: list[str]
    images: np.ndarray
    channel_names: list[str]
    records: NeuronRecords
    expression: np.ndarray
    gene_names: list[str]
    loadings: np.ndarray
    outcome: np.ndarray
    disease: np.ndarray
    seed: int
    cell_seeds: np.ndarray
    image_size: int
    noise: float
    activation_prob: np.ndarray
    correlation: float

    def __len__(self) -> int:
        return int(self.factors.shape[0])

    def __repr__(self) -> str:
        n = len(self)
        s = self.image_size
        zeros = float((self.expression == 0).mean()) if self.expression.size else 0.0
        act = float((self.factors > 0).sum(1).mean()) if n else 0.0
        dis = float(self.disease.mean()) if n else 0.0
        return (
            f"NeuronWorld({n} cells, {len(self.factor_names)} factors ({act:.1f} active per cell), "
            f"images {len(self.channel_names)}×{s}×{s} {self.channel_names}, "
            f"records {len(self.records.feature_names)} columns ({len(self.records.categorical)} categorical), "
            f"expression {len(self.gene_names)} genes ({zeros:.0%} zeros), disease {dis:.0%}, seed {self.seed})"
        )

    def factor_index(self, name: str) -> int:
        """Column of factor ``name`` in :attr:`factors`; a clear error with suggestions if unknown."""
        if name in self.factor_names:
            return self.factor_names.index(name)
        close = difflib.get_close_matches(name, self.factor_names, n=3)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else f"; valid: {self.factor_names}"
        raise ValueError(f"unknown factor {name!r}{hint}")

    def render(
        self,
        factors: np.ndarray | Sequence[float],
        cells: int | Sequence[int] | np.ndarray | None = None,
    ) -> np.ndarray:
        """Re-render images from (edited) factor vectors, keeping each cell's layout.

        Parameters
        ----------
        factors : array-like, shape (K,) or (m, K)
            Factor values in [0, 1] (e.g. ``world.factors[i]`` with one entry changed).
        cells : int, array-like of int (m,), or None
            Whose layout (soma position, neurite paths, puncta positions, noise) to
            use: one cell index for every row (a sweep of one cell), or one per row.
            None means ``range(m)``, which requires ``m == len(world)``.

        Returns
        -------
        numpy.ndarray, shape (m, 4, S, S), float32
            ``world.render(world.factors[i], i)`` equals ``world.images[i:i+1]``.
        """
        f = _check_factors(factors)
        if cells is None:
            if len(f) != len(self):
                raise ValueError(
                    f"pass cells= (whose layout to use): got {len(f)} factor rows for a world of {len(self)} cells"
                )
            idx = np.arange(len(self))
        else:
            idx = np.asarray(cells)
            if idx.ndim == 0:
                idx = np.full(len(f), idx)
            if idx.shape != (len(f),) or not np.issubdtype(idx.dtype, np.integer):
                raise ValueError(f"cells must be an int or one int per factor row ({len(f)}); got {cells!r}")
            if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
                raise ValueError(f"cells must lie in 0..{len(self) - 1}; got values in [{idx.min()}, {idx.max()}]")
        return render_neurons(f, self.cell_seeds[idx], self.image_size, self.noise)


def neurons(
    n: int = 1000,
    seed: int = 0,
    image_size: int = 64,
    *,
    mean_active: float = 3.0,
    zipf_exponent: float = 1.0,
    correlation: float = 1.0,
    n_genes: int = 300,
    dropout: float = 0.3,
    noise: float = 0.03,
    test_fraction: float = 0.25,
) -> NeuronWorld:
    """Generate a synthetic world of iPSC-derived dopaminergic neurons with known ground truth.

    Factor ``k`` (in the order of :data:`FACTOR_NAMES`) is active with marginal
    probability ``p_k = min(0.95, c / (k+1)^zipf_exponent)``, ``c`` chosen so that
    ``sum(p_k) = mean_active``. Genotype flags and age raise the odds of
    ``disease``, and disease (and specific genotypes) raise the odds and the size
    of the disease-block factors (puncta, aggregates, mitochondrial
    fragmentation, neurite degeneration, ...; TH is lowered); every marginal
    rate stays exactly ``p_k``. Active continuous factors take values in
    [0.2, 1]; binary ones (disease, genotypes) take 1.

    Parameters
    ----------
    n : int
        Number of cells (≥ 1).
    seed : int
        Seed (≥ 0); the same seed gives byte-identical arrays.
    image_size : int
        Image side S in pixels (16 to 512).
    mean_active : float
        Expected number of active factors per cell (0 < mean_active ≤ 0.95·K).
    zipf_exponent : float
        Exponent s of the Zipf-like activation probabilities (≥ 0; 0 = all equal).
    correlation : float
        Strength of the disease block, multiplying every parent→child log-odds
        shift (≥ 0; 0 = independent factors).
    n_genes : int
        Number of genes G in the expression profile (≥ 1); the first ones are
        named marker genes (:data:`NAMED_GENES`).
    dropout : float
        Technical dropout probability of each count (0 ≤ dropout < 1).
    noise : float
        Pixel noise s.d. (≥ 0).
    test_fraction : float
        Share of cells in the records' test split (0 < test_fraction < 1), stratified by disease.

    Returns
    -------
    NeuronWorld
    """
    n = _check_int("n", n, 1, "Pass the number of cells, e.g. n=1000.")
    seed = _check_int("seed", seed, 0, "Pass a non-negative integer seed, e.g. seed=0.")
    s = _check_image_size(image_size)
    n_genes = _check_int("n_genes", n_genes, 1, "Pass e.g. n_genes=300.")

    def real(name: str, v: object, ok: Callable[[float], bool], what: str) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number {what}; got {v!r}")
        if not ok(float(v)):
            raise ValueError(f"{name} must be {what}; got {v!r}")
        return float(v)

    mean_active = real("mean_active", mean_active, lambda v: 0 < v <= 0.95 * K, f"in (0, {0.95 * K:g}] (e.g. 3)")
    zipf_exponent = real("zipf_exponent", zipf_exponent, lambda v: v >= 0, "≥ 0 (e.g. 1.0)")
    correlation = real("correlation", correlation, lambda v: v >= 0, "≥ 0 (0 = independent factors, 1 = default)")
    dropout = real("dropout", dropout, lambda v: 0 <= v < 1, "in [0, 1) (e.g. 0.3)")
    noise = real("noise", noise, lambda v: v >= 0, "≥ 0 (pixel noise s.d., e.g. 0.03)")
    test_fraction = real("test_fraction", test_fraction, lambda v: 0 < v < 1, "in (0, 1) (e.g. 0.25)")

    ss = np.random.SeedSequence(seed)
    s_fac, s_img, s_rec, s_load, s_expr = ss.spawn(5)
    probs = _zipf_probs(K, mean_active, zipf_exponent)
    factors, _ = _sample_factors(np.random.default_rng(s_fac), n, probs, correlation)
    disease = (factors[:, _F["disease"]] > 0).astype(np.int64)
    cell_seeds = np.random.default_rng(s_img).integers(0, 2**63 - 1, size=n, dtype=np.int64)
    images = render_neurons(factors, cell_seeds, s, noise)
    records = _make_records(np.random.default_rng(s_rec), factors, disease, test_fraction)
    gene_names, loadings, base = _make_loadings(np.random.default_rng(s_load), n_genes)
    expression = _make_expression(np.random.default_rng(s_expr), factors, loadings, base, dropout)
    return NeuronWorld(
        factors=factors,
        factor_names=list(FACTOR_NAMES),
        images=images,
        channel_names=list(CHANNEL_NAMES),
        records=records,
        expression=expression,
        gene_names=gene_names,
        loadings=loadings,
        outcome=death_risk(factors),
        disease=disease,
        seed=seed,
        cell_seeds=cell_seeds,
        image_size=s,
        noise=noise,
        activation_prob=probs,
        correlation=correlation,
    )
