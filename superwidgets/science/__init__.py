"""Science layer: SAEs and toy models of superposition (more to come: metrics, alignment)."""

from . import align, contrastive, geometry, metrics, sae, singlecell, ssl, study
from .align import Alignment, foscttm, gw_align, recall_at_k
from .contrastive import TwoTower, fit_two_tower
from .geometry import geometric_fidelity, knn_sd_ratio, ridge_r2
from .sae import GatedSAE, JumpReLUSAE, ReLUSAE, TopKSAE, fit_sae, load_sae, load_saelens, save_sae, train_sae
from .singlecell import singlecell_summary, to_anndata
from .ssl import ConvEncoder, train_ssl
from .study import (
    contamination_report,
    knn_sd_test,
    label_transfer_scores,
    morans_i,
    morans_i_difference,
    ridge_r2_by_group,
)
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
    "ConvEncoder",
    "GatedSAE",
    "JumpReLUSAE",
    "ReLUSAE",
    "TopKSAE",
    "ToyConfig",
    "ToyModel",
    "TwoTower",
    "align",
    "contamination_report",
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
    "knn_sd_test",
    "label_transfer_scores",
    "load_sae",
    "load_saelens",
    "metrics",
    "morans_i",
    "morans_i_difference",
    "n_represented",
    "recall_at_k",
    "ridge_r2",
    "ridge_r2_by_group",
    "sae",
    "sample_batch",
    "save_sae",
    "singlecell",
    "singlecell_summary",
    "ssl",
    "study",
    "superposition",
    "to_anndata",
    "train_sae",
    "train_ssl",
    "train_toy",
]
