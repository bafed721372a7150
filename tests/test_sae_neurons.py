"""A Gated SAE on the narrow neuron CNN's bottleneck, judged on held-out (test) cells.

``tests/test_sae.py`` already checks that a TopK SAE's latents track the true
factors better than the raw units over all cells; here the SAE is Gated,
trained on the train cells only, and the comparisons are made on the test
cells: MCC with the true factors, and the geometric fidelity of the codes to
the held-out death-risk outcome (``geometry.knn_sd_ratio``, ``ridge_r2``).
Every bar is a comparison computed at run time (never a number from the
weights), so the zoo model can be retrained.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import superwidgets as sw
from superwidgets.science import geometry, metrics

WIDTH, STEPS, SEED = 24, 1500, 0


@pytest.fixture(scope="module")
def run():
    """Train the SAE once; return raw test activations, test codes, test factors and outcome."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 6-wide SAE is tiny: one thread is fastest and bit-reproducible
    try:
        model, world = sw.zoo.load("neuron-cnn-narrow")
        x = model.world_inputs(world)
        train, test = world.records.train, world.records.test
        with sw.Lens(model) as lens:
            sae = sw.train_sae(
                lens, "bottleneck", x[train], arch="gated", width=WIDTH, steps=STEPS, seed=SEED, progress=False
            )
            raw = lens.activations(x[test], "bottleneck")["bottleneck"]
        with torch.no_grad():
            codes = sae.encode(raw)
    finally:
        torch.set_num_threads(threads)
    return {
        "sae": sae,
        "raw": raw,
        "codes": codes,
        "factors": world.factors[test],
        "outcome": world.outcome[test],
    }


def test_gated_sae_latents_match_the_true_factors_better_than_the_units(run):
    raw, codes, f = run["raw"], run["codes"], run["factors"]
    m = raw.shape[1]
    ours = metrics.mcc(codes, f, top=m)  # the m best-matched factors, comparable with the m units
    base = metrics.mcc(raw, f)
    ev = metrics.evaluate_sae(run["sae"], raw, factors=f)
    print(
        f"test cells, MCC over the {m} best-matched factors: raw units {base:.3f}, Gated SAE latents {ours:.3f}; "
        f"L0 {ev['l0']:.2f}, FVU {ev['fvu']:.3f}, dead {ev['dead_fraction']:.2f}"
    )
    assert ours > base + 0.05
    assert ev["fvu"] < 0.2
    assert ev["dead_fraction"] < 0.5


def _fidelity(run) -> dict[str, dict[str, float]]:
    y = run["outcome"]
    return {name: geometry.geometric_fidelity(run[name].numpy(), y) for name in ("raw", "codes")}


def test_gated_sae_codes_keep_the_outcome_linearly_readable(run):
    """The SAE keeps what a linear read-out finds (ridge R²) while using more dimensions."""
    fid = _fidelity(run)
    for name, f in fid.items():
        print(f"{name:5s}: " + ", ".join(f"{k} {v:.3f}" for k, v in f.items()))
    assert fid["codes"]["ridge_r2"] > 0.8 * fid["raw"]["ridge_r2"] > 0  # most of the linear content is kept
    assert fid["codes"]["effective_rank"] > fid["raw"]["effective_rank"]


# NOT HOLDING (measured while writing this test; numbers in docs/sae.md). Over a grid of sensible
# settings (width 12/24/48 × l1 0.1/0.3/1.0 × seeds 0/1, kNN k = 5/10/20/50, test cells) the Gated
# SAE's codes do not give reliably tighter outcome neighbourhoods than the raw 6 units: at the
# settings used here (width 24, default l1) the SAE's kNN SD ratio is a little *higher* (≈ 0.50 vs
# 0.49 at k = 10). Only the sparsest, lossiest SAE (width 12, l1 = 1.0: L0 ≈ 1.2, FVU ≈ 0.12,
# lower ridge R²) is lower at every k for both seeds. An SAE re-encodes the same 6-D information,
# so its neighbourhoods are about as good as the raw code's. The expectation is kept as a
# What the test asserts instead is what holds: the SAE codes keep the raw code's outcome
# neighbourhoods (within 10 %: the Gated grid measured 0.486-0.521 against 0.489, and this SAE gives
# 0.511 on an AMD EPYC and 0.518 on an Intel Xeon, whose BLAS rounds the training differently, so a 5 %
# bar passed on one machine and failed on the other); both numbers print on every run. The *global*
# geometry does improve — see tests/test_alignment_experiment.py (GW alignment to another modality).
def test_gated_sae_codes_keep_the_outcome_neighbourhoods(run):
    y = run["outcome"]
    raw = geometry.knn_sd_ratio(run["raw"].numpy(), y, k=10)
    ours = geometry.knn_sd_ratio(run["codes"].numpy(), y, k=10)
    print(
        f"test cells, kNN SD ratio of the outcome (k = 10, lower is better): raw units {raw:.4f}, "
        f"Gated SAE codes {ours:.4f}"
    )
    assert np.isfinite(raw) and np.isfinite(ours)
    assert ours < 1.10 * raw


