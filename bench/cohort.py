"""FeatureLab's cohort view at 10,000 records: one edit → updated histogram, flips and top-k.

Figure ``cohort_10k_one_edit``: a FeatureLab on the breast-cancer MLP whose
cohort is 10,000 synthetic patient records (drawn from a Gaussian with the real
table's mean and covariance, seeded); the time from setting one edit
(``lab.ablated = [13]``, alternating with ``[]`` so every sample is a real
change) until every trait is updated: the shown patient's prediction, the
edited model on all 10,000 records (resumed from the edited site), and the
summaries that travel (31-bin histogram, flip count, top 10). The baseline is
the **1 s budget** from the issue (a constant), so ratio = median ÷ 1 s, target 1.0.
The cohort is computed in a background thread after the shown input is published, so each edit is
timed twice: ``*_shown_input`` until the setter returns (the shown input's traits are out; the
cohort has started) and ``*_one_edit`` until ``lab.wait()`` returns (the cohort summary complete).
An information row times the same update on the real 569-patient table.

Figure ``cohort_images_8k_one_edit``: a FeatureLab on the narrow neuron CNN whose cohort is the
neuron world's 8,000 images (4×32×32), the features the latents of a Gated SAE (24 latents, trained
here on the bottleneck, seeded) — one latent ablated, alternating with none, every trait updated
(the shown cell's prediction and maps, the edited model on all 8,000 images resumed from the
bottleneck, the summaries). Same 1 s budget.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

import superwidgets as sw

from ._common import median, row, table

BUDGET_S = 1.0


def synthetic_cohort(data: Any, n: int = 10_000, seed: int = 0) -> torch.Tensor:
    """``n`` standardised records from a Gaussian fitted to the real table."""
    x = data.X.double().numpy()
    rng = np.random.default_rng(seed)
    sample = rng.multivariate_normal(x.mean(0), np.cov(x, rowvar=False), size=n)
    return torch.from_numpy(sample.astype(np.float32))


def _time_edits(lab: Any, reps: int, feature: int) -> tuple[list[float], list[float]]:
    """Per edit: seconds until the shown input is published, and until the cohort summary is complete."""
    shown, complete = [], []
    for i in range(reps):
        t0 = time.perf_counter()
        lab.ablated = [feature] if i % 2 == 0 else []
        t1 = time.perf_counter()
        lab.wait()
        t2 = time.perf_counter()
        shown.append(t1 - t0)
        complete.append(t2 - t0)
    return shown, complete


def _time_updates(lab: Any, reps: int) -> list[float]:
    """Seconds from one edit (unit 13 on/off) until every trait, the complete cohort summary included."""
    return _time_edits(lab, reps, 13)[1]


def _image_cohort(reps: int) -> tuple[tuple[list[float], list[float]], int]:
    """Times of one SAE-latent edit on a FeatureLab over the 8,000 neuron images (shown input, cohort
    complete), and the flips it makes."""
    from superwidgets.science.sae import fit_sae

    model, world = sw.zoo.load("neuron-cnn-narrow")
    with torch.no_grad():
        codes = model.encode(torch.as_tensor(world.images[world.records.train]))
    sae = fit_sae(codes, arch="gated", width=24, steps=1500, seed=0, progress=False)
    lens = sw.Lens(model)
    lab = sw.FeatureLab(lens, inputs=world, site="bottleneck", basis=sw.SAE(sae))
    with torch.no_grad():
        latent = int(sae.encode(codes).mean(0).argmax())  # the most used latent
    _time_edits(lab, 3, latent)  # warm-up
    times = _time_edits(lab, reps, latent)
    lab.ablated = [latent]
    lab.wait()
    flips = int(lab.cohort_flips)
    lens.close()
    return times, flips


def run(reps: int | None = None) -> tuple[list[dict[str, Any]], str]:
    reps = reps or 21
    model, data = sw.zoo.load("breast-cancer-mlp")
    cohort = synthetic_cohort(data)
    lens = sw.Lens(model)
    big = sw.FeatureLab(lens, inputs=cohort, site="hidden", class_names=data.class_names)
    _time_edits(big, 3, 13)  # warm-up
    s_big, t_big = _time_edits(big, reps, 13)
    big.ablated = [13]
    big.wait()
    flips, hist_total = big.cohort_flips, int(big.cohort_hist.sum())
    assert hist_total == 10_000, "the histogram must cover the whole cohort"
    small = sw.FeatureLab(lens, inputs=data, site="hidden", index=38)
    _time_edits(small, 3, 13)
    s_small, t_small = _time_edits(small, reps, 13)
    lens.close()
    (s_img, t_img), img_flips = _image_cohort(reps)
    rows = [
        row("cohort_10k_shown_input", median(s_big), BUDGET_S, None, baseline_is="1 s budget", reps=reps),
        row(
            "cohort_10k_one_edit",
            median(t_big),
            BUDGET_S,
            1.0,
            baseline_is="1 s budget",
            reps=reps,
            flips=flips,
            records=10_000,
        ),
        row("cohort_569_shown_input", median(s_small), BUDGET_S, None, baseline_is="1 s budget", reps=reps),
        row("cohort_569_one_edit", median(t_small), BUDGET_S, None, baseline_is="1 s budget", reps=reps),
        row("cohort_images_8k_shown_input", median(s_img), BUDGET_S, None, baseline_is="1 s budget", reps=reps),
        row(
            "cohort_images_8k_one_edit",
            median(t_img),
            BUDGET_S,
            1.0,
            baseline_is="1 s budget",
            reps=reps,
            flips=img_flips,
            records=8_000,
        ),
    ]

    def notes(r: dict[str, Any]) -> str:
        if r["name"].endswith("_shown_input"):
            return "edit → the shown input's traits published (the cohort then follows in the background)"
        if r["name"].startswith("cohort_10k"):
            return f"{r['flips']} of 10,000 predictions flip with unit 13 off"
        if r["name"].startswith("cohort_images"):
            return f"neuron CNN, SAE latent edited at the bottleneck; {r['flips']} of 8,000 predictions flip"
        return "the real breast-cancer table"

    body = (
        "Time from one edit to the shown input's traits published (`*_shown_input`) and to every FeatureLab "
        "trait updated, the complete cohort summary included (`*_one_edit`, `lab.wait()`); "
        "see `bench/cohort.py`.\n\n" + table(rows, notes)
    )
    return rows, body
