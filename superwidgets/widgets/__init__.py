"""Jupyter widgets (anywidget + traitlets): thin views over the engine and science layers."""

from .explorer import SuperpositionExplorer
from .lab import FeatureLab

__all__ = ["FeatureLab", "SuperpositionExplorer"]
