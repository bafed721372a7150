"""Text in real JupyterLab + Chromium: an SAE feature of char-lm highlighted over a window, switched off live."""

from __future__ import annotations

import pytest
from harness import save_screenshot

pytestmark = pytest.mark.browser

MARKER = "text"

# the shipped character model, a TopK SAE on its first block's residual stream (≈ 5 s), and a FeatureLab
# on the SAE's latents with the held-out windows' characters as tokens, opened on a window with '::='
CODE = """\
import torch
text_model, text = sw.zoo.load("char-lm")
text_lens = sw.Lens(text_model)
text_sae = sw.train_sae(text_lens, "blocks.0", text.windows(1500, split="train", seed=1), arch="topk",
                        width=256, k=8, steps=2000, seed=0, progress=False)
with torch.no_grad():
    _codes = text_sae.encode(text_lens.activations(text.X, "blocks.0")["blocks.0"])
_nxt = torch.cat([text.X[:, 1:], torch.full((len(text.X), 1), -1)], 1)
_eq = _nxt == text.vocab.index("=")
text_latent = int((_codes[_eq].mean(0) - _codes[~_eq].mean(0)).argmax())
text_window = next(i for i, c in enumerate(text.captions) if "::=" in c)
_show = list(" etaoinsr\\n.,()=:")
text_lab = sw.FeatureLab(text_lens, inputs=text, site="blocks.0", basis=sw.SAE(text_sae), index=text_window,
                         tokens=text.tokens, captions=text.captions, readout="identity", cohort_top=0,
                         output=lambda o: o[:, -1].softmax(-1)[:, [text.vocab.index(c) for c in _show]],
                         class_names=[repr(c) for c in _show], generate=16, decode=text.decode,
                         encode=text.encode)
text_lab.select(text_latent)
text_lab
"""


def test_text_feature_highlight_follows_the_switch(tour):
    page = tour.page
    n_errors = len(tour.page_errors)
    cell = tour.run_new_cell(CODE, MARKER)
    try:
        root = cell.locator(".sw-lab")
        root.wait_for(state="visible", timeout=120_000)
        sel = f'[data-sw-test="{MARKER}"]'
        page.wait_for_function(f"() => document.querySelectorAll('{sel} .sw-token[data-act]').length === 64")
        chips = cell.locator(".sw-token")
        assert chips.evaluate_all("cs => cs.map(c => c.textContent).join('')") == tour.eval(
            "text.captions[text_window]"
        )
        acts = [float(v) for v in chips.evaluate_all("cs => cs.map(c => c.dataset.act)")]
        assert acts == pytest.approx(tour.eval("text_lab.positions.tolist()"), abs=1e-5)
        assert max(acts) > 0  # the '=' feature fires in a window with '::='
        latent = tour.eval("text_lab.selected")
        assert cell.locator(".sw-gen-base").text_content() == tour.eval("text_lab.generated_baseline")
        assert len(tour.eval("text_lab.generated_baseline")) == 16

        # switch the latent off in the browser: the highlight goes, the kernel agrees. 256 latents: the list
        # renders only the rows in view, so find the latent by its index first
        assert cell.locator(".sw-features.sw-virtual").count() == 1
        cell.locator(".sw-search").fill(f"#{latent}")
        toggle = cell.locator(f'.sw-feature[data-feature="{latent}"] .sw-toggle')
        assert cell.locator(".sw-feature").count() == 1
        rev = int(root.get_attribute("data-rev"))
        toggle.uncheck()
        page.wait_for_function(
            "([s, rev]) => Number(document.querySelector(s).dataset.rev) > rev", arg=[f"{sel} .sw-lab", rev]
        )
        tokens = f"[...document.querySelectorAll('{sel} .sw-token')]"
        page.wait_for_function(f"() => {tokens}.every(c => c.dataset.act === '0')")  # TopK drops the latent
        assert tour.eval("text_lab.ablated") == [latent]
        assert tour.eval("float(abs(text_lab.positions).max())") == 0.0
        toggle.check()
        page.wait_for_function(f"() => {tokens}.some(c => c.dataset.act !== '0')")
        # steer the latent hard from Python: the edited continuation departs, marked in the view
        tour.execute("import numpy as np\n_p = np.zeros(256, np.float32); _p[text_latent] = 8.0; text_lab.steer = _p")
        page.wait_for_function(f"() => document.querySelector('{sel} .sw-generate').dataset.diverge !== ''")
        assert cell.locator(".sw-gen-edit").text_content() == tour.eval("text_lab.generated_edited")
        tour.execute("text_lab.steer = np.zeros(256, np.float32)")
        # type a prompt in the input panel: the model reads it, '=' becomes the likeliest next character
        rev = int(root.get_attribute("data-rev"))
        cell.locator("textarea.sw-text").fill("   for_stmt ::")
        cell.locator("button.sw-text-run").click()
        page.wait_for_function(
            "([s, rev]) => Number(document.querySelector(s).dataset.rev) > rev", arg=[f"{sel} .sw-lab", rev]
        )
        page.wait_for_function(f"() => {tokens}.length === 14")
        assert chips.evaluate_all("cs => cs.map(c => c.textContent).join('')") == "   for_stmt ::"
        assert tour.eval("text_lab.text_edited") == "   for_stmt ::"
        assert tour.eval("float(text_lab.edited[14])") > 0.5  # P('=') after '::'
        cell.locator("button.sw-text-reset").click()
        page.wait_for_function(f"() => {tokens}.length === 64")
        page.evaluate("() => document.activeElement && document.activeElement.blur()")
        page.mouse.move(0, 0)
        root.scroll_into_view_if_needed()
        png = root.screenshot(animations="disabled")
        save_screenshot(png, "text.png", "SW_SCREENSHOT_TEXT")
    finally:
        tour.delete_cell(MARKER)
        tour.execute("text_lens.close()")
    assert tour.page_errors[n_errors:] == []
