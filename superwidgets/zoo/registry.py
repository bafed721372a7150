"""Model registry: architecture, data and shipped weights of each reference model."""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["WEIGHTS", "Entry", "available", "build", "load"]

WEIGHTS = Path(__file__).parent / "weights"


@dataclasses.dataclass(frozen=True)
class Entry:
    """A reference model: how to build it, its data, how to train it."""

    name: str
    architecture: Callable[[], nn.Module]
    data: Callable[[], Any]
    description: str
    train_steps: int = 300
    lr: float = 3e-3
    weight_decay: float = 0.2


def _breast_cancer_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(
            [
                ("inp", nn.Linear(30, 16)),
                ("hidden", nn.ReLU()),
                ("out", nn.Linear(16, 2)),
            ]
        )
    )


def _breast_cancer_data() -> Any:
    from ..data.patients import breast_cancer

    return breast_cancer()


_REGISTRY: dict[str, Entry] = {
    "breast-cancer-mlp": Entry(
        name="breast-cancer-mlp",
        architecture=_breast_cancer_mlp,
        data=_breast_cancer_data,
        description="30 nuclear-morphology features → 16 ReLU units ('hidden') → malignant/benign logits.",
    ),
}


def available() -> list[str]:
    """Names of the reference models."""
    return sorted(_REGISTRY)


def _entry(name: str) -> Entry:
    if name in _REGISTRY:
        return _REGISTRY[name]
    hits = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.4)
    hint = f"did you mean {' or '.join(repr(h) for h in hits)}?" if hits else f"available: {available()}"
    raise ValueError(f"unknown model {name!r}; {hint}")


def build(name: str) -> nn.Module:
    """The untrained architecture of model ``name`` (seeded initialisation)."""
    return _entry(name).architecture()


def load(name: str) -> tuple[nn.Module, Any]:
    """Load reference model ``name`` with its shipped weights, and its data.

    Parameters
    ----------
    name : str
        One of :func:`available`.

    Returns
    -------
    model : nn.Module
        In eval mode, weights from ``superwidgets/zoo/weights/<name>.safetensors``.
    data : object
        The model's data set (e.g. :class:`superwidgets.data.TabularData`).

    Raises
    ------
    FileNotFoundError
        If the weights are missing; rebuild them with
        ``python -m superwidgets.zoo.train NAME``.
    """
    from safetensors.torch import load_file

    entry = _entry(name)
    path = WEIGHTS / f"{name}.safetensors"
    if not path.exists():
        raise FileNotFoundError(
            f"no shipped weights at {path}; train them with: python -m superwidgets.zoo.train {name}"
        )
    model = entry.architecture()
    model.load_state_dict(load_file(str(path)))
    model.eval()
    return model, entry.data()


def card(name: str) -> dict[str, Any]:
    """The model card written by the training script (metrics, steps, seed)."""
    path = WEIGHTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}
