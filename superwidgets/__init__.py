"""superwidgets: see and touch superposition in neural networks, live in JupyterLab.

The engine (``Lens``, edits, bases) imports eagerly and needs only torch and
numpy. Widgets, the model zoo and data sets load on first use, so
``import superwidgets`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from .engine import (
    SAE,
    Ablate,
    Clamp,
    Directions,
    Edit,
    EditError,
    InputError,
    Lens,
    MeanAblate,
    ModelError,
    Neurons,
    ProjectOut,
    Resample,
    RunResult,
    Scale,
    SiteError,
    Steer,
)

__version__ = "0.1.0"

_LAZY = {
    "AlignmentView": ("superwidgets.widgets.align_view", "AlignmentView"),
    "FeatureDashboard": ("superwidgets.widgets.dashboard", "FeatureDashboard"),
    "FeatureLab": ("superwidgets.widgets.lab", "FeatureLab"),
    "SuperpositionExplorer": ("superwidgets.widgets.explorer", "SuperpositionExplorer"),
    "science": ("superwidgets.science", None),
    "analysis": ("superwidgets.analysis", None),
    "zoo": ("superwidgets.zoo", None),
    "data": ("superwidgets.data", None),
    "train_sae": ("superwidgets.science.sae", "train_sae"),
    "widgets": ("superwidgets.widgets", None),
}

__all__ = [
    "SAE",
    "Ablate",
    "AlignmentView",
    "Clamp",
    "Directions",
    "Edit",
    "EditError",
    "FeatureDashboard",
    "FeatureLab",
    "InputError",
    "Lens",
    "MeanAblate",
    "ModelError",
    "Neurons",
    "ProjectOut",
    "Resample",
    "RunResult",
    "Scale",
    "SiteError",
    "Steer",
    "SuperpositionExplorer",
    "analysis",
    "data",
    "science",
    "train_sae",
    "zoo",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module_name, attr = _LAZY[name]
        module = importlib.import_module(module_name)
        value = module if attr is None else getattr(module, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'superwidgets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
