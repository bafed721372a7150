"""The engine against its peers and against the work it avoids.

Figures (MLP 784-512-512-10, eval mode, ``torch.no_grad()``):

- ``steer_vs_nnsight`` / ``steer_vs_transformerlens`` (batch 256 and 1): one
  steering edit (add ``alpha * v`` after the first ReLU) through the public
  call of each library: ``lens.run(x, baseline=False)`` (persistent hook),
  nnsight's ``with model.trace(x): model[1].output = model[1].output + a``, and
  TransformerLens' ``run_with_hooks`` on the same MLP wrapped in a
  ``HookedRootModule`` with a ``HookPoint`` at the site. Target: faster (< 1).
- ``resume_late_site`` (batch 256): ``lens.run(x)`` with an ablation after the
  last ReLU and the baseline cached (the widget's case: same input, new edit
  values) vs a plain full forward. Target 0.5.
- ``sae_delta_decode``: 3 SAE latents ablated (ReLU SAE 512 → 4096, batch 256,
  error term kept) via the SAE basis (encode only those 3, add
  ``W_dec[idx]ᵀ(c' − c)``) vs splicing by ``encode`` + ``decode`` twice.
  Target 0.02 (≥ 50× faster).
- ``sweep_64x1000``: effect of ablating each of 64 units after the last ReLU
  on 1,000 records with ``lens.sweep`` vs a loop of 64 ``lens.run`` calls on a
  lens that runs full forwards. Target 0.2 (≥ 5×). An information row compares
  against the same loop with resuming on (each repetition starts from a new
  cohort tensor, so both pay for one clean pass).

The peers (``nnsight``, ``transformer-lens``) are benchmark-only installs
(``pip install -e .[bench]``), never dependencies of the package.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import torch
from torch import nn

import superwidgets as sw
from superwidgets.science import ReLUSAE

from ._common import interleaved, median, paired_ratio, row, table

ALPHA = 2.0


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)).eval()


def _loop(fn: Callable[[], Any], n: int) -> Callable[[], None]:
    def go() -> None:
        with torch.no_grad():
            for _ in range(n):
                fn()

    return go


def _tl_model(base: nn.Sequential) -> nn.Module:
    from transformer_lens import HookedRootModule
    from transformer_lens.hook_points import HookPoint

    class TLMLP(HookedRootModule):
        def __init__(self) -> None:
            super().__init__()
            self.l1, self.a1, self.l2, self.a2, self.out = base[0], base[1], base[2], base[3], base[4]
            self.hook_h = HookPoint()
            self.setup()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(self.a2(self.l2(self.hook_h(self.a1(self.l1(x))))))

    return TLMLP()


def peers(reps: int) -> list[dict[str, Any]]:
    from nnsight import NNsight

    from ._nnsight_trace import steer as nnsight_steer

    rows = []
    for batch, calls in ((256, 4), (1, 100)):
        m_ours, m_nn, m_tl = mlp(), mlp(), mlp()
        x = torch.randn(batch, 784, generator=torch.Generator().manual_seed(1))
        v = torch.randn(512, generator=torch.Generator().manual_seed(2))
        lens = sw.Lens(m_ours)
        lens.edit("1", sw.Steer(direction=v, alpha=ALPHA))
        nm = NNsight(m_nn)
        tl = _tl_model(m_tl)
        add = ALPHA * v
        hooks = [("hook_h", lambda act, hook, add=add: act + add)]
        with torch.no_grad():
            a = lens.run(x, baseline=False).edited
            b = nnsight_steer(nm, x, add)
            c = tl.run_with_hooks(x, fwd_hooks=hooks)
        assert torch.allclose(a, b, atol=1e-5) and torch.allclose(a, c, atol=1e-5), "peers disagree"
        s = interleaved(
            {
                "ours": _loop(lambda x=x, lens=lens: lens.run(x, baseline=False), calls),
                "nnsight": _loop(lambda x=x, nm=nm, add=add: nnsight_steer(nm, x, add), calls),
                "tl": _loop(lambda x=x, tl=tl, hooks=hooks: tl.run_with_hooks(x, fwd_hooks=hooks), calls),
            },
            reps=reps,
        )
        for peer, pkg in (("nnsight", "nnsight"), ("tl", "transformer-lens")):
            rows.append(
                row(
                    f"steer_vs_{'nnsight' if peer == 'nnsight' else 'transformerlens'}_b{batch}",
                    median(s["ours"]) / calls,
                    median(s[peer]) / calls,
                    1.0,
                    ratio_paired=round(paired_ratio(s["ours"], s[peer]), 4),
                    peer=f"{pkg} {version(pkg)}",
                    batch=batch,
                )
            )
        lens.close()
    return rows


def resume(reps: int) -> list[dict[str, Any]]:
    model = mlp()
    x = torch.randn(256, 784, generator=torch.Generator().manual_seed(3))
    lens = sw.Lens(model)
    e = lens.edit("3", sw.Ablate([0]))
    plain = mlp()
    flip = [0]

    def ours() -> None:
        flip[0] ^= 1  # a new edit value each call, as a slider sends
        e.update(features=(flip[0],))
        lens.run(x)

    with torch.no_grad():
        want = lens.run(x).edited
    ref = sw.Lens(mlp(), resume=False)
    ref.edit("3", sw.Ablate([0]))
    assert torch.allclose(ref.run(x).edited, want, atol=1e-6), "resume differs from a full forward"
    ref.close()
    s = interleaved({"ours": _loop(ours, 4), "plain": _loop(lambda: plain(x), 4)}, reps=reps)
    r = row(
        "resume_late_site_b256",
        median(s["ours"]) / 4,
        median(s["plain"]) / 4,
        0.5,
        ratio_paired=round(paired_ratio(s["ours"], s["plain"]), 4),
        info=lens.resume_info,
    )
    lens.close()
    return [r]


def sae(reps: int) -> list[dict[str, Any]]:
    torch.manual_seed(4)
    sae_m = ReLUSAE(512, 4096, seed=5)
    with torch.no_grad():
        sae_m.b_enc.fill_(-0.02)
    h = torch.relu(torch.randn(256, 512))
    idx = [11, 222, 3333]
    edit = sw.Edit("site", sw.Ablate(idx), basis=sw.SAE(sae_m))

    def splice() -> torch.Tensor:
        c = sae_m.encode(h)
        c2 = c.clone()
        c2[:, idx] = 0
        return h + sae_m.decode(c2) - sae_m.decode(c)

    with torch.no_grad():
        assert torch.allclose(edit.apply(h), splice(), atol=1e-4), "delta-decode differs from splicing"
    s = interleaved({"ours": _loop(lambda: edit.apply(h), 20), "splice": _loop(splice, 1)}, reps=reps)
    ours, base = median(s["ours"]) / 20, median(s["splice"])
    return [row("sae_delta_decode_3of4096_b256", ours, base, 0.02, speedup=round(base / ours, 1))]


def sweep(reps: int) -> list[dict[str, Any]]:
    model = mlp()
    x = torch.randn(1000, 784, generator=torch.Generator().manual_seed(6))
    lens = sw.Lens(model)
    full = sw.Lens(mlp(), resume=False)
    resumed_model = mlp()

    def loop(lz: sw.Lens) -> Callable[[], None]:
        def go() -> None:
            xx = x.clone()  # a new cohort each repetition: the loop pays one baseline, as the sweep does
            for f in range(64):
                lz.clear()
                lz.edit("3", sw.Ablate([f]))
                lz.run(xx)

        return go

    got = lens.sweep("3", x, features=range(64))
    with torch.no_grad():
        full.clear()
        full.edit("3", sw.Ablate([5]))
        r = full.run(x)
        assert torch.allclose(got[5], r.edited - r.baseline, atol=1e-5), "sweep differs from single runs"
    full.clear()
    resumed = sw.Lens(resumed_model)
    s = interleaved(
        {
            "ours": lambda: lens.sweep("3", x, features=range(64)),
            "loop_full": loop(full),
            "loop_resume": loop(resumed),
        },
        reps=reps,
        warmup=1,
    )
    rows = [
        row(
            "sweep_64x1000_vs_loop",
            median(s["ours"]),
            median(s["loop_full"]),
            0.2,
            speedup=round(median(s["loop_full"]) / median(s["ours"]), 1),
        ),
        row(
            "sweep_64x1000_vs_resumed_loop",
            median(s["ours"]),
            median(s["loop_resume"]),
            None,
            speedup=round(median(s["loop_resume"]) / median(s["ours"]), 1),
        ),
    ]
    for lz in (lens, full, resumed):
        lz.close()
    return rows


def run(reps: int | None) -> tuple[list[dict[str, Any]], str]:
    """Run every figure; returns (rows, markdown body)."""
    n = reps or 40
    rows = peers(n) + resume(n) + sae(n) + sweep(max(3, n // 8))

    def notes(r: dict[str, Any]) -> str:
        if "peer" in r:
            return f"vs {r['peer']}, batch {r['batch']}"
        if "speedup" in r:
            return f"{r['speedup']}× faster"
        return r.get("info", "")

    body = (
        "Engine figures against peers and against the work they avoid; see `bench/engine.py` for exactly "
        "what each call does. Ratios are medians of interleaved repetitions in one run.\n\n" + table(rows, notes)
    )
    return rows, body
