"""Sparse autoencoders (SAEs) that resolve superposition: four architectures, a trainer, safe save/load.

Architectures (all ``nn.Module``, SAELens weight layout: ``W_enc (d, n_latents)``,
``W_dec (n_latents, d)``, ``b_dec (d,)``):

* :class:`ReLUSAE` -- ReLU + L1 penalty (Bricken et al. 2023);
* :class:`TopKSAE` -- keep the k largest pre-activations, AuxK loss for dead latents (Gao et al. 2024);
* :class:`GatedSAE` -- separate gate and magnitude paths with shared directions (Rajamanoharan et al. 2024a);
* :class:`JumpReLUSAE` -- per-latent learned thresholds, L0 penalty through a
  straight-through estimator (Rajamanoharan et al. 2024b).

Every SAE has ``encode(x)``, ``decode(c)``, ``forward(x)``, a ``config`` dict
(enough to rebuild it) and ``loss(x)`` (what :func:`train_sae` minimises).
ReLU, Gated and JumpReLU also have ``encode_subset(x, idx)`` (the codes of a few
latents from a thin matrix product), which the engine's :class:`~superwidgets.SAE`
basis uses to edit a handful of latents cheaply.

:func:`train_sae` harvests activations at a site through a :class:`~superwidgets.Lens`
and trains one; :func:`fit_sae` trains on a tensor of activations.
:func:`save_sae` / :func:`load_sae` write and read safetensors + JSON (never
pickle), and :func:`load_saelens` imports an SAE saved by SAELens.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..engine.bases import describe
from ..engine.files import digest, write_pair

__all__ = [
    "ARCHITECTURES",
    "STREAMS",
    "GatedSAE",
    "JumpReLUSAE",
    "ReLUSAE",
    "TopKSAE",
    "default_lr",
    "fit_sae",
    "harvest",
    "load_sae",
    "load_saelens",
    "make_sae",
    "save_sae",
    "sparse_features",
    "stream",
    "train_sae",
]

#: Architecture names accepted by :func:`train_sae` and :func:`make_sae`.
ARCHITECTURES = ("relu", "topk", "gated", "jumprelu")
_ALIASES = {"standard": "relu", "l1": "relu", "jump_relu": "jumprelu", "top_k": "topk"}

#: Format tag written into the JSON config by :func:`save_sae`.
FORMAT = "superwidgets.sae"
FORMAT_VERSION = 1


def _check_size(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_float(name: str, value: Any, *, positive: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
    return v


#: Names of the random streams a seed feeds. Each is derived from ``(seed, name)`` by
#: :class:`numpy.random.SeedSequence`, so no choice of seeds makes two streams coincide:
#: an SAE initialised with seed ``s`` never starts at the toy directions drawn with seed ``s``.
STREAMS = ("sae.init", "train.batches", "train.resample", "toy.directions", "toy.samples", "toy.heldout")


def stream(seed: int, name: str) -> torch.Generator:
    """A CPU ``torch.Generator`` for the random stream ``name`` of ``seed``.

    Streams are independent by construction: the generator's state is
    ``SeedSequence(seed, spawn_key=(index of name in STREAMS,))``, so the same
    ``seed`` gives unrelated numbers for different ``name`` s.
    """
    if name not in STREAMS:
        raise ValueError(f"unknown random stream {name!r}; valid: {list(STREAMS)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or int(seed) < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    ss = np.random.SeedSequence(int(seed), spawn_key=(STREAMS.index(name),))
    return torch.Generator().manual_seed(int(ss.generate_state(1, np.uint64)[0]))


def _init_dictionary(d: int, n_latents: int, seed: int | None) -> torch.Tensor:
    """Random unit-norm decoder rows ``(n_latents, d)`` from the seed's ``"sae.init"`` stream."""
    gen = stream(seed, "sae.init") if seed is not None else None
    w = torch.randn(n_latents, d, generator=gen)
    return w / w.norm(dim=1, keepdim=True)


