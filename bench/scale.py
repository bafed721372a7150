"""Live on the models people bring: GPT-2-small with a 24,576-latent SAE, ResNet-50 (issue 15).

Run with two torch threads, as the issue measured: ``python -m bench scale --threads 2``.

The GPT-2 figures use ``GPT2LMHeadModel(GPT2Config())`` (124M parameters, random weights: the
same compute as the pretrained model), a TopK SAE with 24,576 latents (k = 32) at
``transformer.h.8`` as a FeatureLab basis, 64-token prompts and the displayed output
``o.logits[:, -1, :50]``:

- ``gpt2_steer_update``: one steering move (``lab.steer = v``, a new value every time) of a
  FeatureLab with no cohort: the shown prompt's prediction and feature coordinates updated
  ÷ one plain ``model(x)`` of that prompt (target ≤ 0.6). The Lens resumes from the edited
  site by replaying the 8 blocks before it (``torch.fx`` cannot trace the model).
- ``gpt2_steer_update_cohort256``: the same with a 256-prompt cohort attached: the time until
  the shown prompt's results are published while the previous move's cohort is still being
  computed in the background (it gives way) ÷ the same plain forward (target ≤ 0.7).
- ``gpt2_cohort_refresh256``: from a steering move until the cohort summary of all 256
  prompts is complete ÷ a plain forward of the 256 prompts (in chunks of 16) (target ≤ 1).
- ``gpt2_dashboard_build``: FeatureDashboard on 200 prompts × 64 tokens with the SAE ÷ a
  plain forward of those prompts (target ≤ 3); its peak extra memory is in the notes
  (target ≤ 1 GB) — measured by ``bench/_scale_dashboard.py``.

And ``resnet50_layer3_steer``: a ResNet-50 (``bench/_resnet.py``: torchvision's architecture,
random weights) on one 224 × 224 image, FeatureLab at ``layer3`` (1,024 channels): one
steering move ÷ one plain forward of the image (target ≤ 0.6).

Plain forwards are timed when no background work runs (after ``lab.wait()``), so a busy
cohort thread never makes the baseline look slow.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

import superwidgets as sw

from ._common import median, row, table

PROMPT, COHORT, DASH_PROMPTS, LATENTS, SITE = 64, 256, 200, 24_576, "transformer.h.8"
CHUNK = 16


def _gpt2() -> tuple[Any, Any]:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config()).eval()
    sae = sw.science.sae.make_sae("topk", 768, LATENTS, k=32, seed=0)
    return model, sae


def _ids(n: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 50257, (n, PROMPT), generator=torch.Generator().manual_seed(seed))


def _show(o: Any) -> torch.Tensor:
    return o.logits[:, -1, :50]


def _plain(model: Any, x: torch.Tensor, reps: int) -> list[float]:
    times = []
    with torch.no_grad():
        model(x[:1])
        for _ in range(reps):
            t0 = time.perf_counter()
            for a in range(0, len(x), CHUNK):
                model(x[a : a + CHUNK])
            times.append(time.perf_counter() - t0)
    return times


def _moves(lab: Any, reps: int, *, settle: float = 0.0) -> list[float]:
    """Times of ``reps`` steering moves (each a new value of one latent's slider)."""
    rng = np.random.default_rng(0)
    k = len(lab.feature_names)
    times = []
    for i in range(reps + 2):
        v = np.zeros(k, np.float32)
        v[7] = float(rng.uniform(-5, 5))
        t0 = time.perf_counter()
        lab.steer = v
        dt = time.perf_counter() - t0
        if i >= 2:
            times.append(dt)
        if settle:
            time.sleep(settle)
    return times


def _gpt2_rows(reps: int) -> list[dict[str, Any]]:
    model, sae = _gpt2()
    one, cohort = _ids(1, 1), _ids(COHORT, 2)
    lens = sw.Lens(model)
    rows = []
    lab = sw.FeatureLab(lens, inputs=one, site=SITE, basis=sw.SAE(sae), output=_show, cohort_top=0, readout="softmax")
    moves = _moves(lab, reps)
    plain = _plain(model, one, reps)
    rows.append(
        row(
            "gpt2_steer_update",
            median(moves),
            median(plain),
            0.6,
            note=f"{lens.resume_info.split(' (')[0]}",
        )
    )
    lab.close()
    lab = sw.FeatureLab(lens, inputs=cohort, site=SITE, basis=sw.SAE(sae), output=_show, cohort_top=10)
    lab.wait()
    busy = _moves(lab, reps, settle=0.25)  # each move lands while the previous move's cohort runs
    lab.wait()
    plain = _plain(model, cohort[:1], reps)
    rows.append(row("gpt2_steer_update_cohort256", median(busy), median(plain), 0.7, note="cohort in flight"))
    refresh = []
    for i in range(max(2, reps // 4)):
        v = np.zeros(len(lab.feature_names), np.float32)
        v[7] = 3.0 + i
        t0 = time.perf_counter()
        lab.steer = v
        lab.wait()
        refresh.append(time.perf_counter() - t0)
    plain_all = _plain(model, cohort, max(2, reps // 4))
    rows.append(
        row(
            "gpt2_cohort_refresh256",
            median(refresh),
            median(plain_all),
            1.0,
            note=f"{COHORT} prompts × {PROMPT} tokens; plain forward in chunks of {CHUNK}",
        )
    )
    lab.close()
    lens.close()
    try:
        from ._scale_dashboard import build_dashboard_ratio
    except ImportError:
        return rows
    d = build_dashboard_ratio(n_prompts=DASH_PROMPTS, n_tokens=PROMPT, n_latents=LATENTS)
    mb = max(d["dashboard_peak_extra_mb"], d["stats_peak_extra_mb"])
    rows.append(
        row(
            "gpt2_dashboard_build",
            d["dashboard_build_s"],
            d["plain_forward_s"],
            3.0,
            note=f"{DASH_PROMPTS} prompts × {PROMPT} tokens × {LATENTS:,} latents; peak extra memory {mb:,.0f} MB "
            f"(target ≤ 1,024 MB; LatentStats alone {d['stats_ratio']:.2f}x); keeps {d['stats_nbytes_mb']:.0f} MB "
            f"of sparse codes ({d['nnz_positions']:,} per-position entries); plain forward in chunks of {d['chunk']}",
            peak_extra_bytes=int(mb * 2**20),
        )
    )
    return rows


def _attribution_rows(reps: int) -> list[dict[str, Any]]:
    """Attribution of one 64-token prompt to one next-token logit through the 24,576-latent SAE."""
    from superwidgets.engine.attribution import attribute, top_effects

    model, sae = _gpt2()
    basis, one = sw.SAE(sae), _ids(1, 1)
    lens = sw.Lens(model, sites=[SITE])
    lens.run(one)  # the shown prompt: its clean pass is cached, as after a FeatureLab update

    def target(o: Any) -> torch.Tensor:
        return o.logits[0, -1, 42]

    attribute(lens, one, SITE, basis=basis, target=target)
    times, plain = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        a = attribute(lens, one, SITE, basis=basis, target=target)
        times.append(time.perf_counter() - t0)
        plain.extend(_plain(model, one, 1))
    t0 = time.perf_counter()
    top_effects(lens, one, SITE, basis=basis, readout=lambda o: o.logits[:, -1, 42], k=16, attribution=a)
    sweep = time.perf_counter() - t0
    lens.close()
    return [
        row(
            "gpt2_attribution",
            median(times),
            median(plain),
            None,
            note=f"gradient × activation of all {a.numel():,} latents, one forward + backward resumed from "
            f"the site; {int((a != 0).sum())} latents active",
        ),
        row(
            "gpt2_top_effects16",
            sweep,
            median(plain),
            None,
            note="exact ablation effects of the 16 largest, one batched sweep",
        ),
    ]


#: Run in the tour notebook's kernel: the GPT-2 FeatureLab of ``gpt2_steer_update_cohort256``, displayed.
_GPT2_CELL = """\
import torch, superwidgets as sw
from transformers import GPT2Config, GPT2LMHeadModel
torch.manual_seed(0)
gpt2 = GPT2LMHeadModel(GPT2Config()).eval()
gpt2_sae = sw.science.sae.make_sae("topk", 768, 24576, k=32, seed=0)
gpt2_ids = torch.randint(0, 50257, ({n}, 64), generator=torch.Generator().manual_seed(2))
gpt2_lab = sw.FeatureLab(sw.Lens(gpt2), inputs=gpt2_ids, site="transformer.h.8", basis=sw.SAE(gpt2_sae),
                         output=lambda o: o.logits[:, -1, :50], cohort_top=10)
gpt2_lab
"""


def _browser_rows(reps: int) -> list[dict[str, Any]]:
    """Slider → updated prediction in the DOM on the GPT-2 FeatureLab, real JupyterLab + Chromium."""
    import tempfile
    from pathlib import Path

    from .latency import _SLIDER_JS, SAMPLE_TIMEOUT_MS, _harness

    h = _harness()
    latent = 7
    with tempfile.TemporaryDirectory(prefix="sw-bench-scale-") as tmp, h.sync_playwright() as p:
        server = h.start_server(Path(tmp) / "lab", nodelay=True)
        browser = tour = None
        try:
            browser = h.launch_browser(p)
            tour = h.open_tour(browser, server)
            tour.run_new_cell(_GPT2_CELL.format(n=COHORT), "gpt2")
            sel = '[data-sw-test="gpt2"] .sw-lab'
            row_sel = f'{sel} .sw-feature[data-feature="{latent}"] input.sw-slider'
            tour.page.wait_for_selector(row_sel, timeout=600_000)
            step = float(tour.page.get_attribute(row_sel, "step") or 0.01)
            times = []
            for k in range(reps + 2):
                value = (1 if k % 2 else -1) * (5 + k % 10) * step
                got = tour.page.evaluate(_SLIDER_JS, [sel, latent, value, SAMPLE_TIMEOUT_MS * 6])
                if k >= 2:
                    times.append(got["ms"] / 1e3)
                time.sleep(0.3)  # the previous move's cohort is in flight when the next move comes
            if tour.page_errors:
                raise RuntimeError("uncaught exceptions in the page:\n" + "\n".join(tour.page_errors))
        finally:
            if tour is not None:
                tour.close()
            if browser is not None:
                browser.close()
            h.stop_server(server)
    return [
        row(
            "gpt2_slider_to_dom",
            median(times),
            0.3,
            1.0,
            note=f"real JupyterLab + Chromium, {COHORT}-prompt cohort attached; baseline = the 300 ms budget",
        )
    ]


def _resnet_rows(reps: int) -> list[dict[str, Any]]:
    from ._resnet import resnet50

    model = resnet50(seed=0)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    lens = sw.Lens(model)
    lab = sw.FeatureLab(lens, inputs=x, site="layer3", cohort_top=0)
    moves = _moves(lab, reps)
    plain = _plain(model, x, reps)
    info = lens.resume_info.split(" (")[0]
    lab.close()
    lens.close()
    return [row("resnet50_layer3_steer", median(moves), median(plain), 0.6, note=info)]


def run(reps: int | None = None) -> tuple[list[dict[str, Any]], str]:
    reps = reps or 9
    rows = [*_gpt2_rows(reps), *_attribution_rows(reps), *_resnet_rows(reps), *_browser_rows(reps)]
    body = table(rows, notes=lambda r: r.get("note", "")) + (
        "\n\nOne FeatureLab update on the shown input is one engine call (`lens.run(x, capture=[site])`),"
        " resumed from the edited site; the cohort follows in a background thread in chunks that give way"
        " to the next move (see docs/analysis.md). Median of the repetitions; ratio = our median ÷ the"
        " plain forward's median, both measured in this run."
    )
    return rows, body
