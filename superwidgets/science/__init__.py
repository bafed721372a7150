"""Science layer: SAEs and toy models of superposition (more to come: metrics, alignment)."""

from .sae import ReLUSAE
from .toy import (
    ToyConfig,
    ToyModel,
    dimensionality,
    dims_per_feature,
    feature_norms,
    interference,
    n_represented,
    sample_batch,
    superposition,
    train_toy,
)

__all__ = [
    "ReLUSAE",
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
