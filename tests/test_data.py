"""Real patient tables: raw values, units and standardisation travel with the data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import superwidgets as sw


@pytest.mark.parametrize("load", [sw.data.breast_cancer, sw.data.diabetes])
def test_tables_keep_raw_values_and_standardisation(load):
    d = load()
    assert d.X.dtype == torch.float32 and d.X.shape == d.raw.shape
    np.testing.assert_allclose(d.X.numpy(), (d.raw - d.mean) / d.std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(d.X[d.train].numpy().mean(0), 0, atol=1e-5)  # statistics from the train split
    assert len(d.units) == len(d.feature_names)
    assert np.intersect1d(d.train, d.test).size == 0 and len(d.train) + len(d.test) == len(d)
    assert set(d.y.unique().tolist()) == {0, 1}
    with pytest.raises(IndexError, match="out of range"):
        d.record(len(d))


def test_diabetes_units_and_target():
    d = sw.data.diabetes()
    assert len(d) == 442 and d.feature_names[:4] == ["age", "sex", "bmi", "bp"]
    assert d.units[2] == "kg/m²" and d.record(0)["age"] == 59.0
    assert d.target.shape == (442,)
    np.testing.assert_array_equal(d.y.numpy(), (d.target > np.median(d.target[d.train])).astype(int))


def test_wrong_image_size_gets_a_hint():
    torch.manual_seed(0)
    cnn = torch.nn.Sequential(torch.nn.Conv2d(4, 2, 3), torch.nn.Flatten(), torch.nn.Linear(2 * 6 * 6, 2)).eval()
    with sw.Lens(cnn) as lens:
        lens.run(torch.rand(1, 4, 8, 8))
        with pytest.raises(sw.ModelError, match=r"shape \(batch, 4×8×8\) before; this one is \(batch, 3×8×8\)"):
            lens.run(torch.rand(1, 3, 8, 8))
        lens.run(torch.rand(2, 4, 8, 8))  # the lens keeps working
