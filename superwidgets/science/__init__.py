"""Science layer: SAEs (more to come: toy models, metrics, alignment)."""

from .sae import ReLUSAE

__all__ = ["ReLUSAE"]
