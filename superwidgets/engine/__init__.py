"""The intervention engine: sites, bases, edits and the Lens (torch + numpy only).

Nothing here imports Jupyter, traitlets or plotting libraries: everything a
widget can do, a script can do with the engine alone.
"""

from .attribution import attribute, top_effects
from .bases import SAE, Basis, Directions, Neurons
from .edits import Ablate, Clamp, Edit, MeanAblate, Op, ProjectOut, Resample, Scale, Steer
from .lens import EditError, InputError, Lens, LensClosedError, ModelError, Preempted, RunResult, SiteInfo
from .sites import SiteError, list_sites, resolve_site

__all__ = [
    "SAE",
    "Ablate",
    "Basis",
    "Clamp",
    "Directions",
    "Edit",
    "EditError",
    "InputError",
    "Lens",
    "LensClosedError",
    "MeanAblate",
    "ModelError",
    "Neurons",
    "Op",
    "Preempted",
    "ProjectOut",
    "Resample",
    "RunResult",
    "Scale",
    "SiteError",
    "SiteInfo",
    "Steer",
    "attribute",
    "list_sites",
    "resolve_site",
    "top_effects",
]
