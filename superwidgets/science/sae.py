"""Sparse autoencoders. This first piece is the plain ReLU SAE the engine's SAE basis is tested with."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ReLUSAE"]


class ReLUSAE(nn.Module):
    """A ReLU sparse autoencoder: ``c = relu((x - b_dec) W_enc + b_enc)``, ``x̂ = c W_dec + b_dec``.

    Parameters
    ----------
    d : int
        Width of the activations it reads.
    n_latents : int
        Number of latents (dictionary size).
    seed : int, optional
        Seed of the initialisation (unit-norm decoder rows, encoder = decoder transposed).

    Attributes
    ----------
    W_enc : Parameter (d, n_latents)
    b_enc : Parameter (n_latents,)
    W_dec : Parameter (n_latents, d)
    b_dec : Parameter (d,)
    """

    def __init__(self, d: int, n_latents: int, seed: int | None = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        w = torch.randn(n_latents, d, generator=gen)
        w = w / w.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(w)
        self.W_enc = nn.Parameter(w.T.clone())
        self.b_enc = nn.Parameter(torch.zeros(n_latents))
        self.b_dec = nn.Parameter(torch.zeros(d))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent codes ``(..., n_latents)``."""
        return torch.relu((x - self.b_dec) @ self.W_enc + self.b_enc)

    def encode_subset(self, x: torch.Tensor, idx: list[int]) -> torch.Tensor:
        """Codes of latents ``idx`` only (``(..., len(idx))``): a thin matrix product."""
        return torch.relu((x - self.b_dec) @ self.W_enc[:, idx] + self.b_enc[idx])

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``(..., d)``."""
        return codes @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``x``."""
        return self.decode(self.encode(x))
