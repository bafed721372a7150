"""Self-supervised image encoders (MoCo v2, SimCLR) for the neuron worlds, in plain torch.

The patient-neuron study (arXiv 2606.31394) embeds its images with a CNN trained by momentum
contrast (MoCo), never shown a label, and reads the globally-average-pooled features of its
last stage. This module does the same on CPU:

* :class:`ConvEncoder` — a small CNN (four conv stages, GroupNorm, ReLU, 2×2 average pooling)
  whose output is the global average pool of the last stage;
* :func:`augment` — the standard contrastive augmentations written in torch (no torchvision):
  random resized crop, flips and 90° rotations (one affine resampling), per-channel intensity
  jitter, Gaussian blur and Gaussian noise;
* :func:`train_ssl` — SimCLR (default) or MoCo v2, deterministic on CPU for a given seed;
* :func:`encode` — pooled features of a stack of images;
* :func:`probe_scores` — what a representation holds: held-out linear-probe accuracy of the
  genotype, held-out ridge R² of the death rate, and the effective rank.

**Why SimCLR for the shipped encoder, although the study used MoCo.** MoCo v2 (momentum
0.995, temperature 0.07, symmetric loss) is implemented and is what the study ran; its queue of
keys from a slowly moving copy of the encoder gives thousands of negatives at a small batch,
which is why it is the usual choice on small hardware. But the key encoder moves at
``1 − momentum`` per step; a likely reason for what follows (not tested here) is that in the few
thousand steps a CPU affords it stays close to its random initialisation, so the query encoder
learns to match keys made by an almost untrained network. Measured on the shipped world
(``docs/study.md``, "The world and the
encoder"; ``scripts/make_ssl.py --moco``), MoCo at the study's settings ends below the untrained
encoder on the genotype probe, while SimCLR (in-batch NT-Xent, temperature 0.5, batch 32) ends
above it. So ``method="simclr"`` is the default and the shipped ``neuron-ssl``;
``method="moco"`` reproduces the study's recipe.

**Why GroupNorm.** With BatchNorm on one device, the statistics of a batch leak which images
are in it and let the query find its key without learning anything about the image (MoCo
shuffles BN across GPUs to prevent it). GroupNorm normalises each image on its own.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["METHODS", "ConvEncoder", "augment", "encode", "probe_scores", "ssl_card_metrics", "train_ssl"]

#: The contrastive methods :func:`train_ssl` knows.
METHODS: tuple[str, ...] = ("moco", "simclr")


class ConvEncoder(nn.Module):
    """A small CNN: ``len(widths)`` conv stages, then global average pooling to ``widths[-1]`` features.

    Each stage is ``conv 3×3 → GroupNorm → ReLU`` followed, except in the last stage, by a 2×2
    average pool. Any square image size works (the pooling is global).

    Sites (``named_modules()`` paths): ``stages.0`` … ``stages.{len(widths)-1}`` (each stage's
    output), ``pool`` (the pooled features, ``(B, feature_dim)``).

    Parameters
    ----------
    in_channels : int
        Image channels (4 for the neuron worlds).
    widths : tuple of int
        Output channels of each stage; the last is the feature dimension.
    """

    def __init__(self, in_channels: int = 4, widths: tuple[int, ...] = (32, 64, 96, 128)) -> None:
        super().__init__()
        if not widths or any(int(w) < 4 or int(w) % 4 for w in widths):
            raise ValueError(
                f"widths must be a non-empty tuple of multiples of 4 (GroupNorm of 4 groups); got {widths}"
            )
        self.in_channels = int(in_channels)
        self.widths = tuple(int(w) for w in widths)
        stages = []
        c = self.in_channels
        for i, w in enumerate(self.widths):
            layers: list[nn.Module] = [nn.Conv2d(c, w, 3, padding=1), nn.GroupNorm(4, w), nn.ReLU()]
            if i < len(self.widths) - 1:
                layers.append(nn.AvgPool2d(2))
            stages.append(nn.Sequential(*layers))
            c = w
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)

    @property
    def feature_dim(self) -> int:
        """Width of the pooled features (``widths[-1]``)."""
        return self.widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features ``(B, feature_dim)`` of images ``(B, in_channels, S, S)``."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"ConvEncoder expects images of shape (B, {self.in_channels}, S, S); got {tuple(x.shape)}")
        return self.pool(self.stages(x)).flatten(1)


# --------------------------------------------------------------------------------------------
# Augmentations
# --------------------------------------------------------------------------------------------


def _blur_kernels(sigma: torch.Tensor, radius: int) -> torch.Tensor:
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (taps[None, :] / sigma[:, None].clamp_min(1e-3)) ** 2)
    return k / k.sum(1, keepdim=True)


def augment(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    crop_scale: tuple[float, float] = (0.6, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    intensity: float = 0.25,
    blur_p: float = 0.5,
    blur_sigma: tuple[float, float] = (0.3, 1.5),
    noise: float = 0.04,
) -> torch.Tensor:
    """One random contrastive view of each image, drawn with ``generator`` (deterministic).

    In order: a **random resized crop** (area fraction ``U(crop_scale)``, aspect ratio log-uniform
    in ``ratio``, position uniform inside the image) combined with a random **flip** and
    **90° rotation** into one affine map, resampled bilinearly back to ``S × S``; per-channel
    **intensity jitter** ``x · exp(U(−intensity, intensity)) + U(−intensity/5, intensity/5)``;
    a **Gaussian blur** with probability ``blur_p`` (σ ``U(blur_sigma)`` pixels); additive
    **Gaussian noise** of s.d. ``U(0, noise)``.

    Parameters
    ----------
    x : torch.Tensor, shape (B, C, S, S), float32
    generator : torch.Generator
        The source of every random number (CPU).
    crop_scale : tuple of float
        Range of the kept area fraction, within (0, 1].
    ratio : tuple of float
        Range of the crop's aspect ratio (width / height), log-uniform.
    intensity : float
        Strength of the intensity jitter (0 = none).
    blur_p : float
        Probability of blurring a view.
    blur_sigma : tuple of float
        Range of the blur's σ in pixels.
    noise : float
        Largest noise s.d.

    Returns
    -------
    torch.Tensor, shape (B, C, S, S)
    """
    if x.ndim != 4:
        raise ValueError(f"augment expects images of shape (B, C, S, S); got {tuple(x.shape)}")
    lo, hi = crop_scale
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"crop_scale must satisfy 0 < low ≤ high ≤ 1; got {crop_scale}")
    if not 0 < ratio[0] <= ratio[1]:
        raise ValueError(f"ratio must satisfy 0 < low ≤ high (e.g. (3/4, 4/3)); got {ratio}")
    b, c, s, _ = x.shape
    g = generator

    def u(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g)

    area = lo + (hi - lo) * u(b)
    log_r = math.log(ratio[0]) + u(b) * (math.log(ratio[1]) - math.log(ratio[0]))
    sx = torch.sqrt(area * torch.exp(log_r)).clamp(max=1.0)
    sy = torch.sqrt(area / torch.exp(log_r)).clamp(max=1.0)
    tx = (2 * u(b) - 1) * (1 - sx)
    ty = (2 * u(b) - 1) * (1 - sy)
    k = torch.floor(4 * u(b))
    flip = torch.where(u(b) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(k * math.pi / 2).round(), torch.sin(k * math.pi / 2).round()
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = cos * sx * flip
    theta[:, 0, 1] = -sin * sy
    theta[:, 1, 0] = sin * sx * flip
    theta[:, 1, 1] = cos * sy
    theta[:, 0, 2] = tx
    theta[:, 1, 2] = ty
    grid = F.affine_grid(theta, [b, c, s, s], align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    gain = torch.exp((2 * u(b, c, 1, 1) - 1) * intensity)
    offset = (2 * u(b, c, 1, 1) - 1) * intensity / 5
    out = out * gain + offset
    if blur_p > 0:
        sig = blur_sigma[0] + (blur_sigma[1] - blur_sigma[0]) * u(b)
        sig = torch.where(u(b) < blur_p, sig, torch.zeros(b))
        r = max(1, math.ceil(3 * blur_sigma[1]))
        ker = _blur_kernels(sig, r).repeat_interleave(c, 0)  # (b·c, 2r+1)
        y = F.pad(out.reshape(1, b * c, s, s), (r, r, r, r), mode="reflect")
        y = F.conv2d(y, ker[:, None, None, :], groups=b * c)
        out = F.conv2d(y, ker[:, None, :, None], groups=b * c).reshape(b, c, s, s)
    out = out + noise * u(b, 1, 1, 1) * torch.randn(out.shape, generator=g)
    return out


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def _projector(d_in: int, dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_in), nn.ReLU(), nn.Linear(d_in, dim))


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was)


def _as_images(images: Any) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(images, dtype=np.float32) if not torch.is_tensor(images) else images)
    x = x.float()
    if x.ndim != 4 or x.shape[2] != x.shape[3]:
        raise ValueError(f"images must have shape (n, C, S, S) (e.g. world.images); got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("images contain NaN or Inf; every pixel must be a finite number")
    return x


def _info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
    pos = (q * k).sum(1, keepdim=True)
    neg = q @ queue.T
    logits = torch.cat([pos, neg], 1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long))


def _nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    z = torch.cat([z1, z2])
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    n = len(z1)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(sim, target)


def train_ssl(
    images: Any,
    *,
    method: str = "simclr",
    encoder: ConvEncoder | None = None,
    epochs: int = 20,
    batch_size: int = 128,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    temperature: float | None = None,
    momentum: float = 0.995,
    queue_size: int = 2048,
    projection_dim: int = 64,
    crop_scale: tuple[float, float] = (0.6, 1.0),
    intensity: float = 0.25,
    seed: int = 0,
    progress: bool = False,
) -> ConvEncoder:
    """Train an image encoder by contrastive self-supervision; it never sees a label.

    Each step draws a mini-batch, makes two :func:`augment` views of every image and trains
    the encoder (plus a 2-layer projection head, discarded afterwards) so that the two views
    of an image match and other images do not:

    * ``method="moco"`` (MoCo v2, the study's): queries come from the encoder, keys from a
      momentum copy (``θ_k ← momentum · θ_k + (1 − momentum) · θ_q`` after every step); each
      query's negatives are a queue of the last ``queue_size`` keys. The loss is symmetric:
      ``(InfoNCE(q₁, k₂) + InfoNCE(q₂, k₁)) / 2``; both key sets are then enqueued.
    * ``method="simclr"``: NT-Xent over the ``2 · batch_size`` views of the batch (the other
      views are the negatives); no momentum encoder or queue.

    AdamW with a cosine learning-rate decay (5 % linear warm-up). Runs on CPU under
    ``torch.use_deterministic_algorithms(True)``: the same seed, data and thread count give
    the same weights bit for bit.

    Parameters
    ----------
    images : array-like or torch.Tensor, shape (n, C, S, S)
        Training images (e.g. ``world.images[world.train]``); n ≥ 2 · batch_size for MoCo.
    method : {"simclr", "moco"}
        SimCLR by default: in this project's CPU budget it beats the untrained encoder where MoCo
        at the study's settings does not (see the module docstring).
    encoder : ConvEncoder, optional
        Trained in place if given (its initialisation is kept); otherwise a new
        ``ConvEncoder(in_channels=C)`` initialised from ``seed``.
    epochs : int
        Passes over the images (≥ 1).
    batch_size : int
        Images per step (≥ 2); a last incomplete batch is dropped.
    lr, weight_decay : float
        AdamW peak learning rate and weight decay.
    temperature : float, optional
        Softmax temperature of the contrastive loss; default 0.5 for SimCLR (the shipped
        encoder's) and 0.07 for MoCo (the study's).
    momentum : float
        MoCo key-encoder momentum in [0, 1) (the study: 0.995).
    queue_size : int
        MoCo queue length (≥ batch_size).
    projection_dim : int
        Output width of the projection head.
    crop_scale, intensity
        Passed to :func:`augment`: the kept-area range of the random resized crop and the
        strength of the per-channel intensity jitter.
    seed : int
        Seeds the initialisation, the batch order and every augmentation.
    progress : bool
        Show a tqdm bar over the steps.

    Returns
    -------
    ConvEncoder
        The trained encoder, in eval mode.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)}")
    x = _as_images(images)
    n = len(x)
    for name, v, low in (("epochs", epochs, 1), ("batch_size", batch_size, 2), ("projection_dim", projection_dim, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"{name} must be an integer ≥ {low}; got {v!r}")
    if n < batch_size:
        raise ValueError(f"need at least batch_size = {batch_size} images; got {n}. Pass a smaller batch_size")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1); got {momentum}")
    if temperature is None:
        temperature = 0.07 if method == "moco" else 0.5
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0; got {temperature}")
    if method == "moco" and queue_size < batch_size:
        raise ValueError(f"queue_size ({queue_size}) must be ≥ batch_size ({batch_size})")

    with _deterministic():
        torch.manual_seed(seed)
        if encoder is None:
            encoder = ConvEncoder(in_channels=x.shape[1])
        elif x.shape[1] != encoder.in_channels:
            raise ValueError(f"images have {x.shape[1]} channels but the encoder reads {encoder.in_channels}")
        head = _projector(encoder.feature_dim, projection_dim)
        query = nn.Sequential(encoder, head)
        key = copy.deepcopy(query).requires_grad_(False) if method == "moco" else None
        g = torch.Generator().manual_seed(seed)
        queue = F.normalize(torch.randn(queue_size, projection_dim, generator=g), dim=1)
        ptr = 0
        steps_per_epoch = n // batch_size
        total = epochs * steps_per_epoch
        warm = max(1, total // 20)
        opt = torch.optim.AdamW(query.parameters(), lr=lr, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda t: (t + 1) / warm if t < warm else 0.5 * (1 + math.cos(math.pi * (t - warm) / (total - warm)))
        )
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, desc=f"{method} SSL")
        query.train()
        for _ in range(epochs):
            order = torch.randperm(n, generator=g)
            for st in range(steps_per_epoch):
                xb = x[order[st * batch_size : (st + 1) * batch_size]]
                v1 = augment(xb, g, crop_scale=crop_scale, intensity=intensity)
                v2 = augment(xb, g, crop_scale=crop_scale, intensity=intensity)
                q1 = F.normalize(query(v1), dim=1)
                q2 = F.normalize(query(v2), dim=1)
                if key is not None:
                    with torch.no_grad():
                        k1 = F.normalize(key(v1), dim=1)
                        k2 = F.normalize(key(v2), dim=1)
                    loss = 0.5 * (_info_nce(q1, k2, queue, temperature) + _info_nce(q2, k1, queue, temperature))
                else:
                    loss = _nt_xent(q1, q2, temperature)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                if key is not None:
                    with torch.no_grad():
                        for pk, pq in zip(key.parameters(), query.parameters(), strict=True):
                            pk.mul_(momentum).add_(pq.detach(), alpha=1 - momentum)
                        for kk in (k1, k2):
                            idx = (ptr + torch.arange(len(kk))) % queue_size
                            queue[idx] = kk
                            ptr = (ptr + len(kk)) % queue_size
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss.item():.3f}")
        if bar is not None:
            bar.close()
    encoder.eval()
    return encoder


