"""The neuron-world reference models: shipped weights load, predict, and the narrow bottleneck is superposed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _util import check_retraining

from superwidgets.zoo import registry, train

NARROW = ("neuron-cnn-narrow", "neuron-record-mlp-narrow")
WIDE = ("neuron-cnn-wide", "neuron-record-mlp-wide")
NAMES = NARROW + WIDE


@pytest.fixture(scope="module")
def loaded():
    """Each model loaded from its shipped weights, with the world (generated once, shared)."""
    return {name: registry.load(name) for name in NAMES}


@pytest.fixture(scope="module")
def decoded(loaded):
    """Per-factor decodability from each model's bottleneck, and the factor ceilings."""
    world = loaded[NAMES[0]][1]
    return (
        {name: train.bottleneck_decodability(model, world) for name, (model, _) in loaded.items()},
        dict(zip(world.factor_names, train.factor_ceilings(world), strict=True)),
    )


def _decodable(r2: dict[str, float], ceilings: dict[str, float]) -> list[str]:
    return [k for k, v in r2.items() if v > max(train.DECODABLE_R2, ceilings[k])]


def _table(r2: dict[str, float], ceilings: dict[str, float]) -> str:
    hits = _decodable(r2, ceilings)
    return "\n".join(
        f"  {k:<22} R² {v:6.3f}  (from other factors {ceilings[k]:6.3f}){'  *' if k in hits else ''}"
        for k, v in r2.items()
    )


def test_load_never_trains_and_shares_the_world(monkeypatch, loaded):
    def boom(*args, **kwargs):
        raise AssertionError("load() must not train")

    monkeypatch.setattr(train, "fit_neuron_model", boom)
    model, world = registry.load("neuron-record-mlp-narrow")
    assert not model.training
    assert world is loaded["neuron-cnn-wide"][1]  # one world per process for every neuron model
    assert len(world) == registry.NEURON_CELLS and world.images.shape[1:] == (4, 32, 32)
    assert set(NAMES) <= set(registry.available())


@pytest.mark.parametrize("name", NAMES)
def test_shapes_sites_and_outputs(name, loaded):
    model, world = loaded[name]
    m = registry.card(name)["bottleneck_width"]
    x = model.world_inputs(world)[:5]
    modules = dict(model.named_modules())
    seen: dict[str, tuple[int, ...]] = {}
    handles = [
        modules[site].register_forward_hook(lambda mod, inp, out, site=site: seen.__setitem__(site, tuple(out.shape)))
        for site in modules
        if site
    ]
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        for h in handles:
            h.remove()
    assert logits.shape == (5, 2)
    assert seen["bottleneck"] == (5, m) and seen["disease_head"] == (5, 2)
    if "cnn" in name:
        assert seen["conv.block1"] == (5, 16, 16, 16)
        assert seen["conv.block1.relu"] == (5, 16, 32, 32)
        assert seen["conv.block2"] == (5, 32, 8, 8)
        assert seen["conv.block3"] == (5, 64, 4, 4)
        assert seen["fc"] == (5, 128)
    else:
        assert seen["encoder"] == (5, 64)
    with torch.no_grad():
        assert model.encode(x).shape == (5, m)
        assert model.predict_outcome(x).shape == (5,)
        assert model.predict_factors(x).shape == (5, 20)
        assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", NAMES)
def test_better_than_chance_on_held_out_cells(name, loaded):
    model, world = loaded[name]
    te = world.records.test
    with torch.no_grad():
        x = model.world_inputs(world)[te]
        logits = model(x).numpy()
        outcome = model.predict_outcome(x).numpy()
    y = world.disease[te]
    auc = train._auc(logits[:, 1] - logits[:, 0], y)
    r2 = 1 - ((world.outcome[te] - outcome) ** 2).sum() / ((world.outcome[te] - world.outcome[te].mean()) ** 2).sum()
    acc = float((logits.argmax(1) == y).mean())
    # disease is invisible in the images (only its correlates are), so the CNNs are judged on AUC
    assert auc > (0.6 if "cnn" in name else 0.95), f"{name}: disease AUC {auc:.3f}"
    # the narrow record MLP gives much of its 6 dimensions to the 20 factors, so less to the outcome
    assert r2 > (0.2 if "cnn" in name else 0.7 if "narrow" in name else 0.9), f"{name}: outcome R² {r2:.3f}"
    if "mlp" in name:
        assert acc > 0.95
    card = registry.card(name)
    assert card["test_auc"] == pytest.approx(auc, abs=1e-4)
    assert card["test_accuracy"] == pytest.approx(acc, abs=1e-4)


