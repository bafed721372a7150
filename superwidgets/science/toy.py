"""Toy models of superposition (Elhage et al. 2022, "Toy Models of Superposition").

``n`` features ``x ∈ [0, 1]^n``, each independently zero with probability ``S``
(else uniform on ``[0, 1]``), are squeezed through ``m < n`` hidden dimensions,
``h = W x``, and read back with the tied weights, ``x′ = ReLU(WᵀW x + b)`` (or
``WᵀW x + b`` for the linear variant). The loss is ``Σ_i I_i (x_i − x′_i)²``
averaged over the batch, with importances ``I_i``.

Many instances (one per sparsity / importance setting) train at once in one
batched model: ``W`` has shape ``[n_instances, n_hidden, n_features]``. Training
is vectorised over instances, in float32, with hand-written gradients and a
hand-written AdamW step (decoupled decay 0: the weight-decay knob is a loss
term, see :class:`ToyConfig`). The model is four small batched matrix
products, so autograd's and ``torch.optim``'s per-call overheads would
dominate; a test checks the result against autograd + ``torch.optim.AdamW``.

Metrics follow the paper: feature norms ``‖W_i‖``, superposition
``Σ_{j≠i} (Ŵ_i·W_j)²``, feature dimensionality
``D_i = ‖W_i‖² / Σ_j (Ŵ_i·W_j)²`` and dimensions per feature ``D* = m / ‖W‖_F²``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "ToyConfig",
    "ToyModel",
    "dimensionality",
    "dims_per_feature",
    "feature_norms",
    "interference",
    "n_represented",
    "sample_batch",
    "superposition",
    "train_toy",
]

#: Default sweep of feature probabilities ``1 − S``: log-spaced from 1 (dense) to this.
SWEEP_MIN = 0.01

#: Feature norms below this count as zero in :func:`dimensionality` and :func:`superposition`.
NORM_EPS = 1e-6


def default_sweep(n_instances: int, lowest: float = SWEEP_MIN) -> list[float]:
    """Feature probabilities ``1 − S`` log-spaced from 1 down to ``lowest``.

    Parameters
    ----------
    n_instances : int
        Number of values.
    lowest : float
        The last (sparsest) value, in (0, 1].

    Returns
    -------
    list of float
        ``lowest ** linspace(0, 1, n_instances)``; ``[1.0]`` for one instance.
    """
    if n_instances == 1:
        return [1.0]
    return [float(lowest ** (k / (n_instances - 1))) for k in range(n_instances)]


@dataclass
class ToyConfig:
    """Settings of a batch of toy models, one instance per sparsity / importance setting.

    Parameters
    ----------
    n_features : int
        Number of input features ``n``. Default 5.
    n_hidden : int
        Hidden dimensions ``m``. Default 2.
    n_instances : int
        Models trained at once. Default 8.
    feature_probability : float or sequence of float or None
        ``1 − S``, the probability that a feature is non-zero, in (0, 1]: one
        value for all instances, or one per instance. ``None`` (default): a
        log-spaced sweep from 1 (dense) down to 0.01 (see :func:`default_sweep`).
    importance : float or sequence or Tensor
        Feature importances ``I_i``: a scalar ``r`` gives ``I_i = r ** i``; a
        vector of length ``n_features`` is used as is for every instance; an
        ``[n_instances, n_features]`` array gives each instance its own.
        Must be positive and finite. Default 1.0 (uniform).
    relu : bool
        ``x′ = ReLU(WᵀW x + b)`` (True, default) or ``WᵀW x + b`` (False).
    weight_decay : float
        Strength of a penalty on ``W`` added to each instance's loss (the bias is
        not penalised). Positive: decay, ``weight_decay · ‖W‖_F²`` — fewer
        features represented. Negative: growth, ``|weight_decay| · Σ_i (‖W_i‖ − 1)²``,
        which pulls every feature's norm towards 1 — more features represented,
        in superposition. This is the bounded form of negative weight decay of
        Liu, Liu & Gore (2025, "Superposition yields robust neural scaling"); a
        plain negative ``‖W‖²`` term is unbounded below and blows rare
        features' norms up to tens. The reconstruction loss is small (it scales
        with ``1 − S``), so ±0.01 already moves the count a lot. Default 0.
    steps : int
        Optimiser steps. Default 4000.
    batch_size : int
        Samples per step. Default 128.
    lr : float
        Peak learning rate of Adam (betas 0.9, 0.999, no decoupled decay: see
        ``weight_decay``); it warms up linearly over the first 2 % of the steps
        and decays on a cosine to 5 % of the peak at the end. Default 0.03.
    seed : int
        Seed of the initialisation and of the data stream, ≥ 0. Default 0.

    Raises
    ------
    ValueError
        If a value is out of range or a sequence has the wrong length.
    """

    n_features: int = 5
    n_hidden: int = 2
    n_instances: int = 8
    feature_probability: float | Sequence[float] | None = None
    importance: float | Sequence[float] | Sequence[Sequence[float]] | Tensor = 1.0
    relu: bool = True
    weight_decay: float = 0.0
    steps: int = 4000
    batch_size: int = 128
    lr: float = 0.03
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_features", "n_hidden", "n_instances", "steps", "batch_size", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise ValueError(f"{name} must be an integer, got {v!r}")
            setattr(self, name, int(v))
        lows = {"n_features": 1, "n_hidden": 1, "n_instances": 1, "steps": 0, "batch_size": 1, "seed": 0}
        for name, lo in lows.items():
            if getattr(self, name) < lo:
                raise ValueError(f"{name} must be at least {lo}, got {getattr(self, name)}")
        for name in ("weight_decay", "lr"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {v!r}")
            setattr(self, name, float(v))
        self.relu = bool(self.relu)
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        self._resolve_probability()
        self._resolve_importance()

    def _resolve_probability(self) -> Tensor:
        I = self.n_instances
        fp = self.feature_probability
        if fp is None:
            fp = default_sweep(I)
        try:
            p = torch.as_tensor(fp, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"feature_probability must be a number or a sequence of numbers, got {fp!r}") from None
        if p.ndim == 0:
            p = p.expand(I)
        if p.shape != (I,):
            raise ValueError(
                f"feature_probability must be a scalar or have one value per instance "
                f"(n_instances={I}), got shape {tuple(p.shape)}"
            )
        if not bool(torch.isfinite(p).all()) or bool((p <= 0).any()) or bool((p > 1).any()):
            raise ValueError(f"feature_probability (1 − S) must be in (0, 1], got {p.tolist()}")
        return p.float().contiguous()

    def _resolve_importance(self) -> Tensor:
        I, n = self.n_instances, self.n_features
        try:
            r = torch.as_tensor(self.importance, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(
                f"importance must be a number, a vector of length n_features or an "
                f"[n_instances, n_features] array, got {self.importance!r}"
            ) from None
        if r.ndim == 0:
            imp = r ** torch.arange(n, dtype=torch.float64)
            imp = imp.expand(I, n)
        elif r.shape == (n,):
            imp = r.expand(I, n)
        elif r.shape == (I, n):
            imp = r
        else:
            raise ValueError(
                f"importance must be a scalar decay r (I_i = r**i), a vector of length "
                f"n_features={n} or an [n_instances, n_features] = [{I}, {n}] array, got shape {tuple(r.shape)}"
            )
        if not bool(torch.isfinite(imp).all()) or bool((imp <= 0).any()):
            raise ValueError("importance must be positive and finite (a decay r > 0, or positive values)")
        return imp.float().contiguous()

    def probabilities(self) -> Tensor:
        """Feature probability ``1 − S`` of each instance.

        Returns
        -------
        Tensor
            float32 ``[n_instances]``.
        """
        return self._resolve_probability()

    def importances(self) -> Tensor:
        """Importance ``I_i`` of each feature in each instance.

        Returns
        -------
        Tensor
            float32 ``[n_instances, n_features]``.
        """
        return self._resolve_importance()


class ToyModel(nn.Module):
    """A batch of toy models ``x′ = ReLU(WᵀW x + b)`` (or linear), one per instance.

    Parameters
    ----------
    config : ToyConfig
        Shapes, ``relu`` and ``seed`` come from here.
    generator : torch.Generator, optional
        Source of the initial weights; default: a generator seeded with
        ``config.seed``.

    Attributes
    ----------
    W : Parameter
        ``[n_instances, n_hidden, n_features]``; column ``W[k, :, i]`` is feature
        ``i``'s direction in instance ``k``. Xavier-normal initialisation.
    b_final : Parameter
        ``[n_instances, n_features]``, the output bias; initialised to zero.
    relu : bool
        Whether the output goes through a ReLU.
    config : ToyConfig
        The configuration the model was built with.
    """

    def __init__(self, config: ToyConfig, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not isinstance(config, ToyConfig):
            raise TypeError(f"config must be a ToyConfig, got {type(config).__name__}")
        gen = generator if generator is not None else torch.Generator().manual_seed(config.seed)
        I, m, n = config.n_instances, config.n_hidden, config.n_features
        std = math.sqrt(2.0 / (m + n))  # xavier normal for an m×n matrix
        self.W = nn.Parameter(torch.randn(I, m, n, generator=gen) * std)
        self.b_final = nn.Parameter(torch.zeros(I, n))
        self.relu = bool(config.relu)
        self.config = config

    def hidden(self, x: Tensor) -> Tensor:
        """Hidden activations ``h = W x``.

        Parameters
        ----------
        x : Tensor
            ``[batch, n_instances, n_features]``.

        Returns
        -------
        Tensor
            ``[batch, n_instances, n_hidden]``.
        """
        _check_input(self, x)
        return torch.einsum("imn,bin->bim", self.W, x)

    def decode(self, h: Tensor) -> Tensor:
        """Reconstruction ``x′ = ReLU(Wᵀh + b)`` (no ReLU for a linear model).

        Parameters
        ----------
        h : Tensor
            ``[batch, n_instances, n_hidden]``.

        Returns
        -------
        Tensor
            ``[batch, n_instances, n_features]``.
        """
        I, m, _ = self.W.shape
        if h.ndim != 3 or h.shape[1:] != (I, m):
            raise ValueError(
                f"h must have shape [batch, {I}, {m}] (batch, n_instances, n_hidden), got {tuple(h.shape)}"
            )
        out = torch.einsum("imn,bim->bin", self.W, h) + self.b_final
        return torch.relu(out) if self.relu else out

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruct ``x``: ``decode(hidden(x))``.

        Parameters
        ----------
        x : Tensor
            ``[batch, n_instances, n_features]``.

        Returns
        -------
        Tensor
            ``x′``, same shape as ``x``.
        """
        return self.decode(self.hidden(x))

    def loss(self, x: Tensor) -> Tensor:
        """Importance-weighted reconstruction loss of each instance (no weight-decay term).

        Parameters
        ----------
        x : Tensor
            ``[batch, n_instances, n_features]``.

        Returns
        -------
        Tensor
            ``[n_instances]``: ``mean_batch Σ_i I_i (x_i − x′_i)²``.
        """
        imp = self.config.importances().to(x.device, x.dtype)
        return (imp * (x - self(x)) ** 2).sum(-1).mean(0)


