"""Data helpers the widgets share: raw record tables, ground-truth factors, correlations, image thumbnails."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

# the readout helpers live in the analysis layer; the widgets re-use them from there
from ..analysis._readout import MAX_CLASSES, check_output, count_classes, pick_prediction, prediction_of
from ..analysis._readout import correlate as _corr

__all__ = [
    "MAX_CLASSES",
    "_corr",
    "check_output",
    "check_tokens",
    "count_classes",
    "pick_prediction",
    "prediction_of",
]


def _raw_table(inputs: Any, X: torch.Tensor) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray] | None:
    """(names, raw values, mean, std) when ``inputs`` is a table with raw values and standardisation."""
    names = getattr(inputs, "feature_names", None)
    raw, mean, std = getattr(inputs, "raw", None), getattr(inputs, "mean", None), getattr(inputs, "std", None)
    if names is None or raw is None or mean is None or std is None or X.ndim != 2:
        return None
    raw = np.asarray(raw, dtype=np.float64)
    if raw.shape != tuple(X.shape) or len(names) != X.shape[1]:
        return None
    return [str(n) for n in names], raw, np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)


def _ground_truth(source: Any, n: int) -> tuple[np.ndarray | None, list[str]]:
    """(factors (n, K), names) from an object with ``.factors``/``.factor_names`` or an (array, names) pair."""
    if isinstance(source, tuple) and len(source) == 2:
        factors, names = source
    elif hasattr(source, "factors") and hasattr(source, "factor_names"):
        factors, names = source.factors, source.factor_names
    else:
        return None, []
    f = np.asarray(factors, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] != n:
        raise ValueError(f"ground-truth factors must have shape ({n}, K) to match the inputs, got {f.shape}")
    if len(names) != f.shape[1]:
        raise ValueError(f"got {len(names)} factor names for {f.shape[1]} factors")
    return f, [str(x) for x in names]


_RGB = np.array([[0.2, 1.0, 0.2], [0.25, 0.45, 1.0], [1.0, 0.25, 0.85], [1.0, 0.85, 0.1]], dtype=np.float32)


def _thumbnails(x: torch.Tensor, size: int = 24) -> np.ndarray:
    """RGB composites (G, 3, size, size) of images (G, C, H, W)."""
    small = torch.nn.functional.adaptive_avg_pool2d(x.detach().float(), size).cpu().numpy()
    lo, hi = small.min(axis=(1, 2, 3), keepdims=True), small.max(axis=(1, 2, 3), keepdims=True)
    small = (small - np.minimum(lo, 0)) / (np.maximum(hi, 1) - np.minimum(lo, 0))
    c = small.shape[1]
    colors = _RGB[np.arange(c) % len(_RGB)] if c > 1 else np.ones((1, 3), np.float32)
    rgb = np.einsum("gchw,ck->gkhw", small, colors)
    return np.clip(rgb, 0, 1).astype(np.float32)


def check_tokens(tokens: Any, n: int) -> list[list[str]] | None:
    """Validate a widget's ``tokens=``: ``None``, or one list of token strings per input (``n``)."""
    if tokens is None:
        return None
    if isinstance(tokens, str) or len(tokens) != n:
        raise ValueError(f"tokens must have one list of token strings per input ({n})")
    return [[str(t) for t in row] for row in tokens]
