"""Unpack the data objects this package hands out into a tensor of model inputs.

Shared by the widgets (FeatureLab) and the science layer (``train_sae``), so
that both accept the same things: a tensor or array of inputs, a data set with
``.X`` (``TabularData``, ``NeuronRecords``) or a synthetic ``NeuronWorld``
(its images).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["as_inputs"]


def as_inputs(inputs: Any) -> tuple[torch.Tensor, list[str] | None, list[str] | None]:
    """Normalise ``inputs`` to ``(X, label text per row, class names)``.

    Parameters
    ----------
    inputs : Tensor, ndarray, data set with ``.X`` or NeuronWorld
        What to feed a model. A ``NeuronWorld`` gives its images (``(n, 4, S, S)``);
        a data set gives ``.X`` and, when it has them, ``.y`` and ``.class_names``.

    Returns
    -------
    X : Tensor, shape (n, ...)
        The inputs.
    labels : list of str or None
        One caption per row (its label's class name), when the data has labels.
    class_names : list of str or None
        Names of the classes, when the data has them.

    Raises
    ------
    TypeError
        ``inputs`` is none of the above.
    ValueError
        ``X`` has no rows or is not at least 2-D.
    """
    if hasattr(inputs, "images") and hasattr(inputs, "factors"):  # a synthetic neuron world
        X = torch.as_tensor(np.asarray(inputs.images, dtype=np.float32))
        records = getattr(inputs, "records", None)
        class_names = getattr(records, "class_names", None)
        y = getattr(inputs, "disease", None)
        labels = None
        if y is not None:
            labels = [class_names[int(v)] if class_names else str(int(v)) for v in np.asarray(y).reshape(-1)]
        return X, labels, class_names
    X = getattr(inputs, "X", inputs)
    if isinstance(X, np.ndarray):
        X = torch.from_numpy(X)
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"inputs must be a data set with .X or a tensor/array of inputs, got {type(inputs).__name__}")
    if X.ndim < 2 or X.shape[0] == 0:
        raise ValueError(f"inputs must have shape (n, ...) with n >= 1, got {tuple(X.shape)}")
    class_names = getattr(inputs, "class_names", None)
    y = getattr(inputs, "y", None)
    labels = None
    if y is not None:
        ys = [int(v) for v in torch.as_tensor(y).reshape(-1).tolist()]
        labels = [class_names[v] if class_names and 0 <= v < len(class_names) else str(v) for v in ys]
    return X, labels, class_names