def _check_input(model: ToyModel, x: Tensor) -> None:
    I, _, n = model.W.shape
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 3 or x.shape[1:] != (I, n):
        raise ValueError(f"x must have shape [batch, {I}, {n}] (batch, n_instances, n_features), got {tuple(x.shape)}")


def sample_batch(config: ToyConfig, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
    """Draw sparse inputs: each feature is 0 with probability ``S``, else uniform on ``[0, 1]``.

    One uniform draw ``u`` per entry does both jobs: the feature is on when
    ``u < p = 1 − S``, and then ``1 − u/p`` is uniform on ``(0, 1]``.

    Parameters
    ----------
    config : ToyConfig
        Gives the shape and each instance's ``1 − S``.
    batch_size : int
        Number of samples.
    generator : torch.Generator, optional
        Random source (seed it for reproducible data).

    Returns
    -------
    Tensor
        float32 ``[batch_size, n_instances, n_features]``.
    """
    u = torch.rand(batch_size, config.n_instances, config.n_features, generator=generator)
    return _sparse_from_uniform(u, config.probabilities()[:, None])


def _sparse_from_uniform(u: Tensor, p: Tensor) -> Tensor:
    """``relu(1 − u/p)``: zero with probability ``1 − p``, else uniform on (0, 1]."""
    return torch.relu_(torch.div(u, p).neg_().add_(1.0))


# --------------------------------------------------------------------- training
def _lr_at(step: int, total: int, peak: float) -> float:
    """Linear warm-up over 2 % of the steps, then cosine decay to 5 % of ``peak``."""
    warm = max(1, total // 50)
    if step < warm:
        return peak * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return peak * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * t)))