@pytest.mark.parametrize("narrow, wide", list(zip(NARROW, WIDE, strict=True)))
def test_narrow_bottleneck_is_in_superposition(narrow, wide, loaded, decoded):
    r2, ceilings = decoded
    m = loaded[narrow][0].width
    assert m < 20
    got = _decodable(r2[narrow], ceilings)
    report = (
        f"{narrow}: {len(got)} factors decodable (held-out R² of a ReLU readout > {train.DECODABLE_R2} and above "
        f"what the other factors predict) from a {m}-dimensional bottleneck:\n{_table(r2[narrow], ceilings)}"
    )
    print(report)
    assert len(got) > m, report
    # a linear readout explains at most ~m units of R² over (nearly) uncorrelated factors; the ReLU
    # readout explains more, because directions are shared by sparse factors: superposition
    assert sum(max(v, 0.0) for v in r2[narrow].values()) > m, report
    wide_got = _decodable(r2[wide], ceilings)
    print(f"{wide}: {len(wide_got)} decodable from {loaded[wide][0].width} dimensions")
    assert len(wide_got) >= len(got), f"{wide} decodes {len(wide_got)} < {narrow} {len(got)}"
    assert registry.card(narrow)["decodable_factors"] == len(got)
    assert registry.card(wide)["decodable_factors"] == len(wide_got)


def test_wrong_inputs_raise_clear_errors(loaded):
    cnn, _ = loaded["neuron-cnn-narrow"]
    with pytest.raises(ValueError, match=r"\(B, 4, 32, 32\)"):
        cnn(torch.zeros(2, 4, 64, 64))
    mlp, _ = loaded["neuron-record-mlp-narrow"]
    with pytest.raises(ValueError, match=r"\(B, 32\)"):
        mlp(torch.zeros(2, 31))


def test_linear_decodability_is_ridge_r2():
    rng = np.random.default_rng(0)
    f = rng.standard_normal((400, 3))
    codes = np.c_[f[:, 0], f[:, 1] + 0.5 * f[:, 2]]
    r2 = train.decodability(codes, f, np.arange(300), np.arange(300, 400), readout="linear")
    assert r2[0] > 0.99 and 0.7 < r2[1] < 0.9 and 0.1 < r2[2] < 0.3


def test_relu_readout_decodes_sparse_factors_in_superposition():
    # three sparse, non-negative factors stored in two dimensions as a triangle (Elhage et al.)
    rng = np.random.default_rng(0)
    f = rng.uniform(0.2, 1.0, (2000, 3)) * (rng.random((2000, 3)) < 0.1)
    angles = 2 * np.pi * np.arange(3) / 3
    codes = f @ np.c_[np.cos(angles), np.sin(angles)]
    fit, ev = np.arange(1500), np.arange(1500, 2000)
    linear = train.decodability(codes, f, fit, ev, readout="linear")
    relu = train.decodability(codes, f, fit, ev)
    assert (relu > 0.8).all(), relu  # 3 factors from 2 dimensions
    assert linear.sum() < 2.05 and (linear < 0.75).all(), linear  # Σ R² ≤ m for a linear readout
    with pytest.raises(ValueError, match="readout"):
        train.decodability(codes, f, fit, ev, readout="mlp")


def test_record_mlp_retraining_is_deterministic(tmp_path, monkeypatch):
    check_retraining("neuron-record-mlp-narrow", tmp_path, monkeypatch)


def test_weights_are_small():
    for name in NAMES:
        assert (registry.WEIGHTS / f"{name}.safetensors").stat().st_size < 1_000_000
