"""Offline data sets: real patient tables shipped in scikit-learn (more to come)."""

from .patients import TabularData, breast_cancer

__all__ = ["TabularData", "breast_cancer"]