def test_sae_codes_restore_the_geometry_of_the_true_image_factors():
    """Linear CKA with the factors the images show: superposition lowers it, SAE codes raise it again.

    Unlike the outcome's kNN SD ratio, this measure sees superposition here: the wide bottleneck
    (48 dimensions) is far closer to the true factors' geometry than the narrow one (6). Two seeds of a
    64-latent Gated SAE (3,000 steps) on the narrow bottleneck both move towards the wide code.
    """
    from superwidgets.data.neurons import IMAGE_FACTORS
    from superwidgets.science.sae import fit_sae

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        world = sw.zoo.load("neuron-cnn-narrow")[1]
        train, test = world.records.train, world.records.test
        truth = world.factors[test][:, [world.factor_names.index(f) for f in IMAGE_FACTORS]]
        cka = {}
        for name in ("neuron-cnn-narrow", "neuron-cnn-wide"):
            model = sw.zoo.load(name)[0]
            with torch.no_grad():
                codes = model.encode(torch.as_tensor(world.images))
            cka[name] = geometry.linear_cka(codes[test].numpy(), truth)
            if name == "neuron-cnn-narrow":
                for seed in (0, 1):
                    sae = fit_sae(codes[train], arch="gated", width=64, steps=3000, seed=seed, progress=False)
                    with torch.no_grad():
                        cka[f"SAE seed {seed}"] = geometry.linear_cka(sae.encode(codes[test]).numpy(), truth)
    finally:
        torch.set_num_threads(threads)
    print("linear CKA with the true image factors (test cells): " + ", ".join(f"{k} {v:.3f}" for k, v in cka.items()))
    assert cka["neuron-cnn-wide"] > cka["neuron-cnn-narrow"] + 0.1  # superposition distorts the geometry
    for seed in (0, 1):
        assert cka[f"SAE seed {seed}"] > cka["neuron-cnn-narrow"] + 0.02  # the SAE undoes part of it


def test_outcome_neighbourhoods_do_not_see_superposition_here():
    """Why the kNN bar cannot hold in this world, measured: no re-coding of the 6 units tightens them.

    SAE codes are a function of the 6 bottleneck units, so they can only re-weight the units'
    distances. The best such re-weighting towards the truth — a supervised MLP that decodes the 12
    true image factors from the units (far closer to the factors' geometry: linear CKA) — leaves the
    outcome's kNN SD ratio where it was, and the wide, non-superposed bottleneck is no better either.
    The true image factors do better, so the limit is what both CNNs extract from the images (the
    outcome's strongest image-visible drivers, nuclear condensation and neurite degeneration, are
    decoded at R² ≈ 0.2 even from the wide code), not superposition. If a future world or model makes
    the neighbourhoods see superposition, this test fails and the SAE bar becomes testable.
    """
    from superwidgets.data.neurons import IMAGE_FACTORS

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        world = sw.zoo.load("neuron-cnn-narrow")[1]
        train, test = world.records.train, world.records.test
        x = torch.as_tensor(world.images)
        with torch.no_grad():
            codes = {name: sw.zoo.load(name)[0].encode(x) for name in ("neuron-cnn-narrow", "neuron-cnn-wide")}
        raw = codes["neuron-cnn-narrow"]
        truth = torch.as_tensor(world.factors[:, [world.factor_names.index(f) for f in IMAGE_FACTORS]])
        z = (raw - raw[train].mean(0)) / raw[train].std(0)
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(6, 128), torch.nn.ReLU(), torch.nn.Linear(128, truth.shape[1]))
        opt = torch.optim.Adam(net.parameters(), 3e-3)
        rows = torch.as_tensor(train)
        for _ in range(2000):
            i = rows[torch.randint(0, len(rows), (256,))]
            loss = ((net(z[i]) - truth[i]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            decoded = net(z[test]).numpy()
    finally:
        torch.set_num_threads(threads)
    y, t = world.outcome[test], truth[test].numpy()
    knn = {
        "narrow units": geometry.knn_sd_ratio(raw[test].numpy(), y, k=10),
        "wide units": geometry.knn_sd_ratio(codes["neuron-cnn-wide"][test].numpy(), y, k=10),
        "factors decoded from the narrow units": geometry.knn_sd_ratio(decoded, y, k=10),
        "true image factors": geometry.knn_sd_ratio(t, y, k=10),
    }
    cka_raw, cka_dec = geometry.linear_cka(raw[test].numpy(), t), geometry.linear_cka(decoded, t)
    print("kNN SD ratio of the outcome (k = 10): " + ", ".join(f"{k} {v:.3f}" for k, v in knn.items()))
    print(f"linear CKA with the true image factors: narrow units {cka_raw:.3f}, decoded factors {cka_dec:.3f}")
    assert cka_dec > cka_raw + 0.2  # the decoder does restore the factors' geometry ...
    assert knn["factors decoded from the narrow units"] > 0.95 * knn["narrow units"]  # ... but not the outcome's
    assert knn["wide units"] > 0.95 * knn["narrow units"]  # and superposition did not cost it either
    assert knn["true image factors"] < 0.9 * knn["narrow units"]  # room exists, but not in these codes
