"""Dashboard build at scale: GPT-2-small shape, 24,576-latent TopK SAE at block 8, 200 prompts × 64 tokens.

``build_dashboard_ratio()`` measures, in one run: a plain forward of the prompts (no lens, in the
same chunks the build uses), the :class:`~superwidgets.analysis.LatentStats` build, and the whole
``FeatureDashboard(...)`` constructor (the statistics plus the first latent's details and its
cohort effect), as ratios to the plain forward, with the peak extra memory of each (resident set
size sampled every 5 ms above what was resident before, and ``tracemalloc``'s peak for the
Python/numpy side). ``python -m bench scale`` (written by the lead) calls it; run it alone with
``python -m bench._scale_dashboard [n_prompts]``.
"""

from __future__ import annotations

import gc
import os
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["build_dashboard_ratio"]


def _rss() -> int:
    """Resident set size of this process in bytes (Linux ``/proc``)."""
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _measure(fn: Callable[[], Any]) -> tuple[Any, float, int, int]:
    """``(result, seconds, peak extra RSS bytes, tracemalloc peak bytes)`` of one call."""
    gc.collect()
    before = _rss()
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            done.wait(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    tracemalloc.start()
    sampler.start()
    t0 = time.perf_counter()
    try:
        out = fn()
    finally:
        dt = time.perf_counter() - t0
        done.set()
        sampler.join()
        _, traced = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    peak[0] = max(peak[0], _rss())
    return out, dt, peak[0] - before, traced


def build_dashboard_ratio(
    n_prompts: int = 200,
    n_tokens: int = 64,
    n_latents: int = 24576,
    k: int = 32,
    *,
    site: str = "transformer.h.8",
    n_layer: int = 12,
    dashboard: bool = True,
    effect: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Build the latent statistics (and the dashboard) at scale; ratios to a plain forward, peak memory.

    Parameters
    ----------
    n_prompts, n_tokens : int
        The cohort: random token ids ``(n_prompts, n_tokens)``.
    n_latents, k : int
        The TopK SAE (``make_sae("topk", 768, n_latents, k=k)``, random weights).
    site : str
        Where the SAE reads.
    n_layer : int
        Blocks of the GPT-2-small-shaped model (12: the real shape).
    dashboard : bool
        Also build the whole ``FeatureDashboard`` (statistics, first latent's details; at this size its
        cohort effect is left pending, see ``effect_on_build``).
    effect : bool
        Then time the first latent's cohort effect on demand (``dash.set_effect()``).
    seed : int
        Seed of the model, the SAE and the prompts.

    Returns
    -------
    dict
        ``plain_forward_s``, ``chunk`` (prompts per forward), ``stats_build_s``, ``stats_ratio``,
        ``stats_peak_extra_mb``, ``stats_traced_peak_mb``, ``stats_nbytes_mb`` (what the statistics
        keep), ``nnz_positions`` (kept codes), ``dead``, and with ``dashboard``: ``dashboard_build_s``,
        ``dashboard_ratio``, ``dashboard_peak_extra_mb``, ``dashboard_traced_peak_mb``,
        ``first_latent_active`` (inputs its effect runs on), ``effect_pending``; with ``effect``:
        ``first_effect_s``, ``first_effect_ratio``, ``first_effect_peak_extra_mb``; ``targets_met``
        (build ratio ≤ 3, ≤ 1 GB extra).
    """
    import transformers

    import superwidgets as sw
    from superwidgets.analysis.latents import LatentStats
    from superwidgets.science.sae import make_sae

    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=n_layer)).eval()
    sae = make_sae("topk", 768, n_latents, k=k, seed=seed)
    ids = torch.randint(0, 50257, (n_prompts, n_tokens), generator=torch.Generator().manual_seed(seed))

    def readout(o: Any) -> torch.Tensor:
        return torch.softmax(o.logits[:, -1, :50].float(), -1)

    res: dict[str, Any] = {
        "n_prompts": n_prompts,
        "n_tokens": n_tokens,
        "n_latents": n_latents,
        "k": k,
        "threads": torch.get_num_threads(),
    }
    chunks: list[int] = []
    lens = sw.Lens(model)
    try:
        # warm-up: one small forward (allocator, kernels) before anything is timed
        with torch.no_grad():
            model(ids[:2])
        stats, t_stats, rss_stats, traced_stats = _measure(
            lambda: LatentStats(lens, site, sae, ids, readout=readout, progress=lambda done, _t: chunks.append(done))
        )
        steps = [b - a for a, b in zip([0, *chunks], chunks, strict=False)]
        chunk = max(steps) if steps else n_prompts
        lens.close()

        def plain() -> None:
            with torch.no_grad():
                for a in range(0, n_prompts, chunk):
                    model(ids[a : a + chunk])

        _, t_plain, rss_plain, _ = _measure(plain)
        res.update(
            plain_forward_s=round(t_plain, 2),
            plain_peak_extra_mb=round(rss_plain / 2**20, 1),
            chunk=chunk,
            stats_build_s=round(t_stats, 2),
            stats_ratio=round(t_stats / t_plain, 3),
            stats_peak_extra_mb=round(rss_stats / 2**20, 1),
            stats_traced_peak_mb=round(traced_stats / 2**20, 1),
            stats_nbytes_mb=round(stats.nbytes / 2**20, 2),
            nnz_positions=int(stats.codes.value.size) if stats.codes is not None else None,
            dead=int((stats.frequency == 0).sum()),
        )
        del stats
        if dashboard:
            lens = sw.Lens(model)
            dash, t_dash, rss_dash, traced_dash = _measure(
                lambda: sw.FeatureDashboard(lens, site, sae, ids, output=lambda o: o.logits[:, -1, :50], progress=False)
            )
            res.update(
                dashboard_build_s=round(t_dash, 2),
                dashboard_ratio=round(t_dash / t_plain, 3),
                dashboard_peak_extra_mb=round(rss_dash / 2**20, 1),
                dashboard_traced_peak_mb=round(traced_dash / 2**20, 1),
                first_latent_active=int(dash.n_active),
                effect_pending=bool(dash.effect_pending),
            )
            if effect:  # the first latent's cohort effect, computed on demand (lens.sweep over its active inputs)
                _, t_eff, rss_eff, _ = _measure(lambda: dash.set_effect())
                res.update(
                    first_effect_s=round(t_eff, 2),
                    first_effect_ratio=round(t_eff / t_plain, 3),
                    first_effect_peak_extra_mb=round(rss_eff / 2**20, 1),
                )
            dash.close()
        worst_ratio = max(res["stats_ratio"], res.get("dashboard_ratio", 0.0))
        worst_mb = max(res["stats_peak_extra_mb"], res.get("dashboard_peak_extra_mb", 0.0))
        res["targets_met"] = bool(worst_ratio <= 3.0 and worst_mb <= 1024)
    finally:
        lens.close()
    return res


if __name__ == "__main__":
    import json
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    print(json.dumps(build_dashboard_ratio(n_prompts=n, effect=True), indent=1))
