"""FeatureDashboard in real JupyterLab + Chromium: selecting a latent (click and keyboard) updates its views."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.browser

MARKER = "dashboard"

# a second copy of the breast-cancer model (its own Lens: the tour's `lab` keeps its hooks) and an SAE fitted quickly
CODE = """\
import torch
from superwidgets.science.sae import ReLUSAE
dash_model, dash_data = sw.zoo.load("breast-cancer-mlp")
with torch.no_grad():
    _h = torch.relu(dash_model.inp(dash_data.X))
torch.manual_seed(0)
dash_sae = ReLUSAE(16, 32, seed=0)
_opt = torch.optim.Adam(dash_sae.parameters(), lr=1e-2)
for _ in range(200):
    _c = dash_sae.encode(_h)
    _loss = ((dash_sae.decode(_c) - _h) ** 2).sum(-1).mean() + 3e-2 * _c.abs().sum(-1).mean()
    _opt.zero_grad(); _loss.backward(); _opt.step()
dash = sw.FeatureDashboard(dash_model, "hidden", dash_sae, dash_data, top_k=6)
dash
"""


def test_dashboard_selects_latents_by_click_and_keyboard(tour):
    page = tour.page
    n_errors = len(tour.page_errors)
    cell = tour.run_new_cell(CODE, MARKER)
    try:
        root = cell.locator(".sw-dash")
        root.wait_for(state="visible", timeout=90_000)
        sel = f'[data-sw-test="{MARKER}"] .sw-dash'

        def settle(after: int) -> None:
            page.wait_for_function(
                """([sel, after]) => {
                    const r = document.querySelector(sel);
                    return !!r && !r.classList.contains('sw-busy') && Number(r.dataset.rev) > after;
                }""",
                arg=[sel, after],
                timeout=20_000,
            )

        def shown() -> dict:
            return page.evaluate(
                """(sel) => {
                    const r = document.querySelector(sel);
                    return {
                        selected: Number(r.dataset.selected),
                        hist: [...r.querySelectorAll('.sw-act-hist rect')].map(b => Number(b.dataset.count)),
                        top: [...r.querySelectorAll('.sw-example')].map(e => Number(e.dataset.index)),
                        title: r.querySelector('.sw-feature-title').textContent,
                        flips: Number(r.querySelector('.sw-effect-text').dataset.flips),
                    };
                }""",
                sel,
            )

        rows = root.locator(".sw-flist .sw-frow")
        order = tour.eval("dash.order.tolist()")
        # a virtual list: only the rows in view (440 px of 20 px rows) plus a few more exist
        n_rows = rows.count()
        assert 22 <= n_rows < 32
        assert [int(v) for v in rows.evaluate_all("rs => rs.map(r => r.dataset.feature)")] == order[:n_rows]
        first = shown()
        assert first["selected"] == order[0] == tour.eval("dash.selected")
        assert first["hist"] == tour.eval("dash.act_hist.tolist()") and sum(first["hist"]) > 0
        assert first["top"] == tour.eval("dash.top_indices.tolist()")

        # click the fourth row
        rev = int(root.get_attribute("data-rev"))
        rows.nth(3).click()
        settle(rev)
        after_click = shown()
        target = order[3]
        assert tour.eval("dash.selected") == target and after_click["selected"] == target
        assert after_click["title"] == f"latent {target}"
        assert after_click["hist"] == tour.eval("dash.act_hist.tolist()")
        assert after_click["top"] == tour.eval("dash.top_indices.tolist()")
        assert (after_click["hist"], after_click["top"]) != (first["hist"], first["top"])
        assert after_click["flips"] == tour.eval("dash.effect_flips")
        assert rows.nth(3).get_attribute("aria-selected") == "true"

        # keyboard: the list has focus after the click; two rows down, then Enter
        assert page.evaluate("(sel) => document.activeElement === document.querySelector(sel + ' .sw-flist')", sel)
        page.keyboard.press("ArrowDown")
        page.keyboard.press("ArrowDown")
        assert int(root.get_attribute("data-cursor")) == order[5]
        assert tour.eval("dash.selected") == target  # arrows only move the cursor
        rev = int(root.get_attribute("data-rev"))
        page.keyboard.press("Enter")
        settle(rev)
        after_key = shown()
        assert tour.eval("dash.selected") == order[5] == after_key["selected"]
        assert after_key["hist"] == tour.eval("dash.act_hist.tolist()")
        assert after_key["top"] == tour.eval("dash.top_indices.tolist()")
        assert after_key["top"] != after_click["top"] or after_key["hist"] != after_click["hist"]

        # a bad latent index from the go-to box: the error shows, the views stay
        rev = int(root.get_attribute("data-rev"))
        goto = root.locator(".sw-goto")
        goto.fill("999")
        goto.press("Enter")
        settle(rev)
        assert "out of range" in root.locator(".sw-error").text_content()
        assert shown() == after_key and tour.eval("dash.selected") == order[5]

        # scrolled to the end, the last rows are rendered
        flist = root.locator(".sw-flist")
        flist.evaluate("l => { l.scrollTop = l.scrollHeight; l.dispatchEvent(new Event('scroll')) }")
        page.wait_for_function(
            '([sel, f]) => !!document.querySelector(`${sel} .sw-flist [data-feature="${f}"]`)', arg=[sel, order[-1]]
        )
        # the search box: an index, then Enter selects the first match
        target = order[20]
        search = root.locator(".sw-search")
        search.fill(str(target))
        assert int(rows.first.get_attribute("data-feature")) == target
        rev = int(root.get_attribute("data-rev"))
        search.press("Enter")
        settle(rev)
        assert tour.eval("dash.selected") == target == shown()["selected"]
        search.fill("")
        assert rows.count() == n_rows
        assert root.locator(".sw-flist").get_attribute("data-lm-suppress-shortcuts") == "true"
        shot = REPO / "test-artifacts" / "dashboard.png"  # for a person to look at (CI keeps test-artifacts/)
        shot.parent.mkdir(parents=True, exist_ok=True)
        shot.write_bytes(root.screenshot(animations="disabled"))
    finally:
        tour.delete_cell(MARKER)
        tour.execute("dash.lens.close()\ndel dash, dash_model, dash_data, dash_sae")
    new = tour.page_errors[n_errors:]
    assert not new, "uncaught exceptions in the page:\n" + "\n".join(new)
