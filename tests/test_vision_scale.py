"""Vision at size: FeatureLab on a ResNet-50 (torchvision's architecture, random weights) at a
``layer3`` channel site, 224 × 224 images, spatial maps included.

The timing (one steering update ÷ one plain forward, target ≤ 0.6) is measured by
``python -m bench._resnet``, not here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

import superwidgets as sw
from superwidgets.engine.lens import _Forward

ROOT = Path(__file__).resolve().parent.parent


def _resnet_module():
    """``bench/_resnet.py``, loaded by path (``bench`` is not an installed package)."""
    spec = importlib.util.spec_from_file_location("_bench_resnet", ROOT / "bench" / "_resnet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def resnet():
    return _resnet_module().resnet50(seed=0)


def test_the_resnet50_is_torchvisions_shape(resnet):
    # torchvision.models.resnet50(): 25,557,032 parameters, the same module paths
    assert sum(p.numel() for p in resnet.parameters()) == 25_557_032
    names = dict(resnet.named_modules())
    for path in ("conv1", "bn1", "maxpool", "layer1.0.downsample.0", "layer3", "layer3.5", "layer3.5.conv2", "fc"):
        assert path in names
    assert [len(getattr(resnet, f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]
    assert names["layer3.5.conv3"].out_channels == 1024 and resnet.fc.in_features == 2048
    assert not resnet.training
    again = _resnet_module().resnet50(seed=0)
    assert torch.equal(again.layer3[5].conv2.weight, resnet.layer3[5].conv2.weight)  # seeded


def _to_layer3(m: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return m.layer3(m.layer2(m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(x)))))))


def _from_layer3(m: torch.nn.Module, h: torch.Tensor) -> torch.Tensor:
    return m.fc(torch.flatten(m.avgpool(m.layer4(h)), 1))


def test_featurelab_steers_a_layer3_channel_with_spatial_maps(resnet):
    images = torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    lens = sw.Lens(resnet)
    try:
        lab = sw.FeatureLab(lens, inputs=images, site="layer3", cohort_top=0)
        assert lab.error == ""
        assert len(lab.feature_names) == 1024 and lab.image.shape == (3, 224, 224)
        assert "torch.fx" in lens.resume_info and "full forwards" not in lens.resume_info
        channel = 17
        lab.select(channel)
        with lens.off(), torch.no_grad():
            h3 = _to_layer3(resnet, images[:1])
        assert lab.spatial.shape == (14, 14)
        clean_map = h3[0, channel].numpy()
        np.testing.assert_allclose(lab.spatial, clean_map, rtol=1e-5, atol=1e-5 * np.abs(clean_map).max())

        steer = lab.steer.copy()
        steer[channel] = 4.0
        lab.steer = steer  # one update: the shown image, resumed from layer3
        assert lab.error == ""
        with lens.off(), torch.no_grad():
            add = torch.zeros(1, 1024, 1, 1)
            add[0, channel] = 4.0
            want = _from_layer3(resnet, h3 + add).softmax(-1)[0].numpy()
        np.testing.assert_allclose(lab.edited, want, rtol=1e-4, atol=1e-6)
        assert not np.allclose(lab.edited, lab.baseline, rtol=0, atol=1e-7)  # the steer moved the prediction
        # the map shows the edited activation: the steered channel moved by 4 at every position
        np.testing.assert_allclose(lab.spatial, clean_map + 4.0, rtol=1e-5, atol=1e-4)
        assert lab.spatial.shape == (14, 14)
    finally:
        lens.close()
    assert not any(isinstance(m.__dict__.get("forward"), _Forward) for m in resnet.modules())
