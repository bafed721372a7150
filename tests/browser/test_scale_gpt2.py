"""FeatureLab on a GPT-2-small-shaped model with a 24,576-latent SAE, in real JupyterLab + Chromium.

The model is ``GPT2LMHeadModel(GPT2Config())`` (124M parameters, random weights: the pretrained model's
compute); 8 prompts of 64 tokens in CI (``python -m bench scale`` runs the 256-prompt cohort and times
slider → DOM). What must hold at this size: the list renders only what is visible, a slider of any
latent steers it and the shown prediction in the DOM is Python's, search finds a latent among 24,576,
and the cohort follows in the background until complete.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

CELL = """\
import torch
from transformers import GPT2Config, GPT2LMHeadModel
torch.manual_seed(0)
gpt2 = GPT2LMHeadModel(GPT2Config()).eval()
gpt2_sae = sw.science.sae.make_sae("topk", 768, 24576, k=32, seed=0)
gpt2_ids = torch.randint(0, 50257, (8, 64), generator=torch.Generator().manual_seed(2))
gpt2_lab = sw.FeatureLab(sw.Lens(gpt2), inputs=gpt2_ids, site="transformer.h.8", basis=sw.SAE(gpt2_sae),
                         output=lambda o: o.logits[:, -1, :50], cohort_top=5)
gpt2_lab
"""


def test_gpt2_with_a_24k_latent_sae_is_live(lab):
    page = lab.page
    cell = lab.run_new_cell(CELL, "gpt2")
    try:
        root = cell.locator(".sw-lab")
        root.wait_for(state="visible", timeout=300_000)
        sel = f'.sw-lab[data-view="{root.get_attribute("data-view")}"]'
        assert lab.eval("len(gpt2_lab.feature_names)") == 24_576
        # only the rows in view are in the DOM
        assert page.locator(f"{sel} .sw-features.sw-virtual").count() == 1
        n_rows = page.locator(f"{sel} .sw-feature").count()
        assert 0 < n_rows < 100, n_rows
        # steer latent 7 by its slider: the shown prediction updates, and the DOM shows Python's numbers
        rev = int(root.get_attribute("data-rev"))
        page.evaluate(
            """(sel) => {
                const s = document.querySelector(sel + ' .sw-feature[data-feature="7"] input.sw-slider');
                s.value = String(Number(s.max) * 0.8);
                s.dispatchEvent(new Event('input', { bubbles: true }));
            }""",
            sel,
        )
        page.wait_for_function(
            """([sel, rev]) => { const r = document.querySelector(sel);
                return Number(r.dataset.rev) > rev && !r.classList.contains('sw-busy'); }""",
            arg=[sel, rev],
            timeout=60_000,
        )
        steer = lab.eval("[float(v) for v in gpt2_lab.steer[:10]]")
        assert steer[7] != 0 and sum(abs(v) for v in steer) == abs(steer[7])
        want = lab.eval("[float(v) for v in gpt2_lab.edited]")
        base = lab.eval("[float(v) for v in gpt2_lab.baseline]")
        assert want != base  # the steering moved the prediction
        got = page.evaluate(
            "(sel) => [...document.querySelectorAll(sel + ' .sw-pred')].map(r => Number(r.dataset.edited))", sel
        )
        assert got == pytest.approx(want, abs=1e-6)
        # search finds one latent among 24,576; its switch ablates it
        page.fill(f"{sel} .sw-search", "#20000")
        page.wait_for_function(
            "(sel) => [...document.querySelectorAll(sel + ' .sw-feature')].map(r => r.dataset.feature).join()"
            " === '20000'",
            arg=sel,
            timeout=10_000,
        )
        # the cohort follows in the background and completes
        assert lab.eval("gpt2_lab.wait(240)")
        page.wait_for_function(
            """(sel) => { const c = document.querySelector(sel + ' .sw-cohort');
                return !!c && c.dataset.done === '8' && c.dataset.total === '8'; }""",
            arg=sel,
            timeout=60_000,
        )
        assert lab.eval("gpt2_lab.error") == ""
    finally:
        lab.execute("gpt2_lab.close(); del gpt2_lab, gpt2, gpt2_sae")
        lab.delete_cell("gpt2")
