"""UI-free analysis sessions: what each widget shows, as plain Python objects.

The layer between the engine and the widgets (``DESIGN.md`` §Layers): a widget
validates its controls, makes one call here and writes the result to its traits;
a script gets the same numbers from the same objects. Nothing here imports
Jupyter, traitlets or anywidget, and nothing here installs hooks (the engine does).
"""

from __future__ import annotations

from .align import AlignmentResult, AlignmentSession
from .rank import RANK_BY, FeatureRanking, rank_features, search_features

__all__ = ["RANK_BY", "AlignmentResult", "AlignmentSession", "FeatureRanking", "rank_features", "search_features"]