class _Trainer:
    """Hand-written forward, backward and AdamW step on ``[I, B, n]`` layout tensors."""

    def __init__(self, model: ToyModel, config: ToyConfig) -> None:
        self.cfg = config
        self.W = model.W.detach().clone().contiguous()  # [I, m, n]
        self.b = model.b_final.detach().clone()[:, None, :].contiguous()  # [I, 1, n]
        # 2 I_i / B: the derivative of mean_b Σ_i I_i d_i² with respect to d_i
        self.gscale = (2.0 * config.importances() / config.batch_size)[:, None, :].contiguous()
        self.neg_inv_p = (-1.0 / config.probabilities())[:, None, None].contiguous()
        self.state = [(torch.zeros_like(t), torch.zeros_like(t)) for t in (self.W, self.b)]
        self.beta1, self.beta2, self.eps = 0.9, 0.999, 1e-8
        self.t = 0

    def step(self, x: Tensor, lr: float, want_loss: bool) -> Tensor | None:
        W, b = self.W, self.b
        h = torch.bmm(x, W.transpose(1, 2))  # [I, B, m]
        pre = torch.baddbmm(b, h, W)  # [I, B, n]
        if self.cfg.relu:
            d = torch.relu(pre).sub_(x)
            g = torch.ops.aten.threshold_backward(d, pre, 0.0)
        else:
            d = pre.sub_(x)
            g = d
        loss = (d * d).mul_(self.gscale).sum((1, 2)).mul_(0.5) if want_loss else None
        g.mul_(self.gscale)
        gb = g.sum(1, keepdim=True)
        dh = torch.bmm(g, W.transpose(1, 2))  # [I, B, m]
        gW = torch.bmm(h.transpose(1, 2), g)
        gW.baddbmm_(dh.transpose(1, 2), x)
        wd = self.cfg.weight_decay
        if wd > 0.0:  # wd · ‖W‖²
            gW.add_(W, alpha=2.0 * wd)
        elif wd < 0.0:  # |wd| · Σ_i (‖W_i‖ − 1)²: growth towards unit norm
            norms = torch.linalg.vector_norm(W, dim=1, keepdim=True).clamp_min_(NORM_EPS)
            gW.addcmul_(W, norms.reciprocal_().neg_().add_(1.0), value=-2.0 * wd)
        self.t += 1
        bc1 = 1.0 - self.beta1**self.t
        bc2 = 1.0 - self.beta2**self.t
        for param, grad, (m1, m2) in ((W, gW, self.state[0]), (b, gb, self.state[1])):
            m1.lerp_(grad, 1.0 - self.beta1)
            m2.mul_(self.beta2).addcmul_(grad, grad, value=1.0 - self.beta2)
            denom = m2.sqrt().div_(math.sqrt(bc2)).add_(self.eps)
            param.addcdiv_(m1, denom, value=-lr / bc1)
        return loss

    def write(self, model: ToyModel) -> None:
        with torch.no_grad():
            model.W.copy_(self.W)
            model.b_final.copy_(self.b[:, 0, :])


