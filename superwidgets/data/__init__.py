"""Offline data sets: real patient tables shipped in scikit-learn and a synthetic neuron world."""

from .cellstate import GENOTYPES, PROGRAM_NAMES, CellStateWorld, cell_states
from .neurons import (
    CHANNEL_NAMES,
    FACTOR_NAMES,
    NeuronRecords,
    NeuronWorld,
    death_risk,
    neurons,
    render_neurons,
)
from .patients import TabularData, breast_cancer, diabetes

__all__ = [
    "CHANNEL_NAMES",
    "FACTOR_NAMES",
    "GENOTYPES",
    "PROGRAM_NAMES",
    "CellStateWorld",
    "NeuronRecords",
    "NeuronWorld",
    "TabularData",
    "breast_cancer",
    "cell_states",
    "death_risk",
    "diabetes",
    "neurons",
    "render_neurons",
]
