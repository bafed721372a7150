"""How well a sparse autoencoder does: sparsity, reconstruction, faithfulness, recovery of known features.

* :func:`l0`, :func:`dead_fraction`, :func:`dense_fraction` -- sparsity of the codes;
* :func:`normalized_mse`, :func:`fvu` -- reconstruction;
* :func:`loss_recovered` -- the model's own loss with the SAE spliced in;
* :func:`mmcs` -- recovery of known feature *directions* (toy data);
* :func:`mcc` -- recovery of known ground-truth *factors* (the neuron world);
* :func:`evaluate_sae` -- all of them at once.

Inputs may be tensors or arrays; results are plain floats.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "dead_fraction",
    "dense_fraction",
    "evaluate_sae",
    "fvu",
    "l0",
    "loss_recovered",
    "mcc",
    "mmcs",
    "normalized_mse",
]


def _t(x: Any, what: str) -> torch.Tensor:
    t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if not t.is_floating_point():
        t = t.double()
    if t.ndim != 2:
        raise ValueError(f"{what} must be 2-D (rows = samples or vectors), got shape {tuple(t.shape)}")
    return t


def l0(codes: Any) -> float:
    """Mean number of non-zero latents per input.

    Parameters
    ----------
    codes : Tensor or ndarray, shape (n, n_latents)
        Latent codes.

    Returns
    -------
    float
    """
    c = _t(codes, "codes")
    return float((c != 0).sum(1).double().mean())


def dead_fraction(codes: Any) -> float:
    """Fraction of latents that are zero on every input.

    Parameters
    ----------
    codes : Tensor or ndarray, shape (n, n_latents)
        Latent codes over a (large enough) set of inputs.

    Returns
    -------
    float
    """
    c = _t(codes, "codes")
    return float((c != 0).any(0).logical_not().double().mean())


def dense_fraction(codes: Any, threshold: float = 0.1) -> float:
    """Fraction of latents active on more than ``threshold`` of the inputs (dense, rarely interpretable).

    Parameters
    ----------
    codes : Tensor or ndarray, shape (n, n_latents)
        Latent codes.
    threshold : float
        Firing frequency above which a latent counts as dense (default 10 %).

    Returns
    -------
    float
    """
    c = _t(codes, "codes")
    return float(((c != 0).double().mean(0) > threshold).double().mean())


def normalized_mse(x: Any, x_hat: Any) -> float:
    """Reconstruction error relative to the activations' size: ``Σ‖x − x̂‖² / Σ‖x‖²``.

    Parameters
    ----------
    x, x_hat : Tensor or ndarray, shape (n, d)
        Activations and their reconstruction.

    Returns
    -------
    float
        0 is perfect; 1 is as bad as reconstructing zeros.
    """
    a, b = _t(x, "x").double(), _t(x_hat, "x_hat").double()
    return float((a - b).pow(2).sum() / a.pow(2).sum().clamp_min(1e-300))


def fvu(x: Any, x_hat: Any) -> float:
    """Fraction of variance unexplained: ``Σ‖x − x̂‖² / Σ‖x − mean(x)‖²``.

    Parameters
    ----------
    x, x_hat : Tensor or ndarray, shape (n, d)
        Activations and their reconstruction.

    Returns
    -------
    float
        0 is perfect; 1 is as bad as predicting the mean activation.
    """
    a, b = _t(x, "x").double(), _t(x_hat, "x_hat").double()
    return float((a - b).pow(2).sum() / (a - a.mean(0)).pow(2).sum().clamp_min(1e-300))


def mmcs(true_directions: Any, decoder: Any) -> float:
    """Mean max cosine similarity: for each true feature, the best-aligned decoder row; the mean over features.

    Parameters
    ----------
    true_directions : Tensor or ndarray, shape (n_features, d)
        Ground-truth feature directions (any norms).
    decoder : Tensor or ndarray, shape (n_latents, d)
        The SAE's decoder rows (``sae.W_dec``), or any dictionary.

    Returns
    -------
    float
        In [-1, 1]; 1 when every true feature has a decoder row pointing the same way.
    """
    t, w = _t(true_directions, "true_directions").double(), _t(decoder, "decoder").double()
    if t.shape[1] != w.shape[1]:
        raise ValueError(f"true directions have length {t.shape[1]} but decoder rows have {w.shape[1]}")
    t = t / t.norm(dim=1, keepdim=True).clamp_min(1e-12)
    w = w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return float((t @ w.T).max(1).values.mean())


def _abs_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|Pearson r| between every column of ``a`` and every column of ``b``; 0 where a column is constant."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    na, nb = np.sqrt((a**2).sum(0)), np.sqrt((b**2).sum(0))
    den = np.outer(na, nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 0, (a.T @ b) / np.where(den > 0, den, 1.0), 0.0)
    return np.abs(r)


def mcc(
    latents: Any, factors: Any, *, top: int | None = None, return_pairs: bool = False
) -> float | tuple[float, list[tuple[int, int, float]]]:
    """Mean correlation coefficient between latents and ground-truth factors, after the best one-to-one matching.

    The absolute Pearson correlation of every latent with every factor; the
    Hungarian algorithm (``scipy.optimize.linear_sum_assignment``) pairs latents
    with factors one-to-one to maximise the total; the result is the mean over
    the ``min(n_latents, n_factors)`` matched pairs. Constant columns (a dead
    latent, a factor that never varies) correlate 0 with everything.

    Parameters
    ----------
    latents : Tensor or ndarray, shape (n, n_latents)
        Latent codes (or raw units) of ``n`` inputs.
    factors : Tensor or ndarray, shape (n, n_factors)
        The true factors of the same inputs.
    top : int, optional
        Average only the ``top`` best matched pairs. Use it to compare codes of
        different widths on an equal footing: an SAE with 40 latents is matched
        to all 20 factors (many invisible to the model), 6 raw units to 6 of
        them; ``mcc(sae_codes, f, top=6)`` vs ``mcc(raw_units, f)`` compares the
        6 best-matched factors of each.
    return_pairs : bool
        Also return the matched ``(latent, factor, |r|)`` triples.

    Returns
    -------
    float
        In [0, 1].
    pairs : list of (int, int, float)
        Only with ``return_pairs=True``, sorted by ``|r|`` descending.
    """
    from scipy.optimize import linear_sum_assignment

    z = _t(latents, "latents").double().cpu().numpy()
    f = _t(factors, "factors").double().cpu().numpy()
    if z.shape[0] != f.shape[0]:
        raise ValueError(f"latents have {z.shape[0]} rows but factors have {f.shape[0]}; pass the same inputs' values")
    if not (np.isfinite(z).all() and np.isfinite(f).all()):
        raise ValueError("latents or factors contain NaN or Inf")
    r = _abs_corr(z, f)
    rows, cols = linear_sum_assignment(-r)
    vals = r[rows, cols]
    if top is not None:
        if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
            raise ValueError(f"top must be an integer >= 1, got {top!r}")
        vals = np.sort(vals)[::-1][: int(top)]
    score = float(vals.mean()) if vals.size else 0.0
    if return_pairs:
        pairs = sorted(
            ((int(i), int(j), float(v)) for i, j, v in zip(rows, cols, vals, strict=True)), key=lambda p: -p[2]
        )
        return score, pairs
    return score


def _apply_features_last(sae: nn.Module, h: torch.Tensor, feature_dim: int | None) -> torch.Tensor:
    """``sae(h)`` with the features moved last and back (conv maps: per position)."""
    fd = feature_dim if feature_dim is not None else (1 if h.ndim == 4 else -1)
    moved = h.movedim(fd, -1)
    return sae(moved).movedim(-1, fd)


def loss_recovered(
    lens_or_model: Any,
    site: str,
    sae: nn.Module,
    inputs: Any,
    targets: Any,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    *,
    feature_dim: int | None = None,
    return_losses: bool = False,
) -> float | tuple[float, dict[str, float]]:
    """Fraction of the model's loss the SAE recovers when it replaces the activations at ``site``.

    ``(L_zero − L_SAE) / (L_zero − L_clean)``: ``L_clean`` is the model's loss
    on its own task, ``L_zero`` with the site's output replaced by zeros, and
    ``L_SAE`` with it replaced by the SAE's reconstruction. 1 means the SAE
    loses nothing the model needs; 0 means it is no better than zero ablation.
    The replacement is a temporary forward hook, removed even when the model
    raises; with a :class:`~superwidgets.Lens`, its edits are switched off
    during the measurement.

    Parameters
    ----------
    lens_or_model : Lens or nn.Module
        The model (or a Lens on it).
    site : str
        Module path the SAE reads.
    sae : nn.Module
        Anything with ``forward(x) -> x̂`` on features-last activations.
    inputs : Tensor
        A batch of model inputs.
    targets : Tensor
        The task's targets for ``loss_fn``.
    loss_fn : callable, optional
        ``loss_fn(output, targets) -> scalar``; default ``torch.nn.functional.cross_entropy``.
    feature_dim : int, optional
        Feature axis of the site's output (default 1 for 4-D, else last).
    return_losses : bool
        Also return ``{"clean", "zero", "sae"}`` losses.

    Returns
    -------
    float
        The fraction recovered (``nan`` when zero ablation does not change the loss).
    """
    from ..engine.lens import Lens
    from ..engine.sites import get_element, resolve_site, set_element

    loss_fn = loss_fn if loss_fn is not None else nn.functional.cross_entropy
    if isinstance(lens_or_model, Lens):
        model, ctx = lens_or_model.model, lens_or_model.off()
    elif isinstance(lens_or_model, nn.Module):
        import contextlib

        model, ctx = lens_or_model, contextlib.nullcontext()
    else:
        raise TypeError(f"lens_or_model must be a Lens or an nn.Module, got {type(lens_or_model).__name__}")
    module = resolve_site(model, site)
    mode: list[str] = ["clean"]

    def hook(_m: nn.Module, _a: Any, out: Any) -> Any:
        if mode[0] == "clean":
            return None
        h = get_element(out, 0)
        new = torch.zeros_like(h) if mode[0] == "zero" else _apply_features_last(sae, h, feature_dim).to(h.dtype)
        return set_element(out, 0, new)

    losses: dict[str, float] = {}
    training = model.training
    with ctx:
        handle = module.register_forward_hook(hook)
        try:
            model.eval()
            with torch.no_grad():
                for m in ("clean", "zero", "sae"):
                    mode[0] = m
                    losses[m] = float(loss_fn(model(inputs), targets))
        finally:
            handle.remove()
            model.train(training)
    den = losses["zero"] - losses["clean"]
    frac = (losses["zero"] - losses["sae"]) / den if den != 0 else float("nan")
    return (frac, losses) if return_losses else frac


def evaluate_sae(
    sae: nn.Module,
    acts: Any,
    *,
    true_directions: Any = None,
    factors: Any = None,
    model: Any = None,
    site: str | None = None,
    inputs: Any = None,
    targets: Any = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    dense_threshold: float = 0.1,
) -> dict[str, float]:
    """Every metric that the given arguments allow, in one dict.

    Parameters
    ----------
    sae : nn.Module
        The SAE (``encode``, ``decode``, ``W_dec``).
    acts : Tensor (n, d)
        Activations to evaluate on (held out from training, ideally).
    true_directions : array (n_features, d), optional
        Adds ``"mmcs"``.
    factors : array (n, n_factors), optional
        Ground-truth factors of the same ``n`` activations; adds ``"mcc"``
        (SAE latents, all matched pairs), ``"mcc_raw"`` (the ``d`` raw
        activation units) and ``"mcc_top_d"`` (SAE latents, the ``d`` best
        matched pairs: comparable with ``mcc_raw``).
    model, site, inputs, targets, loss_fn : optional
        All of ``model`` (or a Lens), ``site``, ``inputs`` and ``targets``: adds
        ``"loss_recovered"`` (see :func:`loss_recovered`).
    dense_threshold : float
        See :func:`dense_fraction`.

    Returns
    -------
    dict of str to float
        ``l0``, ``normalized_mse``, ``fvu``, ``dead_fraction``, ``dense_fraction``,
        and ``mmcs`` / ``mcc`` / ``mcc_raw`` / ``mcc_top_d`` / ``loss_recovered`` when computable.
    """
    x = _t(acts, "acts").float()
    p = next(iter(sae.parameters()), None)
    if p is not None:
        x = x.to(p.device, p.dtype)
    with torch.no_grad():
        codes = sae.encode(x)
        x_hat = sae.decode(codes)
    out = {
        "l0": l0(codes),
        "normalized_mse": normalized_mse(x, x_hat),
        "fvu": fvu(x, x_hat),
        "dead_fraction": dead_fraction(codes),
        "dense_fraction": dense_fraction(codes, dense_threshold),
    }
    if true_directions is not None:
        out["mmcs"] = mmcs(true_directions, sae.W_dec)
    if factors is not None:
        out["mcc"] = float(mcc(codes, factors))  # type: ignore[arg-type]
        out["mcc_raw"] = float(mcc(x, factors))  # type: ignore[arg-type]
        out["mcc_top_d"] = float(mcc(codes, factors, top=x.shape[1]))  # type: ignore[arg-type]
    if model is not None and site is not None and inputs is not None and targets is not None:
        out["loss_recovered"] = float(loss_recovered(model, site, sae, inputs, targets, loss_fn))  # type: ignore[arg-type]
    return out