class _SAEBase(nn.Module):
    """Shared parts: decoder, pre-activations, config, decoder-norm bookkeeping."""

    arch: str = "base"
    #: Parameters holding one entry per latent, with the axis of the latents (for resampling).
    _per_latent: tuple[tuple[str, int], ...] = (("W_enc", 1), ("b_enc", 0), ("W_dec", 0))

    def __init__(self, d: int, n_latents: int, seed: int | None, apply_b_dec_to_input: bool) -> None:
        super().__init__()
        d = _check_size("d", d)
        n_latents = _check_size("n_latents", n_latents)
        w = _init_dictionary(d, n_latents, seed)
        self.W_dec = nn.Parameter(w)
        self.W_enc = nn.Parameter(w.T.clone())
        self.b_dec = nn.Parameter(torch.zeros(d))
        self.apply_b_dec_to_input = bool(apply_b_dec_to_input)
        self.history: dict[str, list[float]] = {}

    # ---------------------------------------------------------------- shape
    @property
    def d(self) -> int:
        """Width of the activations the SAE reads."""
        return int(self.W_dec.shape[1])

    @property
    def n_latents(self) -> int:
        """Number of latents (dictionary size)."""
        return int(self.W_dec.shape[0])

    def _hparams(self) -> dict[str, Any]:
        return {}

    @property
    def config(self) -> dict[str, Any]:
        """Architecture, sizes and hyperparameters: ``make_sae(**config)`` rebuilds the module."""
        return {
            "arch": self.arch,
            "d": self.d,
            "n_latents": self.n_latents,
            "apply_b_dec_to_input": self.apply_b_dec_to_input,
            **self._hparams(),
        }

    # ---------------------------------------------------------------- maps
    def _sae_in(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.b_dec if self.apply_b_dec_to_input else x

    def pre_acts(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder pre-activations ``(x - b_dec) W_enc + b_enc``, shape ``(..., n_latents)``."""
        return self._sae_in(x) @ self.W_enc + self.b_enc

    def _xW(self, x: torch.Tensor) -> torch.Tensor:
        """``(x − b_dec) W_enc`` for training, written ``x W_enc − b_dec W_enc``: the same value, but
        ``b_dec``'s gradient then comes from a vector-matrix product instead of a second
        ``(batch × n_latents) · (n_latents × d)`` product for the gradient of ``x − b_dec``."""
        xw = x @ self.W_enc
        return xw - self.b_dec @ self.W_enc if self.apply_b_dec_to_input else xw

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent codes ``(..., n_latents)``."""
        raise NotImplementedError

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``codes W_dec + b_dec``, shape ``(..., d)``."""
        return codes @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``x``: ``decode(encode(x))``."""
        return self.decode(self.encode(x))

    def loss(
        self, x: torch.Tensor, *, dead: torch.Tensor | None = None, sparsity_scale: float = 1.0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Training loss on a batch ``x (B, d)``.

        Parameters
        ----------
        x : Tensor (B, d)
            A batch of (normalised) activations.
        dead : Tensor of bool (n_latents,), optional
            Latents counted as dead (TopK's AuxK loss uses them; ``None`` skips it).
        sparsity_scale : float
            Multiplies the sparsity coefficient (the trainer warms it up from 0 to 1).

        Returns
        -------
        loss : Tensor (scalar)
        parts : dict
            ``"mse"`` (mean over the batch of ``‖x − x̂‖²``), ``"sparsity"``,
            ``"aux"`` (scalars, detached) and ``"codes"`` (the batch's codes, detached).
        """
        raise NotImplementedError

    # ---------------------------------------------------------------- training helpers
    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Rescale every decoder row to unit norm (done after each training step)."""
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8))

    @torch.no_grad()
    def remove_parallel_grads(self) -> None:
        """Drop the part of each decoder row's gradient along the row (keeps rows on the unit sphere)."""
        g = self.W_dec.grad
        if g is None:
            return
        w = self.W_dec / self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8)
        g.sub_((g * w).sum(1, keepdim=True) * w)

    #: Per-latent parameters that scale with the latent's code (multiplied by the decoder norm when it is folded).
    _code_scaled: tuple[str, ...] = ("b_enc",)

    @torch.no_grad()
    def fold_decoder_norms(self) -> None:
        """Rescale decoder rows to unit norm, moving each row's norm into the encoder.

        Exact for every architecture: latent ``i``'s code is multiplied by ``‖W_dec[i]‖``
        (its encoder column and the biases/threshold in its code's units are scaled)
        and its decoder row divided by it, so ``forward`` is unchanged up to rounding.
        """
        n = self.W_dec.norm(dim=1).clamp_min(1e-12)
        self.W_dec.div_(n[:, None])
        self.W_enc.mul_(n[None, :])
        for name in self._code_scaled:
            getattr(self, name).mul_(n)

    @torch.no_grad()
    def _fold_scale(self, scale: float) -> None:
        """Fold an input scaling ``x → scale·x`` into the weights (the SAE then reads raw activations)."""
        self.W_enc.mul_(scale)
        self.W_dec.div_(scale)
        self.b_dec.div_(scale)

    @torch.no_grad()
    def _reinit_latents(self, idx: torch.Tensor, directions: torch.Tensor, enc_norm: float) -> None:
        """Point latents ``idx`` at unit ``directions (len(idx), d)`` (resampling of dead latents)."""
        self.W_dec[idx] = directions
        self.W_enc[:, idx] = directions.T * enc_norm
        self.b_enc[idx] = 0.0

    def extra_repr(self) -> str:
        hp = ", ".join(f"{k}={v}" for k, v in self._hparams().items())
        return f"d={self.d}, n_latents={self.n_latents}" + (f", {hp}" if hp else "")


class ReLUSAE(_SAEBase):
    """A ReLU sparse autoencoder: ``c = relu((x − b_dec) W_enc + b_enc)``, ``x̂ = c W_dec + b_dec``.

    Trained with ``‖x − x̂‖² + l1 · Σ_i |c_i| ‖W_dec[i]‖``; the decoder rows are
    kept at unit norm during training.

    Parameters
    ----------
    d : int
        Width of the activations it reads.
    n_latents : int
        Number of latents (dictionary size).
    seed : int, optional
        Seed of the initialisation (unit-norm decoder rows, encoder = decoder transposed).
    l1 : float
        L1 coefficient (on activations normalised as :func:`train_sae` does).
    apply_b_dec_to_input : bool
        Subtract ``b_dec`` from the input before encoding (SAELens' flag of the same name).

    Attributes
    ----------
    W_enc : Parameter (d, n_latents)
    b_enc : Parameter (n_latents,)
    W_dec : Parameter (n_latents, d)
    b_dec : Parameter (d,)
    history : dict of list
        Training curves filled by :func:`train_sae` (empty otherwise).
    """

    arch = "relu"

    def __init__(
        self, d: int, n_latents: int, seed: int | None = 0, *, l1: float = 0.3, apply_b_dec_to_input: bool = True
    ) -> None:
        super().__init__(d, n_latents, seed, apply_b_dec_to_input)
        self.b_enc = nn.Parameter(torch.zeros(self.n_latents))
        self.l1 = _check_float("l1", l1)

    def _hparams(self) -> dict[str, Any]:
        return {"l1": self.l1}

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent codes ``(..., n_latents)``."""
        return torch.relu(self.pre_acts(x))

    def encode_subset(self, x: torch.Tensor, idx: list[int]) -> torch.Tensor:
        """Codes of latents ``idx`` only (``(..., len(idx))``): a thin matrix product."""
        return torch.relu(self._sae_in(x) @ self.W_enc[:, idx] + self.b_enc[idx])

    def loss(
        self, x: torch.Tensor, *, dead: torch.Tensor | None = None, sparsity_scale: float = 1.0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = torch.relu(self._xW(x) + self.b_enc)
        mse = (self.decode(c) - x).pow(2).sum(-1).mean()
        sparsity = (c * self.W_dec.norm(dim=1)).sum(-1).mean()
        total = mse + self.l1 * sparsity_scale * sparsity
        return total, {
            "mse": mse.detach(),
            "sparsity": sparsity.detach(),
            "aux": mse.new_zeros(()),
            "codes": c.detach(),
        }


class TopKSAE(_SAEBase):
    """A TopK sparse autoencoder (Gao et al. 2024): ``c = relu(topk_k((x − b_dec) W_enc + b_enc))``.

    Exactly ``k`` latents can be non-zero per input, so no sparsity penalty is
    needed. Dead latents are revived by the AuxK loss: the ``aux_k`` largest
    pre-activations *of the dead latents* must reconstruct the main model's
    error ``e = x − x̂``, weighted by ``aux_coef``. There is no ``encode_subset``:
    a latent's value depends on the others (the engine's SAE basis falls back
    to a full encode).

    Parameters
    ----------
    d, n_latents : int
        Input width and dictionary size.
    k : int
        Active latents per input, ``1 <= k <= n_latents``.
    seed : int, optional
        Seed of the initialisation.
    aux_k : int, optional
        Latents used by the AuxK loss (default ``min(n_latents, max(2k, d // 2))``).
    aux_coef : float
        Weight of the AuxK loss (default 1/32, as in the paper).
    apply_b_dec_to_input : bool
        Subtract ``b_dec`` from the input before encoding.

    Attributes
    ----------
    W_enc, b_enc, W_dec, b_dec : Parameter
        As :class:`ReLUSAE`.
    """

    arch = "topk"
    #: Under ``torch.distributed`` training (:mod:`superwidgets.scale.train`): averages a batch statistic
    #: over the ranks, so the AuxK loss is normalised by the global batch's error, as on one process.
    _batch_mean: Any = None

    def __init__(
        self,
        d: int,
        n_latents: int,
        k: int,
        seed: int | None = 0,
        *,
        aux_k: int | None = None,
        aux_coef: float = 1 / 32,
        apply_b_dec_to_input: bool = True,
    ) -> None:
        super().__init__(d, n_latents, seed, apply_b_dec_to_input)
        self.b_enc = nn.Parameter(torch.zeros(self.n_latents))
        k = _check_size("k", k)
        if k > self.n_latents:
            raise ValueError(f"k = {k} is larger than the number of latents ({self.n_latents}); pick k <= n_latents")
        self.k = k
        self.aux_k = (
            min(self.n_latents, max(2 * k, self.d // 2))
            if aux_k is None
            else min(_check_size("aux_k", aux_k), n_latents)
        )
        self.aux_coef = _check_float("aux_coef", aux_coef)
        #: While training with free decoder rows (:func:`fit_sae`): multiply the pre-activations by
        #: the decoder norms and decode with unit rows (SAELens' ``rescale_acts_by_decoder_norm``).
        self.rescale_by_decoder_norm = False

    def _hparams(self) -> dict[str, Any]:
        return {"k": self.k, "aux_k": self.aux_k, "aux_coef": self.aux_coef}

    def _topk(self, pre: torch.Tensor, k: int) -> torch.Tensor:
        top = pre.topk(k, dim=-1, sorted=False)
        return torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent codes ``(..., n_latents)``, at most ``k`` non-zero per input."""
        return self._topk(self.pre_acts(x), self.k)

    def loss(
        self, x: torch.Tensor, *, dead: torch.Tensor | None = None, sparsity_scale: float = 1.0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        pre = self._xW(x) + self.b_enc
        W_dec = self.W_dec
        if self.rescale_by_decoder_norm:  # free decoder rows: select and decode by unit directions
            n = W_dec.norm(dim=1)
            pre = pre * n
            W_dec = W_dec / n[:, None]
        c = self._topk(pre, self.k)
        x_hat = c @ W_dec + self.b_dec
        mse = (x_hat - x).pow(2).sum(-1).mean()
        aux = mse.new_zeros(())
        if dead is not None and self.aux_coef > 0:
            # only the dead latents' columns: a thin top-k and product (the dead are a fraction of all)
            idx = torch.nonzero(dead).squeeze(1)
            if idx.numel():
                err = (x - x_hat).detach()
                z = self._topk(pre.index_select(1, idx), min(self.aux_k, idx.numel()))
                aux = (z @ W_dec.index_select(0, idx) - err).pow(2).sum(-1).mean()
                norm = err.pow(2).sum(-1).mean()
                if self._batch_mean is not None:  # the whole batch's error norm when it is split over ranks
                    norm = self._batch_mean(norm)
                aux = aux / norm.clamp_min(1e-12)
        total = mse + self.aux_coef * aux
        zero = mse.new_zeros(())
        return total, {"mse": mse.detach(), "sparsity": zero, "aux": aux.detach(), "codes": c.detach()}


class GatedSAE(_SAEBase):
    """A Gated sparse autoencoder (Rajamanoharan et al. 2024, "Improving dictionary learning with gated SAEs").

    Which latents are on and how large they are come from two paths that share
    directions::

        π_gate = (x − b_dec) W_enc + b_gate          f_gate = 1[π_gate > 0]
        π_mag  = (x − b_dec) W_mag + b_mag           W_mag  = exp(r_mag) ⊙ W_enc  (per latent)
        c      = f_gate ⊙ relu(π_mag)                x̂      = c W_dec + b_dec

    The L1 penalty acts on ``relu(π_gate)`` only, so it does not shrink the
    magnitudes; an auxiliary loss reconstructs ``x`` from ``relu(π_gate)``
    through the decoder, which trains the gate. The paper passes it through a
    frozen copy of the decoder; like SAELens, the gradient here also reaches the
    decoder (with free decoder rows, the frozen copy reached MMCS 0.95 only after
    1,460 steps on the tuning data, against 100 without it).

    Parameters
    ----------
    d, n_latents : int
        Input width and dictionary size.
    seed : int, optional
        Seed of the initialisation.
    l1 : float
        Coefficient of ``Σ_i relu(π_gate)_i ‖W_dec[i]‖``.
    apply_b_dec_to_input : bool
        Subtract ``b_dec`` from the input before encoding.

    Attributes
    ----------
    W_enc : Parameter (d, n_latents)
        Gate directions (SAELens' name).
    b_gate, r_mag, b_mag : Parameter (n_latents,)
        Gate bias, log magnitude rescale, magnitude bias.
    W_dec, b_dec : Parameter
        Decoder.
    b_enc : Parameter (n_latents,)
        Alias of ``b_gate``.
    """

    arch = "gated"
    _per_latent = (("W_enc", 1), ("b_gate", 0), ("r_mag", 0), ("b_mag", 0), ("W_dec", 0))
    _code_scaled = ("b_gate", "b_mag")

    def __init__(
        self, d: int, n_latents: int, seed: int | None = 0, *, l1: float = 0.3, apply_b_dec_to_input: bool = True
    ) -> None:
        super().__init__(d, n_latents, seed, apply_b_dec_to_input)
        self.b_gate = nn.Parameter(torch.zeros(self.n_latents))
        self.r_mag = nn.Parameter(torch.zeros(self.n_latents))
        self.b_mag = nn.Parameter(torch.zeros(self.n_latents))
        self.l1 = _check_float("l1", l1)

    @property
    def b_enc(self) -> torch.Tensor:  # type: ignore[override]
        """Alias of ``b_gate`` (the gate path's bias)."""
        return self.b_gate

    def _hparams(self) -> dict[str, Any]:
        return {"l1": self.l1}

    def pre_acts(self, x: torch.Tensor) -> torch.Tensor:
        """Gate pre-activations ``π_gate``."""
        return self._sae_in(x) @ self.W_enc + self.b_gate

    def _paths(self, x: torch.Tensor, idx: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        sae_in = self._sae_in(x)
        W = self.W_enc if idx is None else self.W_enc[:, idx]
        b_gate = self.b_gate if idx is None else self.b_gate[idx]
        r_mag = self.r_mag if idx is None else self.r_mag[idx]
        b_mag = self.b_mag if idx is None else self.b_mag[idx]
        return sae_in @ W + b_gate, sae_in @ (W * r_mag.exp()) + b_mag

    def _train_paths(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``_paths`` for training: ``W_mag = exp(r_mag) ⊙ W_enc`` scales whole columns, so both
        paths share one product ``(x − b_dec) W_enc`` (the same values, one matrix product fewer)."""
        xw = self._xW(x)
        return xw + self.b_gate, xw * self.r_mag.exp() + self.b_mag

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent codes ``f_gate ⊙ relu(π_mag)``, shape ``(..., n_latents)``."""
        gate, mag = self._paths(x)
        return (gate > 0).to(mag.dtype) * torch.relu(mag)

    def encode_subset(self, x: torch.Tensor, idx: list[int]) -> torch.Tensor:
        """Codes of latents ``idx`` only (``(..., len(idx))``)."""
        gate, mag = self._paths(x, idx)
        return (gate > 0).to(mag.dtype) * torch.relu(mag)

    def loss(
        self, x: torch.Tensor, *, dead: torch.Tensor | None = None, sparsity_scale: float = 1.0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        gate, mag = self._train_paths(x)
        c = (gate > 0).to(mag.dtype) * torch.relu(mag)
        mse = (self.decode(c) - x).pow(2).sum(-1).mean()
        g = torch.relu(gate)
        sparsity = (g * self.W_dec.norm(dim=1)).sum(-1).mean()
        x_gate = g @ self.W_dec + self.b_dec  # not through a frozen copy: see the class docstring
        aux = (x_gate - x).pow(2).sum(-1).mean()
        total = mse + self.l1 * sparsity_scale * sparsity + aux
        return total, {"mse": mse.detach(), "sparsity": sparsity.detach(), "aux": aux.detach(), "codes": c.detach()}

    @torch.no_grad()
    def _reinit_latents(self, idx: torch.Tensor, directions: torch.Tensor, enc_norm: float) -> None:
        self.W_dec[idx] = directions
        self.W_enc[:, idx] = directions.T * enc_norm
        self.b_gate[idx] = 0.0
        self.r_mag[idx] = 0.0
        self.b_mag[idx] = 0.0


def _rectangle(u: torch.Tensor) -> torch.Tensor:
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


def _sum_to(g: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    return g.reshape(-1, shape[-1]).sum(0).reshape(shape)


class _JumpReLUFn(torch.autograd.Function):
    """``z · H(z − θ)``; gradient to ``z`` where the latent is on, pseudo-derivative
    ``−(θ/ε) K((z − θ)/ε)`` to ``θ`` with the rectangle kernel ``K``."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, theta: torch.Tensor, eps: float) -> torch.Tensor:
        ctx.save_for_backward(z, theta)
        ctx.eps = eps
        return torch.relu(z) * (z > theta).to(z.dtype)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        z, theta = ctx.saved_tensors
        eps = ctx.eps
        g_z = g * (z > theta).to(g.dtype) * (z > 0).to(g.dtype)
        g_theta = _sum_to(-(theta / eps) * _rectangle((z - theta) / eps) * g, theta.shape)
        return g_z, g_theta, None


class _StepFn(torch.autograd.Function):
    """``H(z − θ)``; no gradient to ``z``, pseudo-derivative ``−(1/ε) K((z − θ)/ε)`` to ``θ``."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, theta: torch.Tensor, eps: float) -> torch.Tensor:
        ctx.save_for_backward(z, theta)
        ctx.eps = eps
        return (z > theta).to(z.dtype)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[None, torch.Tensor, None]:
        z, theta = ctx.saved_tensors
        eps = ctx.eps
        g_theta = _sum_to(-(1.0 / eps) * _rectangle((z - theta) / eps) * g, theta.shape)
        return None, g_theta, None


class JumpReLUSAE(_SAEBase):
    """A JumpReLU sparse autoencoder (Rajamanoharan et al. 2024, "Jumping ahead").

    ``c_i = z_i · 1[z_i > θ_i]`` with pre-activation ``z = (x − b_dec) W_enc + b_enc``
    and a learned threshold ``θ_i`` per latent. Trained on
    ``‖x − x̂‖² + l0 · Σ_i 1[z_i > θ_i]``; the step function has no gradient, so
    the thresholds learn through straight-through pseudo-derivatives with a
    rectangle kernel of width ``bandwidth`` (ε). The threshold is stored directly
    (SAELens' ``threshold``) and kept positive during training.

    Parameters
    ----------
    d, n_latents : int
        Input width and dictionary size.
    seed : int, optional
        Seed of the initialisation.
    l0 : float
        Coefficient of the L0 penalty.
    bandwidth : float
        Kernel width ε of the pseudo-derivatives (in units of the normalised
        pre-activations; default 0.001, as in the paper).
    init_threshold : float
        Initial threshold of every latent (default 0.001, as in the paper).
    apply_b_dec_to_input : bool
        Subtract ``b_dec`` from the input before encoding.

    Attributes
    ----------
    W_enc, b_enc, W_dec, b_dec : Parameter
        As :class:`ReLUSAE`.
    threshold : Parameter (n_latents,)
        θ.
    """

    arch = "jumprelu"
    _per_latent = (("W_enc", 1), ("b_enc", 0), ("threshold", 0), ("W_dec", 0))
    _code_scaled = ("b_enc", "threshold")

    def __init__(
        self,
        d: int,
        n_latents: int,
        seed: int | None = 0,
        *,
        l0: float = 0.01,
        bandwidth: float = 0.001,
        init_threshold: float = 0.001,
        apply_b_dec_to_input: bool = True,
    ) -> None:
        super().__init__(d, n_latents, seed, apply_b_dec_to_input)
        self.b_enc = nn.Parameter(torch.zeros(self.n_latents))
        self.init_threshold = _check_float("init_threshold", init_threshold)
        self.threshold = nn.Parameter(torch.full((self.n_latents,), self.init_threshold))
        self.l0 = _check_float("l0", l0)
        self.bandwidth = _check_float("bandwidth", bandwidth, positive=True)

    def _hparams(self) -> dict[str, Any]:
        return {"l0": self.l0, "bandwidth": self.bandwidth, "init_threshold": self.init_threshold}

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent codes ``(..., n_latents)``."""
        z = self.pre_acts(x)
        return torch.relu(z) * (z > self.threshold).to(z.dtype)

    def encode_subset(self, x: torch.Tensor, idx: list[int]) -> torch.Tensor:
        """Codes of latents ``idx`` only (``(..., len(idx))``)."""
        z = self._sae_in(x) @ self.W_enc[:, idx] + self.b_enc[idx]
        return torch.relu(z) * (z > self.threshold[idx]).to(z.dtype)

    def loss(
        self, x: torch.Tensor, *, dead: torch.Tensor | None = None, sparsity_scale: float = 1.0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z = self._xW(x) + self.b_enc
        c = _JumpReLUFn.apply(z, self.threshold, self.bandwidth)
        mse = (self.decode(c) - x).pow(2).sum(-1).mean()
        l0 = _StepFn.apply(z, self.threshold, self.bandwidth).sum(-1).mean()
        total = mse + self.l0 * sparsity_scale * l0
        return total, {"mse": mse.detach(), "sparsity": l0.detach(), "aux": mse.new_zeros(()), "codes": c.detach()}

    @torch.no_grad()
    def _reinit_latents(self, idx: torch.Tensor, directions: torch.Tensor, enc_norm: float) -> None:
        self.W_dec[idx] = directions
        self.W_enc[:, idx] = directions.T * enc_norm
        self.b_enc[idx] = 0.0
        self.threshold[idx] = self.init_threshold


_CLASSES: dict[str, type[_SAEBase]] = {"relu": ReLUSAE, "topk": TopKSAE, "gated": GatedSAE, "jumprelu": JumpReLUSAE}
_HPARAMS = {
    "relu": ("l1",),
    "topk": ("k", "aux_k", "aux_coef"),
    "gated": ("l1",),
    "jumprelu": ("l0", "bandwidth", "init_threshold"),
}


def _arch(name: Any) -> str:
    if not isinstance(name, str):
        raise ValueError(f"arch must be a string, one of {list(ARCHITECTURES)}; got {name!r}")
    key = name.lower().replace("-", "")
    key = _ALIASES.get(key, key)
    if key in ARCHITECTURES:
        return key
    close = difflib.get_close_matches(name.lower(), [*ARCHITECTURES, *_ALIASES], n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(repr(_ALIASES.get(c, c)) for c in dict.fromkeys(close))}? " if close else ""
    raise ValueError(f"unknown SAE architecture {name!r}; {hint}valid: {list(ARCHITECTURES)}")


def make_sae(
    arch: str, d: int, n_latents: int, *, seed: int | None = 0, apply_b_dec_to_input: bool = True, **hparams: Any
) -> _SAEBase:
    """Build an untrained SAE of architecture ``arch``.

    Parameters
    ----------
    arch : {"relu", "topk", "gated", "jumprelu"}
        Architecture (``"standard"`` is accepted for ``"relu"``).
    d, n_latents : int
        Input width and dictionary size.
    seed : int, optional
        Initialisation seed (the ``"sae.init"`` stream of :func:`stream`; ``None``:
        torch's global generator).
    apply_b_dec_to_input : bool
        Subtract ``b_dec`` before encoding.
    **hparams
        The architecture's hyperparameters: ``l1`` (relu, gated), ``k``,
        ``aux_k``, ``aux_coef`` (topk), ``l0``, ``bandwidth``, ``init_threshold``
        (jumprelu). Others raise ``TypeError``.

    Returns
    -------
    nn.Module
        A :class:`ReLUSAE`, :class:`TopKSAE`, :class:`GatedSAE` or :class:`JumpReLUSAE`.
    """
    a = _arch(arch)
    bad = sorted(set(hparams) - set(_HPARAMS[a]))
    if bad:
        raise TypeError(f"{a} SAEs take no {bad}; their hyperparameters are {list(_HPARAMS[a])}")
    if a == "topk":
        if hparams.get("k") is None:
            raise ValueError("a topk SAE needs k (the number of active latents per input)")
        hparams = dict(hparams)
        k = hparams.pop("k")
        return TopKSAE(d, n_latents, k, seed, apply_b_dec_to_input=apply_b_dec_to_input, **hparams)
    return _CLASSES[a](d, n_latents, seed, apply_b_dec_to_input=apply_b_dec_to_input, **hparams)


# ====================================================================== toy data
def sparse_features(
    n: int,
    d: int = 256,
    n_features: int = 512,
    mean_active: float = 5.0,
    *,
    seed: int = 0,
    directions: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Synthetic activations made of known sparse features (the toy data of Sharkey et al. 2022).

    ``n_features`` random unit-norm directions in ``R^d``; each sample switches
    each feature on independently with probability ``mean_active / n_features``
    (so ≈ ``mean_active`` per sample) with a magnitude drawn from U[0, 1], and
    is the sum of the active features' directions times their magnitudes.

    Parameters
    ----------
    n : int
        Number of samples.
    d : int
        Dimension of the activations.
    n_features : int
        Number of ground-truth features (more than ``d``: superposition).
    mean_active : float
        Expected number of active features per sample.
    seed : int
        Seed of the directions and the samples (the streams ``"toy.directions"``
        and ``"toy.samples"`` of :func:`stream`, or ``"toy.heldout"`` when
        ``directions`` is given): independent of every SAE's initialisation,
        whatever the seeds.
    directions : Tensor (n_features, d), optional
        Reuse these directions (e.g. a held-out set of the same features).

    Returns
    -------
    X : Tensor (n, d)
        The activations.
    directions : Tensor (n_features, d)
        The true feature directions (unit rows).
    coefficients : Tensor (n, n_features)
        Each sample's feature magnitudes (0 when off).
    """
    n = _check_size("n", n)
    if directions is None:
        d, n_features = _check_size("d", d), _check_size("n_features", n_features)
        directions = torch.randn(n_features, d, generator=stream(seed, "toy.directions"))
        directions = directions / directions.norm(dim=1, keepdim=True)
        gen = stream(seed, "toy.samples")
    else:
        n_features, d = directions.shape
        gen = stream(seed, "toy.heldout")
    p = float(mean_active) / n_features
    if not 0 < p <= 1:
        raise ValueError(f"mean_active must be in (0, n_features], got {mean_active}")
    on = torch.rand(n, n_features, generator=gen) < p
    coef = torch.rand(n, n_features, generator=gen) * on
    return coef @ directions, directions, coef


# ====================================================================== harvesting
def harvest(
    lens: Any,
    site: str,
    data: Any,
    *,
    chunk_size: int = 256,
    feature_dim: int | None = None,
    max_activations: int | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Clean activations at ``site`` over ``data``, one row per activation vector.

    Parameters
    ----------
    lens : Lens or nn.Module
        A :class:`~superwidgets.Lens` (read with ``lens.activations`` under
        ``lens.off()``, so no edit leaks in) or a plain model (read with a
        temporary forward hook, always removed; edits of an open Lens on it would
        show).
    site : str
        Module path.
    data : Tensor, ndarray, data set with ``.X`` or NeuronWorld
        The inputs (see :func:`superwidgets.data.inputs.as_inputs`). A
        ``NeuronWorld`` passed with a zoo neuron model gives the tensor that
        model reads (``model.world_inputs(world)``: images or records).
    chunk_size : int
        Inputs per forward pass.
    feature_dim : int, optional
        The feature axis (default: 1 for 4-D conv activations, else the last).
        All other axes are flattened: a conv site ``(n, C, H, W)`` gives
        ``(n·H·W, C)`` -- one vector per spatial position -- and a sequence site
        ``(n, T, d)`` gives ``(n·T, d)``.
    max_activations : int, optional
        Keep a random (seeded) subset of at most this many rows.
    seed : int
        Seed of that subset.

    Returns
    -------
    Tensor (N, width)
        On the model's device, float32.
    """
    from ..engine.lens import Lens
    from ..engine.sites import get_element, resolve_site

    chunk_size = _check_size("chunk_size", chunk_size)
    if isinstance(lens, Lens):
        model = lens.model
    elif isinstance(lens, nn.Module):
        model = lens
    else:
        raise TypeError(f"lens must be a superwidgets.Lens or a torch.nn.Module, got {type(lens).__name__}")
    X = _model_inputs(model, data)
    dev = next((p.device for p in model.parameters()), torch.device("cpu"))
    parts: list[torch.Tensor] = []
    if isinstance(lens, Lens):
        with lens.off():
            for i in range(0, X.shape[0], chunk_size):
                got = lens.activations(X[i : i + chunk_size].to(dev), site)[site]
                parts.append(_flatten(got, feature_dim))
    else:
        module = resolve_site(model, site)
        got: list[torch.Tensor] = []
        handle = module.register_forward_hook(lambda _m, _a, out: got.append(get_element(out, 0).detach()))
        training = model.training
        try:
            model.eval()
            with torch.no_grad():
                for i in range(0, X.shape[0], chunk_size):
                    got.clear()
                    model(X[i : i + chunk_size].to(dev))
                    if not got:
                        raise ValueError(f"site {site!r} did not run in the model's forward; pick a site that runs")
                    parts.append(_flatten(got[0], feature_dim))
        finally:
            handle.remove()
            model.train(training)
    acts = torch.cat(parts).float()
    if max_activations is not None and acts.shape[0] > _check_size("max_activations", max_activations):
        gen = torch.Generator().manual_seed(int(seed))
        keep = torch.randperm(acts.shape[0], generator=gen)[:max_activations].to(acts.device)
        acts = acts[keep]
    return acts


def _model_inputs(model: nn.Module, data: Any) -> torch.Tensor:
    if isinstance(data, torch.Tensor):
        X = data
    elif hasattr(data, "factors") and hasattr(model, "world_inputs"):
        X = model.world_inputs(data)
    else:
        from ..data.inputs import as_inputs

        X = as_inputs(data)[0]
    X = torch.as_tensor(X)
    if X.ndim == 0 or X.shape[0] == 0:
        raise ValueError(f"data must hold at least one input (shape (n, ...)), got shape {tuple(X.shape)}")
    return X


def _flatten(acts: torch.Tensor, feature_dim: int | None) -> torch.Tensor:
    fd = feature_dim if feature_dim is not None else (1 if acts.ndim == 4 else -1)
    if acts.ndim == 1:
        return acts[:, None]
    return acts.movedim(fd, -1).reshape(-1, acts.shape[fd])


# ====================================================================== training
_TRAIN_KW = (
    "arch",
    "width",
    "k",
    "l1",
    "l0",
    "steps",
    "batch_size",
    "lr",
    "seed",
    "device",
    "progress",
    "normalize",
    "resample_dead",
    "dead_after",
    "aux_k",
    "aux_coef",
    "bandwidth",
    "init_threshold",
    "warmup",
    "log_every",
)


def _unknown_kwargs(fn: str, unknown: dict[str, Any], valid: tuple[str, ...]) -> None:
    if not unknown:
        return
    msgs = []
    for name in unknown:
        close = difflib.get_close_matches(name, valid, n=2)
        msgs.append(repr(name) + (f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""))
    raise TypeError(f"{fn}() got unknown keyword argument(s) {', '.join(msgs)}; valid ones are {list(valid)}")


def train_sae(
    lens: Any,
    site: str | None,
    data: Any,
    *,
    arch: str = "topk",
    width: int | None = None,
    k: int | None = None,
    l1: float | None = None,
    l0: float | None = None,
    steps: int = 3000,
    batch_size: int = 256,
    lr: float | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    normalize: bool = True,
    resample_dead: bool | None = None,
    dead_after: int | None = None,
    aux_k: int | None = None,
    aux_coef: float | None = None,
    bandwidth: float | None = None,
    init_threshold: float | None = None,
    warmup: float = 0.05,
    log_every: int = 50,
    chunk_size: int = 256,
    feature_dim: int | None = None,
    max_activations: int | None = None,
    **unknown: Any,
) -> _SAEBase:
    """Train a sparse autoencoder on the activations of ``site``.

    Parameters
    ----------
    lens : Lens, nn.Module or None
        Where to read activations (see :func:`harvest`: under ``lens.off()``,
        so edits do not leak in). ``None`` (with ``site=None``): ``data`` *is*
        the activations, ``(N, d)`` (same as :func:`fit_sae`).
    site : str or None
        Module path whose output the SAE reads.
    data : Tensor, ndarray, data set with ``.X``, NeuronWorld
        The model's inputs (what ``sw.zoo.load`` returns as its second value
        works), or the activations when ``lens`` is ``None``.
    arch : {"topk", "relu", "gated", "jumprelu"}
        Architecture (default TopK).
    width : int, optional
        Number of latents (default ``8 · d``).
    k : int, optional
        TopK only: active latents per input (default ``max(1, min(32, d // 4))``).
    l1 : float, optional
        ReLU and Gated: L1 coefficient (default 0.3).
    l0 : float, optional
        JumpReLU: L0 coefficient (default 0.01).
    steps, batch_size : int
        Optimiser steps and activations per step.
    lr : float, optional
        Adam learning rate of the dictionary (``W_enc``, ``W_dec``); biases,
        thresholds and the Gated SAE's ``r_mag`` train at ``lr / 8``. Default
        :func:`default_lr` ``(d)`` = ``min(0.08, 20.48 / d^1.5)``: it depends on
        the width ``d`` of the activations (a decoder row turns by up to ``lr·√d``
        radians per step; 0.04 at d = 64, 0.005 at d = 256). Warmed up over ``warmup`` and decayed
        linearly to 0 over the last 20 % of steps.
    seed : int
        Seeds the initialisation, the batch order and resampling, each from its own
        random stream (:func:`stream`): same seed, same weights (on the same device
        and thread count). The streams are independent of the toy data's
        (:func:`sparse_features`) for every pair of seeds.
    device : str or torch.device, optional
        Where to train (default: CUDA when available, else CPU). The SAE is
        returned on the device the activations came from.
    progress : bool
        Show a ``tqdm.auto`` progress bar (notebook or terminal).
    normalize : bool
        Scale the activations by one number so their mean squared distance to
        their mean is 1 while training (the coefficients' defaults assume it);
        the scale is folded into the weights afterwards, so the returned SAE
        reads and writes raw activations (its latents keep the normalised
        units; decoder rows have norm ``1/scale``).
    resample_dead : bool, optional
        ``None`` (default): what each recipe asks for -- TopK's AuxK loss on latents
        dead for ``dead_after`` activations; no resampling for ReLU, Gated (Anthropic's
        April 2024 recipe has none; on the tuning seed it cost MMCS 0.998 → 0.992)
        or JumpReLU. ``True`` also re-points ReLU and Gated latents that have not fired
        for ``dead_after`` activations at inputs the SAE reconstructs badly, at 10, 20,
        30, 40 and 50 % of training. ``False``: no AuxK, no resampling.
    dead_after : int, optional
        Activations without firing after which a latent counts as dead (default
        ``min(N, 25 · batch_size)``).
    aux_k, aux_coef : optional
        TopK's AuxK settings (see :class:`TopKSAE`).
    bandwidth, init_threshold : float, optional
        JumpReLU settings (see :class:`JumpReLUSAE`).
    warmup : float
        Fraction of steps over which the learning rate and the sparsity coefficient ramp up from 0.

    Notes
    -----
    ReLU, TopK and Gated train with decoder rows left free (Anthropic, April 2024):
    rows start at norm 0.1 with ``W_enc = W_decᵀ``, the sparsity penalties are
    weighted by the rows' norms (TopK selects and decodes by unit rows, as SAELens'
    ``rescale_acts_by_decoder_norm``), and the norms are folded into the encoder at
    the end (:meth:`fold_decoder_norms`), so the returned rows have unit norm.
    JumpReLU keeps unit-norm rows (gradient's radial part removed, renormalised each
    step). Every step clips the joint gradient norm at 1; Adam is the fused kernel.
    log_every : int
        Steps between entries of ``history``.
    chunk_size, feature_dim, max_activations : optional
        Harvesting (see :func:`harvest`).

    Returns
    -------
    nn.Module
        The trained SAE, with ``sae.history``: lists ``step``, ``loss``, ``mse``
        (mean ``‖x − x̂‖²`` on the batch in normalised units, ≈ the fraction of
        variance unexplained), ``l0``, ``dead_fraction``, ``aux``, and
        ``scale`` (the normalisation factor) and ``seconds``.

    Raises
    ------
    TypeError
        An unknown keyword argument (the message lists the valid ones).
    ValueError
        Bad sizes (``width < 1``, ``k > width``), an unknown architecture, a
        hyperparameter of another architecture, NaN or Inf in the activations.

    Examples
    --------
    >>> model, world = sw.zoo.load("neuron-cnn-narrow")          # doctest: +SKIP
    >>> with sw.Lens(model) as lens:                              # doctest: +SKIP
    ...     sae = sw.train_sae(lens, "bottleneck", world, arch="topk", width=24, k=3)
    ...     lens.edit("bottleneck", sw.Ablate([5]), basis=sw.SAE(sae))
    """
    _unknown_kwargs("train_sae", unknown, (*_TRAIN_KW, "chunk_size", "feature_dim", "max_activations"))
    if lens is None:
        if site is not None:
            raise ValueError(
                "site was given without a lens; pass train_sae(lens, site, inputs) or train_sae(None, None, acts)"
            )
        acts = data
    else:
        if not isinstance(site, str):
            raise ValueError(f"site must be a module path (str), got {site!r}")
        acts = harvest(
            lens, site, data, chunk_size=chunk_size, feature_dim=feature_dim, max_activations=max_activations, seed=seed
        )
    return fit_sae(
        acts,
        arch=arch,
        width=width,
        k=k,
        l1=l1,
        l0=l0,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=device,
        progress=progress,
        normalize=normalize,
        resample_dead=resample_dead,
        dead_after=dead_after,
        aux_k=aux_k,
        aux_coef=aux_coef,
        bandwidth=bandwidth,
        init_threshold=init_threshold,
        warmup=warmup,
        log_every=log_every,
    )


def _as_acts(acts: Any) -> torch.Tensor:
    if isinstance(acts, np.ndarray):
        acts = torch.from_numpy(acts)
    if not isinstance(acts, torch.Tensor):
        raise TypeError(f"activations must be a tensor or array of shape (N, d), got {type(acts).__name__}")
    acts = acts.detach()  # activations are data: never backpropagate into the model that made them
    if acts.ndim != 2 or acts.shape[0] == 0 or acts.shape[1] == 0:
        raise ValueError(
            f"activations must have shape (N, d) with N, d >= 1, got {tuple(acts.shape)}; "
            "flatten other axes first (harvest() does this for conv and sequence sites)"
        )
    if not acts.is_floating_point():
        acts = acts.float()
    bad = ~torch.isfinite(acts)
    if bad.any():
        rows = torch.nonzero(bad.any(1)).flatten()
        raise ValueError(
            f"activations contain NaN or Inf in {rows.numel()} of {acts.shape[0]} rows (first: {rows[:5].tolist()}); "
            "check the model and inputs, or drop those rows"
        )
    return acts


def fit_sae(
    acts: Any,
    *,
    arch: str = "topk",
    width: int | None = None,
    k: int | None = None,
    l1: float | None = None,
    l0: float | None = None,
    steps: int = 3000,
    batch_size: int = 256,
    lr: float | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    normalize: bool = True,
    resample_dead: bool | None = None,
    dead_after: int | None = None,
    aux_k: int | None = None,
    aux_coef: float | None = None,
    bandwidth: float | None = None,
    init_threshold: float | None = None,
    warmup: float = 0.05,
    log_every: int = 50,
    **unknown: Any,
) -> _SAEBase:
    """Train an SAE on a tensor of activations ``(N, d)``.

    Parameters
    ----------
    acts : Tensor or ndarray, shape (N, d)
        The activations, one row per vector (finite; any device).
    arch, width, k, l1, l0, steps, batch_size, lr, seed, device, progress, normalize, resample_dead, \
dead_after, aux_k, aux_coef, bandwidth, init_threshold, warmup, log_every
        As for :func:`train_sae` (which harvests the activations and calls this).

    Returns
    -------
    nn.Module
        The trained SAE with its ``history``, on the device ``acts`` came from.
    """
    _unknown_kwargs("fit_sae", unknown, _TRAIN_KW)
    import time

    t_start = time.perf_counter()
    X = _as_acts(acts)
    home = X.device
    N, d = X.shape
    recipe = _recipe(
        N,
        d,
        arch=arch,
        width=width,
        k=k,
        l1=l1,
        l0=l0,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        resample_dead=resample_dead,
        dead_after=dead_after,
        aux_k=aux_k,
        aux_coef=aux_coef,
        bandwidth=bandwidth,
        init_threshold=init_threshold,
        warmup=warmup,
        log_every=log_every,
    )
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    X = X.to(dev, torch.float32)
    mean = X.mean(0)
    scale = 1.0
    if normalize:
        var = (X - mean).pow(2).sum(1).mean().item()
        scale = 1.0 / math.sqrt(var) if var > 0 else 1.0
        X = X * scale
        mean = mean * scale
    trainer = _Trainer(recipe, mean, dev, pool=X)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=recipe.steps, desc=f"train_sae {recipe.arch}", leave=True, unit="step")
    batches = _Batches(N, recipe.batch_size, stream(recipe.seed, "train.batches"))
    try:
        with trainer.threads():
            for _ in range(recipe.steps):
                idx = next(batches).to(dev)
                if trainer.step(X.index_select(0, idx)) and bar is not None:
                    h = trainer.hist
                    bar.set_postfix(
                        loss=f"{h['loss'][-1]:.4f}",
                        l0=f"{h['l0'][-1]:.1f}",
                        dead=f"{h['dead_fraction'][-1]:.0%}",
                        refresh=False,
                    )
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return trainer.finish(scale, home, seconds=time.perf_counter() - t_start)


@dataclasses.dataclass(frozen=True)
class _Recipe:
    """A validated training recipe: everything :class:`_Trainer` needs besides the data."""

    arch: str
    d: int
    width: int
    hparams: dict[str, Any]
    steps: int
    batch_size: int
    lr: float
    seed: int
    resample_dead: bool | None
    dead_after: int
    warmup: float
    log_every: int

    def to_json(self) -> dict[str, Any]:
        """The recipe as a JSON-able dict (checkpoints record it to refuse resuming another run)."""
        return dataclasses.asdict(self)


def _recipe(
    N: int,
    d: int,
    *,
    arch: str,
    width: int | None,
    k: int | None,
    l1: float | None,
    l0: float | None,
    steps: int,
    batch_size: int,
    lr: float | None,
    seed: int,
    resample_dead: bool | None,
    dead_after: int | None,
    aux_k: int | None,
    aux_coef: float | None,
    bandwidth: float | None,
    init_threshold: float | None,
    warmup: float,
    log_every: int,
) -> _Recipe:
    """Check the training arguments of :func:`fit_sae` for ``N`` activations of width ``d``; fill defaults."""
    a = _arch(arch)
    width = 8 * d if width is None else _check_size("width", width)
    steps = _check_size("steps", steps)
    batch_size = _check_size("batch_size", batch_size)
    log_every = _check_size("log_every", log_every)
    warmup = _check_float("warmup", warmup)
    if warmup >= 1:
        raise ValueError(f"warmup is a fraction of the steps, in [0, 1); got {warmup}")
    given = {"k": k, "l1": l1, "l0": l0, "aux_k": aux_k, "aux_coef": aux_coef}
    given.update(bandwidth=bandwidth, init_threshold=init_threshold)
    wrong = [name for name, v in given.items() if v is not None and name not in _HPARAMS[a]]
    if wrong:
        owners = {n: [x for x, hp in _HPARAMS.items() if n in hp] for n in wrong}
        raise ValueError(
            f"{', '.join(f'{n} applies to arch={owners[n]}' for n in wrong)}, not to arch={a!r}; "
            f"{a} takes {list(_HPARAMS[a])}"
        )
    hp: dict[str, Any] = {n: v for n, v in given.items() if v is not None}
    if a == "topk":
        hp.setdefault("k", max(1, min(32, d // 4)))
        if _check_size("k", hp["k"]) > width:
            raise ValueError(f"k = {hp['k']} is larger than width = {width}; pick k <= width")
    lr = default_lr(d) if lr is None else _check_float("lr", lr, positive=True)
    dead_after = min(N, 25 * batch_size) if dead_after is None else _check_size("dead_after", dead_after)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or int(seed) < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    return _Recipe(
        arch=a,
        d=int(d),
        width=width,
        hparams=hp,
        steps=steps,
        batch_size=batch_size,
        lr=float(lr),
        seed=int(seed),
        resample_dead=resample_dead,
        dead_after=int(dead_after),
        warmup=warmup,
        log_every=log_every,
    )


class _Trainer:
    """One SAE's training state, advanced one optimisation step at a time (the loop of :func:`fit_sae`).

    ``step(x)`` takes a batch of normalised activations; :func:`fit_sae` feeds it batches of a tensor
    and :mod:`superwidgets.scale.train` batches of an on-disk store under ``torch.distributed``.
    For the distributed case three hooks replace the single-process defaults: ``loss_fn`` (a
    DDP-wrapped ``sae.loss``, whose backward averages the gradients over ranks), ``all_fired``
    (OR of the per-latent "fired in this batch" flags over ranks) and ``mean`` (average of logged
    scalars over ranks); ``rows_per_step`` is the global batch. :meth:`state` / :meth:`load_state`
    hold everything the next step depends on, for checkpoints.
    """

    def __init__(
        self,
        recipe: _Recipe,
        mean: torch.Tensor,
        dev: torch.device,
        *,
        pool: Any,
        loss_fn: Any = None,
        all_fired: Any = None,
        mean_fn: Any = None,
        rows_per_step: int | None = None,
    ) -> None:
        self.recipe = r = recipe
        self.dev = dev
        self.pool = pool  # rows for resampling dead latents: ``pool.shape[0]``, ``pool.device``, ``pool[idx]``
        a = r.arch
        sae = make_sae(a, r.d, r.width, seed=r.seed, **r.hparams)
        init_norm = _DECODER_INIT_NORM[a]
        self.free = init_norm is not None  # decoder rows free during training (folded to unit norm at the end)
        if self.free:
            with torch.no_grad():
                sae.W_dec.mul_(init_norm)
                sae.W_enc.mul_(init_norm)
            if isinstance(sae, TopKSAE):
                sae.rescale_by_decoder_norm = True
        with torch.no_grad():
            sae.b_dec.copy_(mean.cpu())
        sae = sae.to(dev)
        sae.train()
        self.sae = sae
        # the dictionary (W_enc, W_dec) trains at lr; biases, thresholds and gate scales at lr · _OTHER_LR
        dictionary = [sae.W_enc, sae.W_dec]
        others = [p for p in sae.parameters() if all(p is not q for q in dictionary)]
        groups = [{"params": dictionary, "mult": 1.0}, {"params": others, "mult": _OTHER_LR}]
        # the fused kernel: one pass per tensor instead of about ten (bit-for-bit Adam's update up to rounding)
        self.opt = torch.optim.Adam(groups, lr=r.lr, fused=dev.type in ("cpu", "cuda"))
        self.params = [*dictionary, *others]
        self.n_warm = int(r.warmup * r.steps)
        self.decay_from = int(0.8 * r.steps)
        self.gen_resample = stream(r.seed, "train.resample")
        self.since = torch.zeros(r.width, dtype=torch.long, device=dev)  # activations since each latent last fired
        self.resample_at: set[int] = set()
        if r.resample_dead and a in ("relu", "gated"):  # None (default): not resampled, as their recipes
            self.resample_at = {int(r.steps * f) for f in (0.1, 0.2, 0.3, 0.4, 0.5)} - {0}
        self.hist: dict[str, list[float]] = {k_: [] for k_ in ("step", "loss", "mse", "l0", "dead_fraction", "aux")}
        self.hist["resampled"] = []
        self.dead: torch.Tensor | None = None
        self.step_index = 0
        self.loss_fn = loss_fn if loss_fn is not None else sae.loss
        self.all_fired = all_fired
        self.mean_fn = mean_fn
        self.rows_per_step = rows_per_step

    def lr_at(self, step: int) -> float:
        """Learning rate of the dictionary at ``step``: linear warm-up, then linear decay over the last 20 %."""
        r = self.recipe
        f = 1.0
        if self.n_warm and step < self.n_warm:
            f = (step + 1) / self.n_warm
        if step >= self.decay_from:
            f = min(f, (r.steps - step) / max(1, r.steps - self.decay_from))
        return r.lr * f

    def threads(self) -> Any:
        """A context that trains small SAEs on a CPU on one thread (restoring the count after).

        Small SAEs on a CPU run fastest on one thread: their matrices are too small to split, and
        on a busy machine extra threads mostly wait (6× slower measured at d = 6, 24 latents).
        """
        import contextlib

        @contextlib.contextmanager
        def ctx() -> Iterator[None]:
            threads = torch.get_num_threads()
            one = self.dev.type == "cpu" and self.recipe.d * self.recipe.width <= _ONE_THREAD_BELOW
            if one:
                torch.set_num_threads(1)
            try:
                yield
            finally:
                if one:
                    torch.set_num_threads(threads)

        return ctx()

    def step(self, x: torch.Tensor) -> bool:
        """One optimisation step on the batch ``x`` (normalised activations); True when it logged history."""
        r, sae, opt, step = self.recipe, self.sae, self.opt, self.step_index
        for group in opt.param_groups:
            group["lr"] = self.lr_at(step) * group["mult"]
        if step % 10 == 0 and r.resample_dead is not False:  # dead status changes slowly: refresh it every 10 steps
            dead_mask = self.since >= r.dead_after
            self.dead = dead_mask if bool(dead_mask.any()) else None
        ramp = min(1.0, (step + 1) / self.n_warm) if self.n_warm else 1.0
        loss, parts = self.loss_fn(x, dead=self.dead, sparsity_scale=ramp)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if not self.free:
            sae.remove_parallel_grads()
        if _CLIP_GRAD_NORM:
            _clip_grad_norm(self.params, _CLIP_GRAD_NORM)
        opt.step()
        with torch.no_grad():
            if not self.free:
                sae.normalize_decoder()
            if isinstance(sae, JumpReLUSAE):
                sae.threshold.clamp_(min=1e-6)
            fired = parts["codes"].amax(0) > 0  # codes are >= 0 (a max is cheaper than any() down columns)
            if self.all_fired is not None:
                fired = self.all_fired(fired)
            self.since += x.shape[0] if self.rows_per_step is None else self.rows_per_step
            self.since.masked_fill_(fired, 0)
        if step + 1 in self.resample_at:
            n_res = _resample(sae, opt, self.since >= r.dead_after, self.pool, self.gen_resample)
            self.since[self.since >= r.dead_after] = 0
            self.hist["resampled"].append(float(n_res))
        self.step_index = step + 1
        if not (step % r.log_every == 0 or step == r.steps - 1):
            return False
        l0 = (parts["codes"] > 0).sum(-1).float().mean()
        values = torch.stack([loss.detach(), parts["mse"], l0, parts["aux"]])
        if self.mean_fn is not None:
            values = self.mean_fn(values)
        loss_v, mse_v, l0_v, aux_v = values.tolist()
        hist = self.hist
        hist["step"].append(float(step))
        hist["loss"].append(loss_v)
        hist["mse"].append(mse_v)
        hist["l0"].append(l0_v)
        hist["dead_fraction"].append((self.since >= r.dead_after).float().mean().item())
        hist["aux"].append(aux_v)
        return True

    def finish(self, scale: float, home: torch.device, *, seconds: float) -> _SAEBase:
        """Fold the decoder norms and the input scale into the weights; the SAE in eval mode on ``home``."""
        sae = self.sae
        sae.eval()
        if self.free:
            sae.fold_decoder_norms()
            if isinstance(sae, TopKSAE):
                sae.rescale_by_decoder_norm = False
        if scale != 1.0:
            sae._fold_scale(scale)
        sae = sae.to(home)
        for p in sae.parameters():
            p.requires_grad_(True)
            p.grad = None
        hist = {k_: list(v) for k_, v in self.hist.items()}
        hist["scale"] = [scale]
        hist["seconds"] = [seconds]
        sae.history = hist
        return sae

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Everything the next step depends on: ``(tensors, json-able dict)``."""
        tensors: dict[str, torch.Tensor] = {}
        for name, p in self.sae.named_parameters():
            tensors[f"sae.{name}"] = p.detach().cpu().contiguous().clone()
        for i, p in enumerate(self.params):
            for key, v in self.opt.state.get(p, {}).items():
                if isinstance(v, torch.Tensor):
                    tensors[f"adam.{i}.{key}"] = v.detach().cpu().contiguous().clone()
        tensors["since"] = self.since.cpu().clone()
        if self.dead is not None:
            tensors["dead"] = self.dead.cpu().to(torch.uint8)
        tensors["rng.resample"] = self.gen_resample.get_state()
        meta = {"step": self.step_index, "hist": self.hist, "recipe": self.recipe.to_json()}
        return tensors, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned (same recipe)."""
        with torch.no_grad():
            for name, p in self.sae.named_parameters():
                p.copy_(tensors[f"sae.{name}"].to(p.device, p.dtype))
        for i, p in enumerate(self.params):
            st = {}
            for key in ("step", "exp_avg", "exp_avg_sq"):
                t = tensors.get(f"adam.{i}.{key}")
                if t is None:
                    continue
                if key == "step":
                    st[key] = t.to(p.device if self.opt.defaults.get("fused") else "cpu").clone()
                else:  # the moments keep the parameter's memory layout (the fused kernel assumes it)
                    st[key] = torch.empty_like(p, memory_format=torch.preserve_format).copy_(t)
            if st:
                self.opt.state[p] = st
        self.since = tensors["since"].to(self.dev).clone()
        self.dead = tensors["dead"].to(self.dev).bool() if "dead" in tensors else None
        self.gen_resample.set_state(tensors["rng.resample"].clone())
        self.step_index = int(meta["step"])
        self.hist = {k_: [float(v) for v in vs] for k_, vs in meta["hist"].items()}


def default_lr(d: int) -> float:
    """The default Adam learning rate of the dictionary for activations of width ``d``: ``min(0.08, 20.48 / d^1.5)``.

    Adam moves every coordinate by about ``lr`` per step, so a unit-norm decoder row
    of ``d`` coordinates turns by up to ``lr·√d`` radians per step: ``20.48 / d^1.5``
    turns it by ``20.48 / d`` -- finer steps where there is more room for nearly
    parallel directions. That gives 0.04 at d = 64, 0.005 at d = 256, 0.00096 at
    d = 768, capped at 0.08 for sites narrower than 41. Biases, thresholds and the
    Gated SAE's ``r_mag`` train at ``lr / 8`` (:func:`fit_sae`): they live in units
    of the normalised activations, not on the sphere.

    Measured on the toy data (tuning seed 0): at d = 64 a single rate of 1e-3 left
    Gated and JumpReLU SAEs at MMCS 0.6-0.7 after 1,500 steps, a single rate of 0.02
    destabilised JumpReLU's thresholds, and these split rates reach 0.95 in 70-260
    steps. At d = 256 a dictionary rate of 0.02 killed every ReLU latent, and 0.01
    left a Gated SAE at 0.58 with 76 % of its latents dead; 0.005 reached 0.999.
    """
    return min(0.08, 20.48 / _check_size("d", d) ** 1.5)


#: Learning rate of the non-dictionary parameters, as a fraction of ``lr``.
_OTHER_LR = 1 / 8

#: Initial norm of the decoder rows, by architecture, for rows left free during training
#: (Anthropic's April 2024 update); ``None``: rows held at unit norm.
_DECODER_INIT_NORM: dict[str, float | None] = {"relu": 0.1, "topk": 0.1, "gated": 0.1, "jumprelu": None}

#: Gradient-norm clipping (0: none).
_CLIP_GRAD_NORM = 1.0

#: ``d × width`` up to which :func:`fit_sae` trains on one CPU thread.
_ONE_THREAD_BELOW = 64 * 512


def _clip_grad_norm(params: list[nn.Parameter], max_norm: float) -> None:
    """Scale all gradients down together so their joint norm is at most ``max_norm`` (no host sync).

    ``torch.nn.utils.clip_grad_norm_`` does the same with several times the overhead on small SAEs.
    """
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, (max_norm / (norm + 1e-6)).clamp(max=1.0))


def _batches(n: int, batch_size: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless mini-batches of row indices: shuffled epochs, seeded."""
    return _Batches(n, batch_size, gen)


class _Batches:
    """Endless mini-batches of row indices ``< n``: shuffled epochs from ``gen``, checkpointable.

    Its whole state is ``gen``'s state and ``buf`` (the indices drawn but not yet handed out).
    """

    def __init__(self, n: int, batch_size: int, gen: torch.Generator) -> None:
        self.n, self.batch_size, self.gen = n, batch_size, gen
        self.buf = torch.empty(0, dtype=torch.long)

    def __iter__(self) -> _Batches:
        return self

    def __next__(self) -> torch.Tensor:
        while self.buf.numel() < self.batch_size:
            self.buf = torch.cat([self.buf, torch.randperm(self.n, generator=self.gen)])
        out, self.buf = self.buf[: self.batch_size], self.buf[self.batch_size :]
        return out


@torch.no_grad()
def _resample(
    sae: _SAEBase, opt: torch.optim.Optimizer, dead: torch.Tensor, X: torch.Tensor, gen: torch.Generator
) -> int:
    """Re-point dead latents at inputs with a large reconstruction error; reset their Adam state."""
    idx = torch.nonzero(dead).flatten()
    if idx.numel() == 0:
        return 0
    pool = torch.randperm(X.shape[0], generator=gen)[: min(X.shape[0], 8192)].to(X.device)
    xs = X[pool]
    err = xs - sae(xs)
    w = err.pow(2).sum(1)
    if not torch.isfinite(w).all() or w.sum() <= 0:
        return 0
    pick = torch.multinomial(w.cpu().double() ** 2, idx.numel(), replacement=idx.numel() > w.numel(), generator=gen)
    v = err[pick.to(X.device)]
    v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-8)
    alive = ~dead
    enc_norm = sae.W_enc[:, alive].norm(dim=0).mean().item() if alive.any() else 1.0
    dec_norm = sae.W_dec[alive].norm(dim=1).mean().item() if alive.any() else 1.0
    factor = 1.0 if isinstance(sae, JumpReLUSAE) else 0.2
    sae._reinit_latents(idx, v, enc_norm * factor)
    sae.W_dec[idx] *= dec_norm  # free decoder rows: as long as the live ones (1 when held at unit norm)
    for name, axis in sae._per_latent:
        p = getattr(sae, name)
        st = opt.state.get(p, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in st:
                st[key].index_fill_(axis, idx, 0.0)
    return int(idx.numel())


# ====================================================================== save / load
def _files(path: str | Path) -> tuple[Path, Path]:
    """(weights, config) paths for a directory or a file stem."""
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        return p.with_suffix(".safetensors"), p.with_suffix(".json")
    return p / "sae.safetensors", p / "sae.json"


def save_sae(sae: nn.Module, path: str | Path) -> Path:
    """Save an SAE as safetensors weights + a JSON config (never pickle).

    Parameters
    ----------
    sae : nn.Module
        One of this module's SAEs (it needs ``config``).
    path : str or Path
        A directory (gets ``sae.safetensors`` and ``sae.json``, created if
        needed) or a file stem ``name.safetensors`` / ``name.json`` (gets both
        ``name.safetensors`` and ``name.json``).

    Returns
    -------
    Path
        The weights file.

    Notes
    -----
    Both files are written to temporaries and renamed into place, so a failed save leaves the
    previous one intact; the config carries the weights' SHA-256, and :func:`load_sae` refuses
    weights that were not saved with it.
    """
    config = getattr(sae, "config", None)
    if not isinstance(config, dict) or "arch" not in config:
        raise TypeError(f"save_sae needs one of superwidgets' SAEs (with a config), got {type(sae).__name__}")
    weights, cfg = _files(path)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in sae.state_dict().items()}
    sha = digest(tensors)
    text = json.dumps({"format": FORMAT, "version": FORMAT_VERSION, **config, "weights_sha256": sha}, indent=2)
    write_pair(cfg, text + "\n", weights, tensors, {"format": FORMAT, "sha256": sha})
    return weights


# ---------------------------------------------------------------------- checked reading
_FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")


def _read_config(path: Path, hint: str) -> dict[str, Any]:
    """The JSON object in ``path``, or ``ValueError`` naming the file."""
    try:
        cfg = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); {hint}") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{path} must hold a JSON object (the SAE's config), got {describe(cfg)}; {hint}")
    return cfg


def _cfg_int(cfg: dict[str, Any], key: str, where: Path, *, low: int = 1, default: Any = ...) -> int:
    if key not in cfg and default is not ...:
        return default
    v = cfg.get(key)
    if key not in cfg:
        raise ValueError(f"{where}: {key} is missing; it must be an integer >= {low}")
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise ValueError(f"{where}: {key} must be an integer >= {low}, got {describe(v)}")
    return v


def _cfg_bool(cfg: dict[str, Any], key: str, where: Path, default: bool) -> bool:
    v = cfg.get(key, default)
    if not isinstance(v, bool):
        raise ValueError(f"{where}: {key} must be true or false, got {describe(v)}")
    return v


def _cfg_float(cfg: dict[str, Any], key: str, where: Path, *, positive: bool = False) -> float:
    v = cfg.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 or (positive and v == 0):
        raise ValueError(f"{where}: {key} must be a finite number {'> 0' if positive else '>= 0'}, got {describe(v)}")
    return float(v)


def _expected_shapes(arch: str, d: int, n: int, per_latent: tuple[str, ...] | None = None) -> dict[str, tuple]:
    """Shape of every weight tensor of an SAE of architecture ``arch`` (no module is built)."""
    per = (
        per_latent
        or {
            "relu": ("b_enc",),
            "topk": ("b_enc",),
            "gated": ("b_gate", "r_mag", "b_mag"),
            "jumprelu": ("b_enc", "threshold"),
        }[arch]
    )
    return {"W_enc": (d, n), "W_dec": (n, d), "b_dec": (d,), **{k: (n,) for k in per}}


def _unreadable(path: Path, exc: Exception, hint: str) -> ValueError:
    return ValueError(f"{path}: not a readable safetensors file ({exc}); it is truncated or corrupt: {hint}")


def _weights_header(path: Path, hint: str) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{name: (shape, dtype)}`` from a safetensors header, without reading the tensors."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            out = {}
            for k in f.keys():
                sl = f.get_slice(k)
                out[k] = (tuple(int(n) for n in sl.get_shape()), str(sl.get_dtype()))
            return out
    except Exception as exc:  # SafetensorError, OSError, ...
        raise _unreadable(path, exc, hint) from None


def _check_header(
    path: Path,
    header: dict[str, tuple[tuple[int, ...], str]],
    expected: dict[str, tuple],
    needs: str,
    optional: dict[str, tuple[tuple, ...]] | None = None,
) -> None:
    """Every tensor ``expected`` is in ``header`` with that shape and a float dtype, and nothing else is."""
    optional = optional or {}
    missing = sorted(set(expected) - set(header))
    extra = sorted(set(header) - set(expected) - set(optional))
    if missing or extra:
        raise ValueError(
            f"{path}: the weights do not match {needs}: missing {missing}, unexpected {extra}; "
            "the weights and the config do not belong together"
        )
    for name, (shape, dtype) in header.items():
        allowed = (expected[name],) if name in expected else optional[name]
        if shape not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(
                f"{path}: {name} has shape {shape}, but {needs} needs shape {want}; "
                "the weights and the config do not belong together"
            )
        if dtype not in _FLOAT_DTYPES:
            raise ValueError(f"{path}: {name} has dtype {dtype}; SAE weights must be floating point {_FLOAT_DTYPES}")


def _read_weights(path: Path, hint: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # SafetensorError, OSError, ...
        raise _unreadable(path, exc, hint) from None


def _check_finite(path: Path, state: dict[str, torch.Tensor], note: str = "") -> None:
    for name, t in state.items():
        ok = torch.isfinite(t)
        if not bool(ok.all()):
            bad = int((~ok).sum())
            raise ValueError(
                f"{path}: {name} has {bad} non-finite value{'s' if bad != 1 else ''} (NaN or Inf) of {t.numel()}"
                f"{note}; the SAE is unusable: retrain it, or load a save from before training diverged"
            )


def load_sae(path: str | Path, *, device: str | torch.device = "cpu") -> _SAEBase:
    """Load an SAE written by :func:`save_sae` (or a SAELens folder, via :func:`load_saelens`).

    Parameters
    ----------
    path : str or Path
        The directory or file stem given to :func:`save_sae`.
    device : str or torch.device
        Where to put the weights.

    Returns
    -------
    nn.Module
        The SAE, in eval mode; its outputs are bit-identical to the saved one's.

    Raises
    ------
    FileNotFoundError
        No config or weights file.
    ValueError
        Naming the file and the field or tensor: a config field of the wrong type
        (``d`` must be a JSON integer, ``apply_b_dec_to_input`` true or false, ...),
        weights whose names, shapes or dtypes (read from the safetensors header
        before anything is allocated) do not match the config, non-finite weights,
        or a truncated or corrupt file.
    """
    p = Path(path)
    if p.is_dir() and (p / "cfg.json").exists() and not (p / "sae.json").exists():
        return load_saelens(p, device=device)
    weights, cfg_path = _files(p)
    if not cfg_path.exists() or not weights.exists():
        raise FileNotFoundError(f"no SAE at {p}: expected {cfg_path.name} and {weights.name} (written by save_sae)")
    hint = "save the SAE again with save_sae"
    cfg = _read_config(cfg_path, hint)
    if cfg.get("format") != FORMAT:
        raise ValueError(f"{cfg_path} is not a superwidgets SAE config (format {cfg.get('format')!r})")
    version = _cfg_int(cfg, "version", cfg_path, default=FORMAT_VERSION)
    if version > FORMAT_VERSION:
        raise ValueError(f"{cfg_path} has format version {version}; this superwidgets reads up to {FORMAT_VERSION}")
    if not isinstance(cfg.get("arch"), str):
        raise ValueError(f"{cfg_path}: arch must be one of {list(ARCHITECTURES)}, got {describe(cfg.get('arch'))}")
    try:
        a = _arch(cfg["arch"])
    except ValueError as exc:
        raise ValueError(f"{cfg_path}: arch: {exc}") from None
    d = _cfg_int(cfg, "d", cfg_path)
    n = _cfg_int(cfg, "n_latents", cfg_path)
    apply_b_dec = _cfg_bool(cfg, "apply_b_dec_to_input", cfg_path, True)
    hp: dict[str, Any] = {}
    for name in _HPARAMS[a]:
        if name not in cfg:
            continue
        if name in ("k", "aux_k"):
            hp[name] = _cfg_int(cfg, name, cfg_path)
        else:
            hp[name] = _cfg_float(cfg, name, cfg_path, positive=name == "bandwidth")
    # shapes and dtypes from the header, before a single weight is allocated
    needs = f"{cfg_path.name} ({a}, d={d}, n_latents={n})"
    _check_header(weights, _weights_header(weights, hint), _expected_shapes(a, d, n), needs)
    state = _read_weights(weights, hint)
    _check_finite(weights, state)
    want = cfg.get("weights_sha256")  # written since saves became atomic pairs; older saves have none
    if want is not None and want != digest(state):
        raise ValueError(
            f"{weights} is not the file saved with {cfg_path.name} (their SHA-256 differ): the two files were "
            f"not saved together, or the weights changed since; {hint}"
        )
    try:
        sae = make_sae(a, d, n, seed=0, apply_b_dec_to_input=apply_b_dec, **hp)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{cfg_path}: {exc}") from None
    _load_state(sae, state, str(weights))
    return sae.to(device).eval()


def _load_state(sae: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    own = sae.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise ValueError(f"{where}: weights do not match a {type(sae).__name__}: missing {missing}, unexpected {extra}")
    for name, t in state.items():
        if tuple(t.shape) != tuple(own[name].shape):
            raise ValueError(f"{where}: {name} has shape {tuple(t.shape)}, expected {tuple(own[name].shape)}")
    with torch.no_grad():
        for name, p in sae.named_parameters():
            p.copy_(state[name].to(p.dtype))


def load_saelens(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    scaling_factor: float | None = None,
) -> _SAEBase:
    """Import an SAE saved in SAELens' on-disk format.

    A SAELens SAE is a folder with ``cfg.json`` (``architecture``, ``d_in``,
    ``d_sae``, ``apply_b_dec_to_input``, ``normalize_activations``, ``k`` for
    TopK, ...) and ``sae_weights.safetensors`` (``W_enc (d_in, d_sae)``,
    ``W_dec (d_sae, d_in)``, ``b_dec``, and ``b_enc`` / ``threshold`` / ``b_gate``,
    ``r_mag``, ``b_mag`` by architecture). Supported: ``standard`` (ReLU),
    ``topk``, ``gated``, ``jumprelu``, and pre-6.0 configs (``activation_fn_str``,
    ``activation_fn_kwargs.k``, ``log_threshold``, ``scaling_factor``).

    Parameters
    ----------
    path : str or Path
        The folder (or its ``cfg.json``).
    device : str or torch.device
        Where to put the weights.
    dtype : torch.dtype
        Weights are cast to this (default float32, the dtype of most activations).
    scaling_factor : float, optional
        For ``normalize_activations="expected_average_only_in"``: the factor the
        activations were multiplied by in training (SAELens keeps it outside the
        folder); it is folded into the weights, as SAELens does.

    Returns
    -------
    nn.Module
        The matching superwidgets SAE, in eval mode; ``encode``/``decode`` agree
        with SAELens' own up to float rounding.

    Raises
    ------
    ValueError
        Anything not supported, naming the field: another ``architecture``,
        ``normalize_activations`` other than ``"none"`` (or
        ``"expected_average_only_in"`` without ``scaling_factor``),
        ``reshape_activations`` other than ``"none"``, an ``activation_fn`` other
        than ReLU/TopK, or unexpected weight tensors.
    """
    p = Path(path)
    if p.name == "cfg.json":
        p = p.parent
    cfg_path, w_path = p / "cfg.json", p / "sae_weights.safetensors"
    if not cfg_path.exists() or not w_path.exists():
        raise FileNotFoundError(f"no SAELens SAE at {p}: expected cfg.json and sae_weights.safetensors")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point torch.dtype such as torch.float32, got {dtype!r}")
    hint = "export the SAE from SAELens again"
    cfg = _read_config(cfg_path, hint)
    where = str(cfg_path)

    def field(name: str, problem: str) -> ValueError:
        return ValueError(f"{where}: unsupported SAELens field {name} = {cfg.get(name)!r}; {problem}")

    act_fn = cfg.get("activation_fn", cfg.get("activation_fn_str", "relu"))
    arch_name = cfg.get("architecture", "standard")
    mapping = {"standard": "relu", "topk": "topk", "gated": "gated", "jumprelu": "jumprelu"}
    if not isinstance(arch_name, str) or arch_name not in mapping:
        raise field("architecture", f"superwidgets imports {sorted(mapping)}")
    a = mapping[arch_name]
    k = cfg.get("k")
    if a == "relu" and act_fn == "topk":
        kwargs = cfg.get("activation_fn_kwargs") or {}
        if not isinstance(kwargs, dict):
            raise ValueError(
                f'{where}: activation_fn_kwargs must be an object such as {{"k": 32}}, got {describe(kwargs)}'
            )
        a, k = "topk", kwargs.get("k")
    elif act_fn not in (None, "relu", "topk"):
        raise field(
            "activation_fn" if "activation_fn" in cfg else "activation_fn_str", "only ReLU and TopK are supported"
        )
    d_in = _cfg_int(cfg, "d_in", cfg_path)
    d_sae = _cfg_int(cfg, "d_sae", cfg_path)
    apply_b_dec = _cfg_bool(cfg, "apply_b_dec_to_input", cfg_path, True)
    rescale = _cfg_bool(cfg, "rescale_acts_by_decoder_norm", cfg_path, False)
    norm = cfg.get("normalize_activations", "none")
    if norm is True:
        norm = "expected_average_only_in"
    if norm in (False, None):
        norm = "none"
    if scaling_factor is not None and (
        isinstance(scaling_factor, bool)
        or not isinstance(scaling_factor, (int, float, np.floating, np.integer))
        or not math.isfinite(float(scaling_factor))
        or float(scaling_factor) <= 0
    ):
        raise ValueError(
            f"scaling_factor must be a finite number > 0 (the factor the activations were multiplied by in "
            f"training), got {scaling_factor!r}"
        )
    if norm == "expected_average_only_in":
        if scaling_factor is None:
            raise field(
                "normalize_activations",
                "the folder does not hold the activation scaling factor; pass load_saelens(path, scaling_factor=...)",
            )
    elif norm != "none":
        raise field(
            "normalize_activations", "only 'none' and 'expected_average_only_in' (with scaling_factor=) can be imported"
        )
    if cfg.get("reshape_activations", "none") not in ("none", None):
        raise field("reshape_activations", "only 'none' is supported (reshape hook_z activations yourself)")
    if cfg.get("hook_head_index") is not None:
        raise field("hook_head_index", "per-head SAEs are not supported")
    hp: dict[str, Any] = {}
    if a == "topk":
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"{where}: k must be an integer >= 1 (active latents of a TopK SAE), got {describe(k)}")
        hp["k"] = k
    # names, shapes and dtypes from the header, before a single weight is allocated
    header = _weights_header(w_path, hint)
    expected = _expected_shapes(a, d_in, d_sae)
    if a == "jumprelu" and "log_threshold" in header and "threshold" not in header:
        expected["log_threshold"] = expected.pop("threshold")
    scales = {n: ((d_sae,), (1,)) for n in ("finetuning_scaling_factor", "scaling_factor")}
    needs = f"a SAELens {arch_name!r} SAE with d_in={d_in}, d_sae={d_sae} ({cfg_path.name})"
    _check_header(w_path, header, expected, needs, optional=scales)
    state = {name: t.to(dtype) for name, t in _read_weights(w_path, hint).items()}
    if "log_threshold" in state and "threshold" not in state:
        state["threshold"] = state.pop("log_threshold").exp()
    fname = "finetuning_scaling_factor" if "finetuning_scaling_factor" in state else "scaling_factor"
    finetune = state.pop("finetuning_scaling_factor", state.pop("scaling_factor", None))
    note = f" (as {dtype})" if dtype != torch.float32 else ""
    _check_finite(w_path, state, note)
    if finetune is not None:
        bad = ~torch.isfinite(finetune) | (finetune <= 0)
        if bool(bad.any()):
            raise ValueError(
                f"{w_path}: {fname} has {int(bad.sum())} value(s) that are not finite and > 0 "
                f"(e.g. {float(finetune[bad][0])}); the decoder cannot be rescaled by them: export the SAE again"
            )
    try:
        sae = make_sae(a, d_in, d_sae, seed=0, apply_b_dec_to_input=apply_b_dec, **hp)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: {exc}") from None
    with torch.no_grad():
        for name, prm in sae.named_parameters():
            prm.data = state[name].clone()
        if finetune is not None and not torch.all(finetune == 1):
            sae.W_dec.mul_(finetune[:, None])
        if a == "topk" and rescale:
            norms = sae.W_dec.norm(dim=1).clamp_min(1e-8)
            sae.W_dec.div_(norms[:, None])
            sae.W_enc.mul_(norms[None, :])
            sae.b_enc.mul_(norms)
        if norm == "expected_average_only_in":
            sae._fold_scale(float(scaling_factor))  # type: ignore[arg-type]
    _check_finite(w_path, dict(sae.named_parameters()), f" after folding in the scaling factors{note}")
    return sae.to(device).eval()
