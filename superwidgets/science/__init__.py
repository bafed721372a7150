"""Science layer: SAEs and toy models of superposition (more to come: metrics, alignment)."""

from . import align, contrastive, geometry, metrics, sae
from .align import Alignment, foscttm, gw_align, recall_at_k
from .contrastive import TwoTower, fit_two_tower
from .geometry import geometric_fidelity, knn_sd_ratio, ridge_r2
from .sae import GatedSAE, JumpReLUSAE, ReLUSAE, TopKSAE, fit_sae, load_sae, load_saelens, save_sae, train_sae
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
    "Alignment",
    "GatedSAE",
    "JumpReLUSAE",
    "ReLUSAE",
    "TopKSAE",
    "ToyConfig",
    "ToyModel",
    "TwoTower",
    "align",
    "contrastive",
    "dimensionality",
    "dims_per_feature",
    "feature_norms",
    "fit_sae",
    "fit_two_tower",
    "foscttm",
    "geometric_fidelity",
    "geometry",
    "gw_align",
    "interference",
    "knn_sd_ratio",
    "load_sae",
    "load_saelens",
    "metrics",
    "n_represented",
    "recall_at_k",
    "ridge_r2",
    "sae",
    "sample_batch",
    "save_sae",
    "superposition",
    "train_sae",
    "train_toy",
]
