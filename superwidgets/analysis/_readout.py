"""Reading a model's output as the widgets show it: the prediction tensor, its readout, correlations.

Shared by the analysis sessions (and, through them, the widgets). Plain torch + numpy: nothing
here imports Jupyter, traitlets or anywidget.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

__all__ = [
    "MAX_CLASSES",
    "READOUTS",
    "check_output",
    "check_readout",
    "correlate",
    "count_classes",
    "pick_prediction",
    "prediction_of",
    "readout_rows",
]

#: Most outputs a widget draws (one bar or column per class); a vocabulary must be narrowed with ``output=``.
MAX_CLASSES = 1000

#: How outputs become displayed values.
READOUTS = ("softmax", "sigmoid", "identity")


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
    """Validate an ``output=`` argument: ``None`` or a function of the model's output.

    Raises
    ------
    TypeError
        ``output`` is neither.
    """
    if output is not None and not callable(output):
        raise TypeError(f"output must be a function of the model's output, got {type(output).__name__}")
    return output


def check_readout(readout: Any) -> str:
    """Validate a ``readout=`` argument: one of :data:`READOUTS`.

    Raises
    ------
    ValueError
        Any other value (the message lists the valid ones).
    """
    if readout not in READOUTS:
        raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
    return str(readout)


def pick_prediction(out: Any, output: Callable[[Any], Any] | None = None) -> torch.Tensor:
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
    """Outputs per input of a prediction; more than :data:`MAX_CLASSES` is refused with how to narrow it.

    Raises
    ------
    ValueError
        More than :data:`MAX_CLASSES` outputs per input.
    """
    n_out = int(prediction.reshape(prediction.shape[0], -1).shape[1])
    if n_out > MAX_CLASSES:
        raise ValueError(
            f"the model has {n_out} outputs per input, more than a widget draws ({MAX_CLASSES}); pick the "
            "ones to show with output=..., e.g. output=lambda o: o.logits[:, -1, [ids of a few tokens]]"
        )
    return n_out


def readout_rows(out: Any, readout: str, output: Callable[[Any], Any] | None = None) -> np.ndarray:
    """Displayed values ``(batch, classes)`` of a model output: its prediction through ``readout``.

    Parameters
    ----------
    out : Any
        What the model returned for a batch.
    readout : {"softmax", "sigmoid", "identity"}
        Softmax over the classes, an element-wise sigmoid, or the raw values.
    output : callable, optional
        Picks the prediction (see :func:`pick_prediction`).

    Returns
    -------
    numpy.ndarray
        float32 ``(batch, classes)``.
    """
    t = pick_prediction(out, output).detach().float()
    t = t.reshape(t.shape[0], -1)
    if readout == "softmax":
        t = torch.softmax(t, 1)
    elif readout == "sigmoid":
        t = torch.sigmoid(t)
    return t.cpu().numpy()


def correlate(x: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Pearson correlation of ``x`` (n,) with each column of ``factors`` (n, K); 0 where either is constant.

    Returns
    -------
    numpy.ndarray
        float32 ``(K,)``.
    """
    xc = x - x.mean()
    fc = factors - factors.mean(0)
    den = np.sqrt((xc**2).sum() * (fc**2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 0, xc @ fc / den, 0.0)
    return r.astype(np.float32)