def encode(encoder: nn.Module, images: Any, *, batch_size: int = 512) -> np.ndarray:
    """Pooled features of ``images`` under ``encoder`` (eval mode, no gradients).

    Parameters
    ----------
    encoder : nn.Module
        E.g. a :class:`ConvEncoder`: images ``(B, C, S, S)`` → features ``(B, d)``.
    images : array-like or torch.Tensor, shape (n, C, S, S)
    batch_size : int
        Images per forward pass.

    Returns
    -------
    numpy.ndarray, shape (n, d), float32
    """
    x = _as_images(images)
    was = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            out = [encoder(x[a : a + batch_size]) for a in range(0, len(x), batch_size)]
    finally:
        encoder.train(was)
    return torch.cat(out).numpy().astype(np.float32)


def probe_scores(
    features: Any, genotype: Any, death_rate: Any, train: Any, test: Any, *, plate: Any = None
) -> dict[str, float]:
    """What a frozen representation holds: genotype probe, death-rate ridge R², effective rank.

    * ``genotype_accuracy``: multinomial logistic regression (standardised features, C = 1,
      Newton–Cholesky solver: converges in a few iterations where lbfgs needs hundreds) fitted
      on ``train`` rows, accuracy on ``test`` rows;
    * ``genotype_chance``: the share of the most common genotype among ``test`` rows;
    * ``death_rate_r2``: ridge regression (standardised features; penalty chosen by
      leave-one-out on ``train`` among ``10^-2 … 10^4``), R² on ``test`` rows;
    * ``effective_rank``: :func:`~superwidgets.science.geometry.effective_rank` of all rows;
    * with ``plate``: ``plate_accuracy`` (the same logistic probe for the plate, a pure image
      nuisance — lower means the representation ignores staining batches) and ``plate_chance``.

    Parameters
    ----------
    features : array-like, shape (n, d)
    genotype : array-like, shape (n,)
        Class labels.
    death_rate : array-like, shape (n,)
    train, test : array-like of int
        Row indices (disjoint; e.g. ``world.train``, ``world.test``: a split by well).
    plate : array-like, shape (n,), optional
        Plate of each row (``world.plate``).

    Returns
    -------
    dict of str to float (rounded to 4 decimals)
    """
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from .geometry import effective_rank

    X = np.asarray(features, dtype=np.float64)
    y = np.asarray(genotype)
    t = np.asarray(death_rate, dtype=np.float64)
    tr, te = np.asarray(train), np.asarray(test)
    if X.ndim != 2 or len(y) != len(X) or len(t) != len(X):
        raise ValueError(
            f"features must be (n, d) with one genotype and death rate per row; got {X.shape}, {y.shape}, {t.shape}"
        )
    if len(np.intersect1d(tr, te)):
        raise ValueError("train and test rows overlap; pass disjoint index sets (e.g. world.train, world.test)")
    clf = make_pipeline(StandardScaler(), LogisticRegression(solver="newton-cholesky", max_iter=200)).fit(X[tr], y[tr])
    reg = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13))).fit(X[tr], t[tr])
    _, counts = np.unique(y[te], return_counts=True)
    out = {
        "genotype_accuracy": round(float(clf.score(X[te], y[te])), 4),
        "genotype_chance": round(float(counts.max() / counts.sum()), 4),
        "death_rate_r2": round(float(reg.score(X[te], t[te])), 4),
        "effective_rank": round(effective_rank(X), 4),
    }
    if plate is not None:
        pl = np.asarray(plate)
        if len(pl) != len(X):
            raise ValueError(f"plate must have one entry per row ({len(X)}); got {len(pl)}")
        pclf = make_pipeline(StandardScaler(), LogisticRegression(solver="newton-cholesky", max_iter=200)).fit(
            X[tr], pl[tr]
        )
        _, pc = np.unique(pl[te], return_counts=True)
        out["plate_accuracy"] = round(float(pclf.score(X[te], pl[te])), 4)
        out["plate_chance"] = round(float(pc.max() / pc.sum()), 4)
    return out


