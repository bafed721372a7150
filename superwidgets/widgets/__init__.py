"""Jupyter widgets (anywidget + traitlets): thin views over the engine and science layers."""

from .align_view import AlignmentView
from .dashboard import FeatureDashboard
from .explorer import SuperpositionExplorer
from .lab import FeatureLab

__all__ = ["AlignmentView", "FeatureDashboard", "FeatureLab", "SuperpositionExplorer"]
