"""Write the SAELens fixtures in tests/data/saelens/ with SAELens itself.

Run in an environment that has ``sae-lens`` (the ``bench`` extra)::

    python tests/data/make_saelens.py

For each architecture it builds a small SAELens SAE (d_in = 8, d_sae = 16) with
seeded random weights, saves it with SAELens' own ``save_model`` (``cfg.json`` +
``sae_weights.safetensors``), and stores inputs with SAELens' ``encode`` and
``forward`` outputs in ``reference.safetensors``: ``tests/test_sae.py`` checks
that ``load_saelens`` reproduces them.
"""

from __future__ import annotations

import json
from pathlib import Path

import sae_lens
import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent / "saelens"
D_IN, D_SAE = 8, 16

CASES = {
    "standard": (sae_lens.StandardSAE, sae_lens.StandardSAEConfig, {}),
    "standard_no_bdec": (sae_lens.StandardSAE, sae_lens.StandardSAEConfig, {"apply_b_dec_to_input": False}),
    "topk": (sae_lens.TopKSAE, sae_lens.TopKSAEConfig, {"k": 3}),
    "gated": (sae_lens.GatedSAE, sae_lens.GatedSAEConfig, {}),
    "jumprelu": (sae_lens.JumpReLUSAE, sae_lens.JumpReLUSAEConfig, {}),
}


def main() -> None:
    for i, (name, (cls, cfg_cls, extra)) in enumerate(CASES.items()):
        torch.manual_seed(100 + i)
        sae = cls(cfg_cls(d_in=D_IN, d_sae=D_SAE, **extra))
        with torch.no_grad():
            for p in sae.parameters():
                p.copy_(torch.randn_like(p) * (0.5 if p.ndim == 2 else 0.2))
            if hasattr(sae, "threshold"):
                sae.threshold.copy_(torch.rand(D_SAE) * 0.3)
        out = HERE / name
        sae.save_model(out)
        x = torch.randn(32, D_IN)
        with torch.no_grad():
            save_file(
                {"x": x, "codes": sae.encode(x).contiguous(), "recon": sae(x).contiguous()},
                str(out / "reference.safetensors"),
            )
        print(
            name,
            json.loads((out / "cfg.json").read_text())["architecture"],
            sorted(p for p, _ in sae.named_parameters()),
        )
    (HERE / "VERSION").write_text(f"written by sae-lens {sae_lens.__version__}, torch {torch.__version__}\n")


if __name__ == "__main__":
    main()
