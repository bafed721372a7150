"""Data helpers the widgets share: raw record tables, ground-truth factors, correlations, image thumbnails."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


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


def _corr(x: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Pearson correlation of ``x`` (n,) with each column of ``factors`` (n, K); 0 where either is constant."""
    xc = x - x.mean()
    fc = factors - factors.mean(0)
    den = np.sqrt((xc**2).sum() * (fc**2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 0, xc @ fc / den, 0.0)
    return r.astype(np.float32)


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


#: Most outputs a widget draws (one bar or column per class); a vocabulary must be narrowed with ``output=``.
MAX_CLASSES = 1000


def prediction_of(out: Any) -> torch.Tensor:
    """The prediction inside a model's output, as the widgets read it by default.

    The output itself when it is a tensor; else its ``logits`` (a Hugging Face ``ModelOutput`` or a
    dict), else the first tensor of a tuple, list, dict or dataclass. A 3-D result ``(batch,
    positions, classes)`` (a language model's logits) gives its last position: the next-token
    prediction.

    Parameters
    ----------
    out : Any
        What ``model(x)`` returned.

    Returns
    -------
    torch.Tensor
        ``(batch, ...)``.

    Raises
    ------
    TypeError
        No tensor in the output; the message says how to pick one with ``output=``.
    """
    import dataclasses
    from collections.abc import Mapping

    from ..engine.sites import SiteError, get_element

    # the engine's elements of an output (as sites read them): "logits" first, else the first tensor
    if isinstance(out, Mapping) and "logits" in out:
        elements: Any = ["logits"]
    elif isinstance(out, (tuple, list, Mapping)):
        elements = range(len(out))
    elif dataclasses.is_dataclass(out) and not isinstance(out, type):
        elements = range(len(dataclasses.fields(out)))
    else:
        elements = [0]
    t = None
    for element in elements:
        try:
            t = get_element(out, element)
            break
        except SiteError:
            continue
    if not isinstance(t, torch.Tensor):
        raise TypeError(
            f"could not find a prediction tensor in the model's output ({type(out).__name__}); "
            "pass output=... to pick it, e.g. output=lambda out: out.logits"
        )
    return t[:, -1] if t.ndim == 3 else t


def check_output(output: Any) -> Any:
    """Validate a widget's ``output=`` argument: ``None`` or a function of the model's output."""
    if output is not None and not callable(output):
        raise TypeError(f"output must be a function of the model's output, got {type(output).__name__}")
    return output


def pick_prediction(out: Any, output: Any = None) -> torch.Tensor:
    """The prediction tensor of a model output: ``output(out)`` when given, else :func:`prediction_of`.

    Raises
    ------
    ValueError
        ``output`` raised (its error is named).
    TypeError
        No tensor, or a tensor that does not hold numbers.
    """
    if output is None:
        t = prediction_of(out)
    else:
        try:
            t = output(out)
        except Exception as exc:
            raise ValueError(f"output=... failed on the model's output: {type(exc).__name__}: {exc}") from exc
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"output=... must return a tensor (batch, classes), got {type(t).__name__}")
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"the prediction must hold numbers (batch, classes); got dtype {t.dtype}")
    return t


def count_classes(prediction: torch.Tensor) -> int:
    """Outputs per input of a prediction; more than :data:`MAX_CLASSES` is refused with how to narrow it."""
    n_out = int(prediction.reshape(prediction.shape[0], -1).shape[1])
    if n_out > MAX_CLASSES:
        raise ValueError(
            f"the model has {n_out} outputs per input, more than a widget draws ({MAX_CLASSES}); pick the "
            "ones to show with output=..., e.g. output=lambda o: o.logits[:, -1, [ids of a few tokens]]"
        )
    return n_out


def check_tokens(tokens: Any, n: int) -> list[list[str]] | None:
    """Validate a widget's ``tokens=``: ``None``, or one list of token strings per input (``n``)."""
    if tokens is None:
        return None
    if isinstance(tokens, str) or len(tokens) != n:
        raise ValueError(f"tokens must have one list of token strings per input ({n})")
    return [[str(t) for t in row] for row in tokens]