def train_toy(
    config: ToyConfig,
    *,
    progress: Callable[[int, int, ToyModel, Tensor], object] | None = None,
    should_stop: Callable[[], bool] | None = None,
    model: ToyModel | None = None,
    progress_every: int = 50,
) -> ToyModel:
    """Train every instance of a toy model at once.

    Minimises, per instance, ``mean_batch Σ_i I_i (x_i − x′_i)²`` plus the
    weight-decay penalty of :class:`ToyConfig` (``weight_decay · ‖W‖_F²``, or
    for negative values ``|weight_decay| · Σ_i (‖W_i‖ − 1)²``) with AdamW
    (decoupled decay 0), on fresh samples every step, drawn as in
    :func:`sample_batch` (but from numpy's PCG64, faster on CPU). The run is
    deterministic given ``config.seed`` (and torch's thread count).

    Parameters
    ----------
    config : ToyConfig
        Model shape, data, importances and optimiser settings.
    progress : callable, optional
        ``progress(step, total, model, loss_per_instance)``, called at step 0 and
        then every ``progress_every`` steps before the end, with the model's
        weights brought up to date and the float32 ``[n_instances]``
        reconstruction loss of the current batch under those weights (without
        the weight-decay penalty). Not called after the last step: the returned
        model is the final state.
    should_stop : callable, optional
        ``should_stop() -> bool``, checked as often as ``progress``; when it
        returns True training stops and the model is returned as it is.
    model : ToyModel, optional
        Continue training this model in place (its shapes must match
        ``config``; its ``config`` and ``relu`` become ``config``'s), with a
        fresh optimiser state and data stream; default: a fresh
        :class:`ToyModel` seeded with ``config.seed``.
    progress_every : int
        Steps between ``progress`` / ``should_stop`` calls. Default 50.

    Returns
    -------
    ToyModel
        The trained model (``model`` itself when one was given).

    Raises
    ------
    ValueError
        If ``model`` does not match ``config``'s shapes.
    """
    if not isinstance(config, ToyConfig):
        raise TypeError(f"config must be a ToyConfig, got {type(config).__name__}")
    if progress_every < 1:
        raise ValueError(f"progress_every must be at least 1, got {progress_every}")
    fresh = model is None
    if model is None:
        model = ToyModel(config)
    else:
        want = (config.n_instances, config.n_hidden, config.n_features)
        if tuple(model.W.shape) != want:
            raise ValueError(f"model.W has shape {tuple(model.W.shape)} but config asks for {want}")
        model.config, model.relu = config, config.relu
    trainer = _Trainer(model, config)
    total, I, B, n = config.steps, config.n_instances, config.batch_size, config.n_features
    chunk = progress_every
    # The data stream: numpy's PCG64 fills a reused buffer faster than torch's CPU generator.
    rng = np.random.Generator(np.random.PCG64([config.seed, 0 if fresh else 1]))
    buf = np.empty((min(chunk, max(total, 1)), I, B, n), dtype=np.float32)
    step = 0
    while step < total:
        if should_stop is not None and should_stop():
            break
        k = min(chunk, total - step)
        rng.random(out=buf[:k], dtype=np.float32)
        x = torch.from_numpy(buf[:k])
        x.mul_(trainer.neg_inv_p).add_(1.0).clamp_min_(0.0)  # zero w.p. S, else uniform (0, 1]
        for j in range(k):
            if progress is not None and j == 0:
                trainer.write(model)  # the weights the loss below is computed with
                loss = trainer.step(x[j], _lr_at(step, total, config.lr), want_loss=True)
                assert loss is not None
                progress(step, total, model, loss)
            else:
                trainer.step(x[j], _lr_at(step, total, config.lr), want_loss=False)
            step += 1
    trainer.write(model)
    return model


