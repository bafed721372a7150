"""What it costs that a Lens's cached baseline can never be stale.

Every ``lens.run`` checks a fingerprint of the model's parameters and buffers (version
counters, storage pointers and one sum per tensor, which also catches ``p.data`` writes and
BatchNorm running statistics) before it reuses the cached clean output. These figures time a
cache *hit* — ``lens.run(x)`` with no edit enabled on an input seen before, which is all
fingerprint — against one plain ``model(x)``:

- ``cache_hit_mlp_b256``: the hook benchmark's MLP 784-512-512-10, batch 256;
- ``cache_hit_gpt2_small_64tok``: a ``transformers`` GPT-2-small-shaped model (124M parameters,
  random weights), one 64-token prompt: the size where the check costs most relative to a forward.

Target ≤ 0.1: the check may cost at most a tenth of the forward it saves (a miss recomputes
the whole forward; a stale hit would show wrong numbers).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

import superwidgets as sw

from ._common import interleaved, median, paired_ratio, row, table

TARGET = 0.1


def _pair(model: nn.Module, x: Any, reps: int, block: int) -> tuple[float, float, float]:
    lens = sw.Lens(model)
    lens.bind(next(n for n, _ in model.named_modules() if n))
    lens.run(x)  # fill the cache

    def hit() -> None:
        for _ in range(block):
            lens.run(x)

    def plain() -> None:
        with torch.no_grad():
            for _ in range(block):
                model(x)

    s = interleaved({"hit": hit, "plain": plain}, reps, warmup=2)
    lens.close()
    return median(s["hit"]) / block, median(s["plain"]) / block, paired_ratio(s["hit"], s["plain"])


def run(reps: int | None = None) -> tuple[list[dict[str, Any]], str]:
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)).eval()
    ours, base, paired = _pair(mlp, torch.randn(256, 784), reps or 30, 20)
    rows = [row("cache_hit_mlp_b256", ours, base, TARGET, paired_ratio=paired, model="MLP 784-512-512-10")]
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt = GPT2LMHeadModel(GPT2Config()).eval()
    ids = torch.randint(0, 50257, (1, 64), generator=torch.Generator().manual_seed(1))
    ours, base, paired = _pair(gpt, ids, reps or 10, 1)
    n = sum(p.numel() for p in gpt.parameters())
    rows.append(row("cache_hit_gpt2_small_64tok", ours, base, TARGET, paired_ratio=paired, params=n))

    def notes(r: dict[str, Any]) -> str:
        if "gpt2" in r["name"]:
            return f"GPT-2-small shape ({r['params'] / 1e6:.0f}M parameters), one 64-token prompt"
        return "MLP 784-512-512-10, batch 256"

    body = (
        "A cache hit of `lens.run(x)` (the freshness check of every parameter and buffer) against one "
        "plain forward; see `bench/cache.py`.\n\n" + table(rows, notes)
    )
    return rows, body
