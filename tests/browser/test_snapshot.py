"""Static HTML snapshots (`widget.to_html`) opened from disk in real Chromium: no kernel, no network.

Each widget is built in this Python process, saved with ``to_html`` to a real file, and opened with
``file://``; the rendered view is compared with the Python state it was saved from. The page may
fetch nothing: every request other than the file itself fails the test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import superwidgets as sw
from superwidgets.science.sae import ReLUSAE

pytestmark = pytest.mark.browser

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def gpt2() -> Any:
    """A small randomly initialised Hugging Face GPT-2 (no download)."""
    import transformers

    transformers.logging.set_verbosity_error()
    cfg = transformers.GPT2Config(
        n_layer=2, n_embd=32, n_head=4, vocab_size=50, n_positions=16, bos_token_id=0, eos_token_id=0
    )
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(cfg).eval()


def _open(browser: Any, path: Path) -> tuple[Any, dict[str, list[str]]]:
    page = browser.new_page()
    seen: dict[str, list[str]] = {"errors": [], "requests": [], "dialogs": []}
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    page.on("request", lambda r: None if r.url.startswith(("file://", "data:")) else seen["requests"].append(r.url))
    page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
    page.goto(path.as_uri())
    page.wait_for_selector('#sw-snapshot-root[data-rendered="true"]', timeout=20_000)
    return page, seen


def _clean(seen: dict[str, list[str]]) -> None:
    assert seen == {"errors": [], "requests": [], "dialogs": []}


def test_explorer_snapshot_renders_the_saved_model(browser, tmp_path):
    ex = sw.SuperpositionExplorer(n_features=5, n_hidden=2, density=0.03, background=False)
    path = tmp_path / "explorer.html"
    text = ex.to_html(path)
    assert path.read_text(encoding="utf-8") == text and "<script src" not in text and "http" not in text.lower()
    page, seen = _open(browser, path)
    try:
        norms = [float(v) for v in page.eval_on_selector_all(".sw-norm", "els => els.map(e => e.dataset.norm)")]
        np.testing.assert_allclose(norms, ex.norms, atol=1e-5)
        assert page.locator("svg line.sw-arrow").count() == 5  # the pentagon's arrows
        pixels = page.eval_on_selector(
            "canvas.sw-heat", "c => new Set(c.getContext('2d').getImageData(0, 0, c.width, c.height).data).size"
        )
        assert pixels > 10  # the WᵀW heatmap is painted
        assert "best of 3 starts" in page.locator(".sw-status").text_content()
        note = page.locator("#sw-snapshot-note")
        assert "SuperpositionExplorer" in note.text_content() and "running Jupyter kernel" in note.text_content()
        _clean(seen)
    finally:
        page.close()


def test_featurelab_snapshot_shows_the_edited_prediction(browser, tmp_path):
    model, data = sw.zoo.load("breast-cancer-mlp")
    with sw.Lens(model) as lens:
        lab = sw.FeatureLab(lens, inputs=data, site="hidden", index=38)
        lab.ablated = [13]
        path = tmp_path / "lab.html"
        lab.to_html(path, title="patient 38, unit 13 off")
    page, seen = _open(browser, path)
    try:
        assert page.title() == "patient 38, unit 13 off"
        rows = page.eval_on_selector_all(
            ".sw-pred", "els => els.map(r => [Number(r.dataset.baseline), Number(r.dataset.edited)])"
        )
        np.testing.assert_allclose(np.array(rows), np.stack([lab.baseline, lab.edited], 1), atol=1e-6)
        assert abs(rows[0][1] - rows[0][0]) > 0.01  # the saved edit is what the page shows
        _clean(seen)
    finally:
        page.close()


def test_dashboard_and_alignment_snapshots_render_labels_as_text(browser, tmp_path):
    model, data = sw.zoo.load("breast-cancer-mlp")
    sae = ReLUSAE(16, 24, seed=0)
    dash = sw.FeatureDashboard(model, "hidden", sae, data.X[:200], class_names=["malignant", XSS], effect_sample=50)
    dash.lens.close()
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], [20, 15, 10])
    base = (rng.standard_normal((3, 4)) * 4)[labels] + rng.standard_normal((45, 4))
    view = sw.AlignmentView(
        base, base[::-1].copy(), labels_a=labels, labels_b=labels[::-1].copy(), class_names=["a", "b", XSS]
    )
    for name, widget, selector, count in (
        ("dash", dash, ".sw-flist [data-feature]", 24),
        ("align", view, ".sw-align canvas", None),
    ):
        path = tmp_path / f"{name}.html"
        widget.to_html(path)
        page, seen = _open(browser, path)
        try:
            n = page.locator(selector).count()
            assert n == count if count is not None else n >= 1
            assert XSS in page.locator("#sw-snapshot-root").inner_text()  # shown as text, never parsed as HTML
            assert page.locator("#sw-snapshot-root img").count() == 0
            _clean(seen)
        finally:
            page.close()


def test_explorer_snapshot_ablates_offline(browser, tmp_path):
    ex = sw.SuperpositionExplorer(n_features=5, n_hidden=2, density=0.03, background=False)
    path = tmp_path / "explorer.html"
    ex.to_html(path)
    page, seen = _open(browser, path)
    try:
        page.locator('.sw-norm[data-feature="3"]').click()
        page.wait_for_selector('.sw-norm[data-feature="3"][aria-pressed="true"]')
        shown = page.eval_on_selector_all(".sw-hurt", "els => els.map(e => parseFloat(e.style.width))")
        ex.ablate(3)  # what Python answers
        expect = ex.interference / ex.interference.max() * 100
        np.testing.assert_allclose(shown, expect, atol=0.06)  # the view rounds widths to 0.1 %
        assert page.locator("#sw-snapshot-note").get_attribute("class") is None  # answered, not "needs a kernel"
        # a knob needs Python: the error area says so and the saved model stays
        m = page.locator("input.sw-knob-n_hidden")
        m.fill("3")
        m.dispatch_event("change")
        page.wait_for_function("() => document.querySelector('.sw-error').textContent.includes('static snapshot')")
        assert page.locator("#sw-snapshot-note").get_attribute("class") == "sw-snapshot-touched"
        assert page.locator("svg line.sw-arrow").count() == 5
        _clean(seen)
    finally:
        page.close()


def test_dashboard_snapshot_browses_latents_and_sorts_offline(browser, tmp_path):
    model, data = sw.zoo.load("breast-cancer-mlp")
    sae = ReLUSAE(16, 24, seed=0)
    dash = sw.FeatureDashboard(model, "hidden", sae, data.X[:200], effect_sample=50)
    try:
        path = tmp_path / "dash.html"
        dash.to_html(path, features=6)
        chosen = [int(i) for i in dash.order[:6]]
        target = chosen[3]
        page, seen = _open(browser, path)
        try:
            page.locator(f'.sw-flist [data-feature="{target}"]').click()
            page.wait_for_selector(f'.sw-dash[data-selected="{target}"]')
            page.wait_for_timeout(100)
            dash.select(target)
            stats = page.locator(".sw-dash").inner_text()
            assert f"active on {dash.n_active} of {dash.n_inputs} inputs" in stats
            assert dash.feature_names[target] in stats
            # sorting is answered from the file too
            page.select_option("select.sw-sort", "max_activation")
            dash.sort("max_activation")
            want = [int(i) for i in dash.order]
            page.wait_for_function(
                "(first) => document.querySelector('.sw-flist [data-feature]').dataset.feature === String(first)",
                arg=want[0],
            )
            got = page.eval_on_selector_all(
                ".sw-flist [data-feature]", "els => els.map(e => Number(e.dataset.feature))"
            )
            assert got == want
            # a latent that was not precomputed needs the kernel; the shown latent stays
            other = next(i for i in want if i not in chosen)
            page.locator(f'.sw-flist [data-feature="{other}"]').click()
            page.wait_for_function("() => document.querySelector('.sw-error').textContent.includes('static snapshot')")
            assert page.locator(".sw-dash").get_attribute("data-selected") == str(target)
            _clean(seen)
        finally:
            page.close()
    finally:
        dash.lens.close()


def test_featurelab_snapshot_switches_features_offline(browser, tmp_path):
    model, data = sw.zoo.load("breast-cancer-mlp")
    with sw.Lens(model) as lens:
        lab = sw.FeatureLab(lens, inputs=data, site="hidden", index=38)
        lab.ablated = [13]
        path = tmp_path / "lab.html"
        lab.to_html(path)
        page, seen = _open(browser, path)
        try:
            rev = int(page.locator(".sw-lab").get_attribute("data-rev") or 0)
            page.locator(".sw-toggle").nth(3).uncheck()  # switch unit 3 off as well
            page.wait_for_function(
                "(rev) => Number(document.querySelector('.sw-lab').dataset.rev) > rev", arg=rev, timeout=10_000
            )
            page.wait_for_timeout(100)
            rows = page.eval_on_selector_all(".sw-pred", "els => els.map(r => Number(r.dataset.edited))")
            lab.ablated = [3, 13]  # what the kernel computes
            np.testing.assert_allclose(rows, lab.edited, atol=1e-6)
            assert page.locator(".sw-error").text_content() == ""
            # steering needs the kernel: the error area says so, the switches' result stays
            slider = page.locator(".sw-slider").nth(0)
            slider.focus()
            page.keyboard.press("ArrowRight")
            page.wait_for_function("() => document.querySelector('.sw-error').textContent.includes('static snapshot')")
            rows_after = page.eval_on_selector_all(".sw-pred", "els => els.map(r => Number(r.dataset.edited))")
            np.testing.assert_allclose(rows_after, lab.edited, atol=1e-6)
            _clean(seen)
        finally:
            page.close()


def test_alignment_snapshot_links_the_panels_on_hover_offline(browser, tmp_path):
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1, 2], [20, 15, 10])
    base = (rng.standard_normal((3, 4)) * 4)[labels] + rng.standard_normal((45, 4))
    q = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    view = sw.AlignmentView(base, base @ q, labels_a=labels, labels_b=labels, paired=True)
    path = tmp_path / "align.html"
    view.to_html(path)
    page, seen = _open(browser, path)
    try:
        can_a, can_b = page.locator("canvas.sw-embed-a"), page.locator("canvas.sw-embed-b")
        ox, oy, k = (float(v) for v in can_a.get_attribute("data-transform").split(","))
        screen = [(ox + k * x, oy - k * y) for x, y in view.embed_a.tolist()]
        def clearance(i: int) -> float:  # the point with most room around it on screen, so the mouse hits it
            return min((screen[i][0] - p[0]) ** 2 + (screen[i][1] - p[1]) ** 2 for j, p in enumerate(screen) if j != i)

        i = max(range(len(screen)), key=clearance)
        box = can_a.bounding_box()
        scale = box["width"] / 240
        page.mouse.move(box["x"] + screen[i][0] * scale, box["y"] + screen[i][1] * scale)
        page.wait_for_function("(i) => document.querySelector('canvas.sw-embed-a').dataset.hover === String(i)", arg=i)
        highlighted = [int(j) for j in can_b.get_attribute("data-highlight").split(",")]
        w = view.coupling[i]
        assert highlighted[0] == int(np.argmax(w)) and i in highlighted  # its mass goes to its partner
        assert page.locator("#sw-snapshot-note").get_attribute("class") is None  # hovering needs no kernel
        _clean(seen)
    finally:
        page.close()


def test_featurelab_on_a_language_model_highlights_tokens(browser, tmp_path, gpt2):
    ids = torch.randint(0, 50, (4, 6), generator=torch.Generator().manual_seed(6))
    toks = [[XSS if j == 2 else f" w{int(t)}" for j, t in enumerate(row)] for row in ids]
    with sw.Lens(gpt2) as lens:
        lab = sw.FeatureLab(lens, inputs=ids, site="transformer.h.1", tokens=toks, output=lambda o: o.logits[:, -1, :6])
        lab.select(7)
        path = tmp_path / "lm.html"
        lab.to_html(path)
    page, seen = _open(browser, path)
    try:
        chips = page.locator(".sw-token")
        assert chips.count() == 6
        assert chips.nth(2).text_content() == XSS and page.locator(".sw-token-panel img").count() == 0
        acts = [float(v) for v in chips.evaluate_all("cs => cs.map(c => c.dataset.act)")]
        np.testing.assert_allclose(acts, lab.positions, atol=1e-6)
        assert len(page.locator(".sw-pred").all()) == 6
        _clean(seen)
    finally:
        page.close()


def test_dashboard_on_a_language_model_shows_top_inputs_as_highlighted_tokens(browser, tmp_path, gpt2):
    ids = torch.randint(0, 50, (12, 6), generator=torch.Generator().manual_seed(8))
    toks = [[f" w{int(t)}" for t in row] for row in ids]
    with sw.Lens(gpt2) as lens:
        dash = sw.FeatureDashboard(
            lens, "transformer.h.1", ReLUSAE(32, 8, seed=0), ids, tokens=toks, top_k=4, effect_sample=12,
            output=lambda o: o.logits[:, -1, :5],
        )  # fmt: skip
        path = tmp_path / "lm-dash.html"
        dash.to_html(path)
    page, seen = _open(browser, path)
    try:
        strips = page.locator(".sw-example .sw-tokens")
        assert strips.count() == len(dash.top_indices)
        acts = strips.first.locator(".sw-token").evaluate_all("cs => cs.map(c => Number(c.dataset.act))")
        np.testing.assert_allclose(acts, dash.top_positions[0], atol=1e-6)
        texts = strips.first.locator(".sw-token").evaluate_all("cs => cs.map(c => c.textContent)")
        assert texts == dash.top_tokens[0]
        _clean(seen)
    finally:
        page.close()