# --------------------------------------------------------------------- metrics
def _as_W(W: Tensor | ToyModel) -> Tensor:
    if isinstance(W, ToyModel):
        W = W.W
    W = torch.as_tensor(W).detach()
    if W.ndim == 2:
        W = W[None]
    if W.ndim != 3:
        raise ValueError(
            f"W must have shape [n_instances, n_hidden, n_features] (or [n_hidden, n_features]), got {tuple(W.shape)}"
        )
    return W


def feature_norms(W: Tensor | ToyModel) -> Tensor:
    """Length ``‖W_i‖`` of each feature's direction.

    Parameters
    ----------
    W : Tensor or ToyModel
        ``[n_instances, n_hidden, n_features]`` (a 2-D ``[m, n]`` is one instance).

    Returns
    -------
    Tensor
        ``[n_instances, n_features]``.
    """
    return _as_W(W).norm(dim=1)


def _overlaps(W: Tensor) -> tuple[Tensor, Tensor]:
    """``(Ŵ_iᵀ W_j)`` as ``[I, n, n]`` (rows i; zero rows where ``‖W_i‖ ≈ 0``) and the norms."""
    norms = W.norm(dim=1)  # [I, n]
    ok = norms > NORM_EPS
    unit = torch.where(ok[:, None, :], W / norms.clamp_min(NORM_EPS)[:, None, :], torch.zeros_like(W))
    return unit.transpose(1, 2) @ W, norms


