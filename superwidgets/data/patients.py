"""Real patient tables that ship inside scikit-learn (no download)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

__all__ = ["TabularData", "breast_cancer", "diabetes"]


@dataclasses.dataclass
class TabularData:
    """A table of records with standardised model inputs and raw values.

    Attributes
    ----------
    name : str
        Data set name.
    X : torch.Tensor, shape (n, f), float32
        Standardised inputs, ``(raw - mean) / std``, as the models take them.
    y : torch.Tensor, shape (n,), int64
        Class labels.
    raw : numpy.ndarray, shape (n, f)
        Values in their original units.
    feature_names : list of str
        Column names.
    class_names : list of str
        Label names, indexed by ``y``.
    mean, std : numpy.ndarray, shape (f,)
        Standardisation statistics (from the training split).
    train, test : numpy.ndarray of int
        Row indices of the seeded train/test split.
    description : str
        Where the data come from.
    units : list of str, optional
        Unit of each column where known (``""`` if unitless or unknown).
    target : numpy.ndarray, optional
        A continuous outcome behind the labels (e.g. disease progression).
    """

    name: str
    X: torch.Tensor
    y: torch.Tensor
    raw: np.ndarray
    feature_names: list[str]
    class_names: list[str]
    mean: np.ndarray
    std: np.ndarray
    train: np.ndarray
    test: np.ndarray
    description: str
    units: list[str] | None = None
    target: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def record(self, i: int) -> dict[str, float]:
        """Raw values of record ``i`` as ``{column: value}``."""
        if not 0 <= i < len(self):
            raise IndexError(f"record {i} is out of range; this data set has {len(self)} records (0..{len(self) - 1})")
        return {n: float(v) for n, v in zip(self.feature_names, self.raw[i], strict=True)}

    def __repr__(self) -> str:
        return (
            f"TabularData({self.name!r}: {len(self)} records × {len(self.feature_names)} features, "
            f"classes {self.class_names})"
        )


def _split(y: np.ndarray, seed: int, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified train/test split."""
    rng = np.random.default_rng(seed)
    test_idx: list[int] = []
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        rng.shuffle(rows)
        test_idx.extend(rows[: round(len(rows) * test_fraction)].tolist())
    test = np.sort(np.asarray(test_idx))
    return np.setdiff1d(np.arange(len(y)), test), test


def diabetes(seed: int = 0, test_fraction: float = 0.25) -> TabularData:
    """The diabetes table of Efron et al. (2004): 442 patients, 10 baseline variables.

    Raw values in original units (scikit-learn's ``load_diabetes(scaled=False)``):
    age (years), sex (1/2), body-mass index (kg/m²), mean blood pressure (mmHg)
    and six blood serum measurements. ``target`` is disease progression one
    year after baseline; the labels split it at the median of the training
    split (0 = lower progression, 1 = higher progression).

    Parameters
    ----------
    seed : int
        Seed of the stratified train/test split.
    test_fraction : float
        Share of patients held out.
    """
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(scaled=False)
    raw = np.asarray(bunch.data, dtype=np.float64)
    target = np.asarray(bunch.target, dtype=np.float64)
    names = ["age", "sex", "bmi", "bp", "tc", "ldl", "hdl", "tch", "ltg", "glu"]
    units = ["years", "1/2", "kg/m²", "mmHg", "mg/dL", "mg/dL", "mg/dL", "ratio", "log mg/dL", "mg/dL"]
    rough = (target > np.median(target)).astype(np.int64)
    train, test = _split(rough, seed, test_fraction)
    y = (target > np.median(target[train])).astype(np.int64)
    mean, std = raw[train].mean(0), raw[train].std(0)
    return TabularData(
        name="diabetes",
        X=torch.from_numpy(((raw - mean) / std).astype(np.float32)),
        y=torch.from_numpy(y),
        raw=raw,
        feature_names=names,
        class_names=["lower progression", "higher progression"],
        mean=mean,
        std=std,
        train=train,
        test=test,
        description="Diabetes data (Efron et al. 2004; scikit-learn load_diabetes): 442 patients.",
        units=units,
        target=target,
    )


def breast_cancer(seed: int = 0, test_fraction: float = 0.25) -> TabularData:
    """The Wisconsin diagnostic breast cancer table (569 patients, 30 features).

    Features describe cell nuclei in digitised images of fine-needle aspirates
    (radius, texture, perimeter, area, smoothness, ... as mean, standard error
    and worst value). Labels: 0 = malignant, 1 = benign.

    Parameters
    ----------
    seed : int
        Seed of the stratified train/test split.
    test_fraction : float
        Share of patients held out.
    """
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    raw = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    train, test = _split(y, seed, test_fraction)
    mean = raw[train].mean(0)
    std = raw[train].std(0)
    x = ((raw - mean) / std).astype(np.float32)
    return TabularData(
        name="breast-cancer",
        X=torch.from_numpy(x),
        y=torch.from_numpy(y),
        raw=raw,
        feature_names=[str(n) for n in bunch.feature_names],
        class_names=[str(n) for n in bunch.target_names],
        mean=mean,
        std=std,
        train=train,
        test=test,
        description="Wisconsin diagnostic breast cancer data (scikit-learn load_breast_cancer): 569 patients.",
        units=[_unit(str(n)) for n in bunch.feature_names],
    )


def _unit(name: str) -> str:
    """Units of the breast-cancer columns (lengths from image pixels; the data set gives no physical scale)."""
    for key, unit in (("area", "px²"), ("radius", "px"), ("perimeter", "px"), ("texture", "grey-level SD")):
        if key in name:
            return unit
    return ""
