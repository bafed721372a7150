"""SuperpositionExplorer in real JupyterLab + Chromium: knobs retrain, clicks ablate, errors show."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_explorer_retrains_ablates_and_reports_errors(lab):
    page = lab.page
    marker = "explorer"
    cell = lab.run_new_cell(
        "import superwidgets as sw\nex = sw.SuperpositionExplorer(n_features=5, n_hidden=2, density=1.0)\nex", marker
    )
    try:
        root = cell.locator(".sw-explorer")
        root.wait_for(state="visible", timeout=60_000)
        lab.execute("ex.wait(120)")
        page.wait_for_function(
            "(sel) => { const r = document.querySelector(sel); return r && !r.classList.contains('sw-busy') }",
            arg=f'[data-sw-test="{marker}"] .sw-explorer',
            timeout=60_000,
        )
        norms = lambda: [float(b.get_attribute("data-norm")) for b in root.locator(".sw-norm").all()]  # noqa: E731
        page.wait_for_function(
            "(sel) => document.querySelectorAll(sel).length === 5", arg=f'[data-sw-test="{marker}"] .sw-norm'
        )
        dense = norms()
        assert sum(v > 0.5 for v in dense) == 2  # dense: two features kept
        assert root.locator("svg line.sw-arrow").count() == 5  # m = 2: arrows in the plane
        rev = int(root.get_attribute("data-rev"))

        # the density slider is log-scaled: -1.5 means 1-S = 10^-1.5 ≈ 0.03
        slider = root.locator("input.sw-knob-density")
        assert slider.get_attribute("data-lm-suppress-shortcuts") == "true"
        slider.evaluate("(el) => { el.value = '-1.5'; el.dispatchEvent(new Event('input', {bubbles: true})) }")
        page.wait_for_function(
            "([sel, rev]) => { const r = document.querySelector(sel); return r && Number(r.dataset.rev) > rev }",
            arg=[f'[data-sw-test="{marker}"] .sw-explorer', rev],
        )
        lab.execute("ex.wait(120)")
        assert abs(lab.eval("ex.density") - 10**-1.5) < 1e-6
        page.wait_for_function(
            "(sel) => { const r = document.querySelector(sel); return r && !r.classList.contains('sw-busy') }",
            arg=f'[data-sw-test="{marker}"] .sw-explorer',
            timeout=60_000,
        )
        page.wait_for_timeout(200)
        sparse = norms()
        assert sum(v > 0.5 for v in sparse) == 5  # very sparse: the pentagon
        assert sparse == pytest.approx(lab.eval("ex.norms.tolist()"), abs=1e-5)

        # click feature 1: Python ablates it and the interference bars appear
        root.locator('.sw-norm[data-feature="1"]').click()
        page.wait_for_function(
            "(sel) => document.querySelector(sel)?.getAttribute('aria-pressed') === 'true'",
            arg=f'[data-sw-test="{marker}"] .sw-norm[data-feature="1"]',
        )
        assert lab.eval("ex.ablated") == 1
        assert lab.eval("float(ex.interference[1])") > 0

        # "best of" 4 random starts: Python trains 4 replicas and the status names the one shown
        rev = int(root.get_attribute("data-rev"))
        best_of = root.locator("input.sw-knob-replicas")
        best_of.fill("4")
        best_of.dispatch_event("change")
        page.wait_for_function(
            "([sel, rev]) => { const r = document.querySelector(sel); return r && Number(r.dataset.rev) > rev }",
            arg=[f'[data-sw-test="{marker}"] .sw-explorer', rev],
        )
        lab.execute("ex.wait(120)")
        assert lab.eval("ex.replicas") == 4
        page.wait_for_function(
            "(sel) => document.querySelector(sel)?.textContent.includes('best of 4 starts')",
            arg=f'[data-sw-test="{marker}"] .sw-status',
            timeout=60_000,
        )
        shown = lab.eval("[ex.replica, int(ex.replica_losses.argmin()), len(ex.replica_losses)]")
        assert shown[0] == shown[1] and shown[2] == 4
        assert f"(start {shown[0] + 1};" in root.locator(".sw-status").text_content()
        page.wait_for_timeout(200)
        sparse = norms()
        assert sparse == pytest.approx(lab.eval("ex.norms.tolist()"), abs=1e-5)

        # a bad value typed into m shows in the error area; the model stays
        m_input = root.locator("input.sw-knob-n_hidden")
        m_input.fill("500")
        m_input.dispatch_event("change")
        error = root.locator(".sw-error")
        error.wait_for(state="visible")
        assert "n_hidden must be between 1 and 64" in error.text_content()
        assert lab.eval("ex.n_hidden") == 2
        assert norms() == pytest.approx(sparse, abs=1e-6)
    finally:
        lab.delete_cell(marker)
        lab.execute("ex.close()\ndel ex")
