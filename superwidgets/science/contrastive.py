"""A CLIP-style two-tower model: the supervised reference for unpaired (GW) alignment.

Where pairs *are* known for training, two small encoders trained with a symmetric InfoNCE loss map both
modalities into one space; the similarity of held-out points gives a coupling that the scores of
:mod:`superwidgets.science.align` (FOSCTTM, Recall@k, label transfer) judge exactly like a GW coupling.
That calibrates what the unpaired alignment reaches against what pairing buys.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["TwoTower", "fit_two_tower"]


def _tower(d_in: int, hidden: int, dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, dim)
    )


class TwoTower(nn.Module):
    """Two encoders into one unit-norm embedding space (see :func:`fit_two_tower`).

    Parameters
    ----------
    d_a, d_b : int
        Input widths of modality A and B.
    dim : int
        Width of the shared embedding.
    hidden : int
        Hidden width of each tower (two ReLU layers).
    temperature : float
        Softmax temperature of the similarities.
    """

    def __init__(self, d_a: int, d_b: int, *, dim: int = 16, hidden: int = 64, temperature: float = 0.1) -> None:
        super().__init__()
        self.tower_a = _tower(d_a, hidden, dim)
        self.tower_b = _tower(d_b, hidden, dim)
        self.temperature = float(temperature)
        self.register_buffer("mean_a", torch.zeros(d_a))
        self.register_buffer("std_a", torch.ones(d_a))
        self.register_buffer("mean_b", torch.zeros(d_b))
        self.register_buffer("std_b", torch.ones(d_b))

    def embed_a(self, x: Any) -> torch.Tensor:
        """Unit-norm embeddings ``(n, dim)`` of modality-A points (standardised with the training statistics)."""
        x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        return nn.functional.normalize(self.tower_a((x - self.mean_a) / self.std_a), dim=-1)

    def embed_b(self, x: Any) -> torch.Tensor:
        """Unit-norm embeddings ``(n, dim)`` of modality-B points."""
        x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        return nn.functional.normalize(self.tower_b((x - self.mean_b) / self.std_b), dim=-1)

    def coupling(self, X_a: Any, X_b: Any) -> np.ndarray:
        """A coupling ``(n_a, n_b)`` of held-out points: row-wise softmax of the similarities, rows sum to ``1/n_a``.

        Scored like a GW coupling by :func:`~superwidgets.science.align.foscttm`,
        :func:`~superwidgets.science.align.recall_at_k` and the label-transfer functions.
        """
        with torch.no_grad():
            s = self.embed_a(X_a) @ self.embed_b(X_b).T / self.temperature
            T = torch.softmax(s.double(), dim=1) / s.shape[0]
        return T.numpy()


def fit_two_tower(
    X_a: Any,
    X_b: Any,
    *,
    dim: int = 16,
    hidden: int = 64,
    temperature: float = 0.1,
    epochs: int = 30,
    batch_size: int = 256,
    lr: float = 3e-3,
    seed: int = 0,
) -> TwoTower:
    """Train a :class:`TwoTower` on paired points (row ``i`` of ``X_a`` and of ``X_b`` are the same sample).

    Symmetric InfoNCE (CLIP): in each mini-batch, every A point must pick its own B point among the
    batch's B points and vice versa. Inputs are standardised with their own statistics (kept in
    the model). Adam, seeded batches; CPU float32.

    Parameters
    ----------
    X_a, X_b : array-like (n, d_a), (n, d_b)
        Paired training points (numpy arrays or tensors), no NaN or Inf.
    dim, hidden, temperature : int, int, float
        See :class:`TwoTower`.
    epochs, batch_size, lr, seed : int, int, float, int
        Optimisation settings.

    Returns
    -------
    TwoTower
        In eval mode.

    Raises
    ------
    ValueError
        Unpaired shapes (different row counts), fewer than 2 rows, 1-D inputs, or non-finite values.
    """
    A = np.asarray(X_a, dtype=np.float32)
    B = np.asarray(X_b, dtype=np.float32)
    if A.ndim != 2 or B.ndim != 2:
        raise ValueError(f"X_a and X_b must be 2-D (points × features); got shapes {A.shape} and {B.shape}")
    if len(A) != len(B):
        raise ValueError(f"a two-tower model trains on pairs: X_a has {len(A)} rows but X_b {len(B)}")
    if len(A) < 2:
        raise ValueError("need at least 2 pairs to train a contrastive model")
    if not (np.isfinite(A).all() and np.isfinite(B).all()):
        raise ValueError("X_a and X_b must be finite (no NaN or Inf); drop or impute those rows first")
    gen = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng():
        torch.manual_seed(int(seed))
        model = TwoTower(A.shape[1], B.shape[1], dim=dim, hidden=hidden, temperature=temperature)
    a, b = torch.from_numpy(A), torch.from_numpy(B)
    for name, x in (("a", a), ("b", b)):
        getattr(model, f"mean_{name}").copy_(x.mean(0))
        getattr(model, f"std_{name}").copy_(x.std(0).clamp_min(1e-6))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = len(a)
    bs = max(2, min(int(batch_size), n))
    model.train()
    for _ in range(int(epochs)):
        order = torch.randperm(n, generator=gen)
        for i in range(0, n - bs + 1, bs):
            idx = order[i : i + bs]
            za, zb = model.embed_a(a[idx]), model.embed_b(b[idx])
            logits = za @ zb.T / model.temperature
            target = torch.arange(len(idx))
            loss = (nn.functional.cross_entropy(logits, target) + nn.functional.cross_entropy(logits.T, target)) / 2
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return model