def ssl_card_metrics(encoder: nn.Module, baseline: nn.Module, world: Any) -> dict[str, Any]:
    """The model-card numbers of a self-supervised encoder beside an untrained baseline of the same architecture.

    Both encoders embed every image of ``world`` (:func:`encode`) and are scored by
    :func:`probe_scores` on the world's own split (``world.train`` / ``world.test``, a split by
    well): the trained encoder's scores under their plain names, the baseline's with the prefix
    ``random_init_``. The baseline is the earned reference: a result counts only where the
    trained encoder beats it.

    Parameters
    ----------
    encoder : nn.Module
        The trained encoder.
    baseline : nn.Module
        The same architecture at its initialisation (e.g. ``superwidgets.zoo.build("neuron-ssl")``).
    world : CellStateWorld
        Any object with ``images``, ``genotype``, ``death_rate``, ``train``, ``test``, ``plate``,
        ``seed``, ``image_size`` (a :class:`~superwidgets.data.cellstate.CellStateWorld`).

    Returns
    -------
    dict
        ``genotype_accuracy``, ``genotype_chance``, ``death_rate_r2``, ``effective_rank``,
        ``plate_accuracy``, ``plate_chance``, the same without the chances prefixed
        ``random_init_`` (chance levels are shared, so they appear once), and ``world``
        (n, seed, image_size, train and test sizes).
    """
    args = (world.genotype, world.death_rate, world.train, world.test)
    out: dict[str, Any] = dict(probe_scores(encode(encoder, world.images), *args, plate=world.plate))
    base = probe_scores(encode(baseline, world.images), *args, plate=world.plate)
    out.update({f"random_init_{k}": v for k, v in base.items() if not k.endswith("_chance")})
    out["world"] = {
        "n": len(world.genotype),
        "seed": int(world.seed),
        "image_size": int(world.image_size),
        "train": len(world.train),
        "test": len(world.test),
    }
    return out
