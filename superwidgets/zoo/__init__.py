"""Small reference models with shipped safetensors weights.

>>> model, data = load("breast-cancer-mlp")   # doctest: +SKIP
"""

from .registry import available, build, load

__all__ = ["available", "build", "load"]