def superposition(W: Tensor | ToyModel) -> Tensor:
    """How much other features share each feature's direction: ``Σ_{j≠i} (Ŵ_i · W_j)²``.

    Parameters
    ----------
    W : Tensor or ToyModel
        ``[n_instances, n_hidden, n_features]``.

    Returns
    -------
    Tensor
        ``[n_instances, n_features]``; 0 for a feature with ``‖W_i‖ ≈ 0``.
    """
    W = _as_W(W)
    G, norms = _overlaps(W)
    return (G * G).sum(-1) - norms.where(norms > NORM_EPS, torch.zeros_like(norms)) ** 2


def dimensionality(W: Tensor | ToyModel) -> Tensor:
    """Feature dimensionality ``D_i = ‖W_i‖² / Σ_j (Ŵ_i · W_j)²``.

    1 for a feature with a dimension of its own, 1/2 for an antipodal pair,
    2/5 for a pentagon, 0 for a feature that is not represented (``‖W_i‖ ≈ 0``).

    Parameters
    ----------
    W : Tensor or ToyModel
        ``[n_instances, n_hidden, n_features]``.

    Returns
    -------
    Tensor
        ``[n_instances, n_features]``.
    """
    W = _as_W(W)
    G, norms = _overlaps(W)
    denom = (G * G).sum(-1)
    ok = norms > NORM_EPS
    return torch.where(ok, norms**2 / denom.where(ok, torch.ones_like(denom)), torch.zeros_like(denom))


def dims_per_feature(W: Tensor | ToyModel) -> Tensor:
    """Dimensions per feature ``D* = m / ‖W‖_F²`` of each instance.

    Parameters
    ----------
    W : Tensor or ToyModel
        ``[n_instances, n_hidden, n_features]``.

    Returns
    -------
    Tensor
        ``[n_instances]``.
    """
    W = _as_W(W)
    return W.shape[1] / (W * W).sum((1, 2))


def n_represented(W: Tensor | ToyModel, threshold: float = 0.5) -> Tensor:
    """Number of features with ``‖W_i‖ > threshold`` in each instance.

    Parameters
    ----------
    W : Tensor or ToyModel
        ``[n_instances, n_hidden, n_features]``.
    threshold : float
        Norm above which a feature counts as represented. Default 0.5.

    Returns
    -------
    Tensor
        int64 ``[n_instances]``.
    """
    return (feature_norms(W) > threshold).sum(-1)


def interference(model: ToyModel, x: Tensor, feature: int, *, how: Literal["project", "zero"] = "project") -> Tensor:
    """Increase of each feature's reconstruction error when one feature is ablated in the hidden layer.

    Parameters
    ----------
    model : ToyModel
        The trained model.
    x : Tensor
        Inputs ``[batch, n_instances, n_features]`` (e.g. from :func:`sample_batch`).
    feature : int
        The feature ``i`` to ablate, in every instance.
    how : {"project", "zero"}
        ``"project"`` (default): remove the hidden state's component along
        ``Ŵ_i``, ``h − Ŵ_i (Ŵ_i · h)`` — everything written in that direction
        is lost, so the features that share it (superposition) suffer too.
        ``"zero"``: remove feature ``i``'s own contribution, ``h − W_i x_i``.

    Returns
    -------
    Tensor
        ``[n_instances, n_features]``: ``mean_batch (x_j − x′_j)²`` with the
        ablation minus without it (squared error, not importance-weighted).
        Instances where ``‖W_i‖ ≈ 0`` give zeros under ``"project"``.

    Raises
    ------
    ValueError
        If ``feature`` is out of range or ``how`` is unknown.
    """
    _check_input(model, x)
    n = model.W.shape[2]
    if isinstance(feature, bool) or not isinstance(feature, int) or not 0 <= feature < n:
        raise ValueError(f"feature must be an integer in 0..{n - 1}, got {feature!r}")
    if how not in ("project", "zero"):
        raise ValueError(f"how must be 'project' or 'zero', got {how!r}")
    with torch.no_grad():
        h = model.hidden(x)
        base = (x - model.decode(h)) ** 2
        w = model.W[:, :, feature]  # [I, m]
        if how == "project":
            norm = w.norm(dim=1, keepdim=True)
            unit = torch.where(norm > NORM_EPS, w / norm.clamp_min(NORM_EPS), torch.zeros_like(w))
            h2 = h - unit * (h * unit).sum(-1, keepdim=True)
        else:
            h2 = h - w * x[:, :, feature : feature + 1]
        ablated = (x - model.decode(h2)) ** 2
    return (ablated - base).mean(0)
