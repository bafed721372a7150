"""FeatureLab's cohort view and image inputs in real JupyterLab + Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.browser


def cohort_complete(lab) -> None:
    """Wait until the cohort of the current controls is complete in Python and shown in the view."""
    assert lab.eval("lab.wait(60)")
    total = lab.eval("lab.cohort_total")
    assert total > 0
    lab.page.wait_for_function(
        """([sel, n]) => {
            const c = document.querySelector(sel + ' .sw-cohort');
            const p = document.querySelector(sel + ' .sw-cohort-progress');
            return !!c && c.dataset.done === String(n) && !!p && p.hidden;
        }""",
        arg=[lab.selector, total],
        timeout=30_000,
    )


def test_cohort_histogram_updates_after_an_edit(lab):
    page = lab.page
    cohort = lab.root.locator(".sw-cohort")
    cohort_complete(lab)
    assert cohort.get_attribute("data-flips") == "0"
    counts = lambda: [int(r.get_attribute("data-count")) for r in lab.root.locator(".sw-hist rect").all()]  # noqa: E731
    before = counts()
    assert sum(before) == 569
    rev = lab.dom_rev()
    lab.feature(13).locator("input.sw-toggle").uncheck()
    lab.settle(after=rev)
    cohort_complete(lab)  # the cohort follows the shown input in the background
    assert cohort.get_attribute("data-total") == "569"
    flips = lab.eval("lab.cohort_flips")
    assert flips > 0 and cohort.get_attribute("data-flips") == str(flips)
    after = counts()
    assert sum(after) == 569 and after != before
    assert after == lab.eval("lab.cohort_hist.tolist()")
    # the most affected patients are clickable and load into the widget
    top = lab.root.locator(".sw-top-item").first
    target = int(top.get_attribute("data-index"))
    assert target == lab.eval("int(lab.cohort_top[0])")
    rev = lab.dom_rev()
    top.click()
    lab.settle(after=rev)
    assert lab.eval("lab.index") == target
    assert page.locator(f"{lab.selector} .sw-index").input_value() == str(target)
    lab.execute("lab.index = 38")  # leave the shared widget where the other tests expect it
    lab.settle()
    cohort_complete(lab)


def test_image_inputs_overlay_and_predictions_follow_edits(lab):
    page = lab.page
    marker = "images"
    code = (
        "import torch\nfrom torch import nn\n"
        "world = sw.data.neurons(n=60, seed=1, image_size=32)\n"
        "torch.manual_seed(0)\n"
        "cnn = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),"
        " nn.Linear(24, 2)).eval()\n"
        "img_lab = sw.FeatureLab(sw.Lens(cnn), inputs=world, site='1', gallery=12)\nimg_lab"
    )
    cell = lab.run_new_cell(code, marker)
    try:
        root = cell.locator(".sw-lab")
        root.wait_for(state="visible", timeout=60_000)
        canvas = root.locator("canvas.sw-image")
        canvas.wait_for(state="visible")
        assert root.locator(".sw-thumb").count() == 12
        pixels = "(c) => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data).join(',')"

        def wait_rev(rev):
            page.wait_for_function(
                "([sel, rev]) => Number(document.querySelector(sel)?.dataset.rev) > rev",
                arg=[f'[data-sw-test="{marker}"] .sw-lab', rev],
            )

        # pick a cell from the gallery
        rev = int(root.get_attribute("data-rev"))
        root.locator('.sw-thumb[data-index="3"]').click()
        wait_rev(rev)
        assert lab.eval("img_lab.index") == 3
        plain = canvas.evaluate(pixels)
        # select channel 2: its activation map is overlaid on the image
        rev = int(root.get_attribute("data-rev"))
        root.locator('[data-select="2"]').click()
        wait_rev(rev)
        assert lab.eval("img_lab.selected") == 2 and canvas.get_attribute("data-map") == "on"
        with_map = canvas.evaluate(pixels)
        assert with_map != plain
        shot = REPO / "test-artifacts" / "featurelab-images.png"  # for a person to look at
        shot.parent.mkdir(parents=True, exist_ok=True)
        shot.write_bytes(root.screenshot(animations="disabled"))
        edited_before = [float(v) for v in root.locator(".sw-pred").evaluate_all("rs => rs.map(r => r.dataset.edited)")]
        # switch channel 2 off: the overlay (an edited map) disappears and the edited prediction moves
        rev = int(root.get_attribute("data-rev"))
        root.locator('.sw-feature[data-feature="2"] input.sw-toggle').uncheck()
        wait_rev(rev)
        assert lab.eval("float(abs(img_lab.spatial).max())") == 0.0
        assert canvas.evaluate(pixels) == plain
        edited_after = [float(v) for v in root.locator(".sw-pred").evaluate_all("rs => rs.map(r => r.dataset.edited)")]
        assert edited_after != edited_before
        assert edited_after == pytest.approx(lab.eval("img_lab.edited.tolist()"), abs=1e-6)
        # the ground-truth panel lists the selected channel's correlation with every true factor
        assert root.locator(".sw-gt-row").count() == 20
    finally:
        lab.delete_cell(marker)
        lab.execute("img_lab.lens.close()\ndel img_lab, cnn, world")
