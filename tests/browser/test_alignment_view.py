"""AlignmentView in real JupyterLab + Chromium: it renders, and hovering links the two panels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.browser

MARKER = "alignment"

CODE = """
import numpy as np
rng = np.random.default_rng(0)
_labels = np.repeat([0, 1, 2], [40, 30, 20])
_base = (rng.standard_normal((3, 6)) * 4)[_labels] + rng.standard_normal((90, 6))
_q = np.linalg.qr(rng.standard_normal((6, 6)))[0]
_names = ['control', 'PD', '<img src=x onerror=alert(1)>']
align_view = sw.AlignmentView(_base, _base @ _q + 0.05 * rng.standard_normal((90, 6)), labels_a=_labels,
                              labels_b=_labels, paired=True, class_names=_names, names=('image', 'expression'))
align_view
"""

#: the same rule as js/align.ts topCoupled: mass >= 10% of the row's top, at most 25, largest first
TOP = (
    "(lambda w: sorted([j for j in range(len(w)) if w[j] >= 0.1 * w.max()], key=lambda j: (-w[j], j))[:25])"
    "(align_view.coupling[{i}])"
)

PIXELS = "(c) => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data).join(',')"


def test_alignment_view_renders_and_hover_highlights_coupled_points(tour):
    page = tour.page
    n_errors = len(tour.page_errors)
    cell = tour.run_new_cell(CODE, MARKER)
    try:
        root = cell.locator(".sw-align")
        root.wait_for(state="visible", timeout=60_000)
        page.wait_for_function(
            "(sel) => document.querySelector(sel)?.dataset.rev !== undefined",
            arg=f'[data-sw-test="{MARKER}"] .sw-align',
        )
        assert tour.eval("align_view.error") == ""
        heat = root.locator("canvas.sw-heat")
        assert heat.get_attribute("data-rows") == "90" and heat.get_attribute("data-cols") == "90"
        # the heatmap shows the coupling: its strongest cell is painted brighter than its weakest
        T = np.array(tour.eval("align_view.coupling.tolist()"))[:-2, 2:]  # away from the label bands
        hi = np.unravel_index(T.argmax(), T.shape)
        lo = np.unravel_index(T.argmin(), T.shape)
        bright = heat.evaluate(
            """(c, cells) => cells.map(([i, j]) => {
                const x = Math.floor((j + 2.5) / 90 * c.width), y = Math.floor((i + 0.5) / 90 * c.height);
                const d = c.getContext('2d').getImageData(x, y, 1, 1).data;
                return d[0] + d[1] + d[2];
            })""",
            [[int(hi[0]), int(hi[1])], [int(lo[0]), int(lo[1])]],
        )
        assert bright[0] > bright[1] + 150, f"heatmap brightness at max/min coupling: {bright}"
        # confusion matrix and scores as Python has them; the hostile label is text
        counts = [int(c) for c in root.locator(".sw-confusion td").evaluate_all("cs => cs.map(c => c.dataset.count)")]
        assert counts == [v for row in tour.eval("align_view.confusion.tolist()") for v in row]
        assert root.locator(".sw-confusion img").count() == 0
        assert root.locator(".sw-confusion th", has_text="<img src=x onerror=alert(1)>").count() == 2
        acc = float(root.locator('[data-score="label_transfer_argmax"]').get_attribute("data-value"))
        assert acc == pytest.approx(tour.eval("align_view.scores['label_transfer_argmax']"))

        can_a = root.locator("canvas.sw-embed-a")
        can_b = root.locator("canvas.sw-embed-b")
        assert can_b.get_attribute("data-highlight") == ""
        before = can_b.evaluate(PIXELS)
        # hover an A point that has no other point near it on screen
        emb = tour.eval("align_view.embed_a.tolist()")
        ox, oy, k = (float(v) for v in can_a.get_attribute("data-transform").split(","))
        screen = [(ox + k * x, oy - k * y) for x, y in emb]

        def clearance(i):
            return min((screen[i][0] - p[0]) ** 2 + (screen[i][1] - p[1]) ** 2 for j, p in enumerate(screen) if j != i)

        i = max(range(len(screen)), key=clearance)
        can_a.scroll_into_view_if_needed()
        box = can_a.bounding_box()
        target = page.evaluate(
            "([x, y]) => document.elementFromPoint(x, y)?.className ?? ''",
            [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
        )
        assert "sw-embed-a" in str(target), f"the A panel is covered by {target!r}"
        scale = box["width"] / 240
        page.mouse.move(box["x"] + screen[i][0] * scale, box["y"] + screen[i][1] * scale)
        page.wait_for_function(
            "([sel, i]) => document.querySelector(sel)?.dataset.hover === String(i)",
            arg=[f'[data-sw-test="{MARKER}"] canvas.sw-embed-a', i],
        )
        highlighted = [int(j) for j in can_b.get_attribute("data-highlight").split(",")]
        assert highlighted == tour.eval(TOP.format(i=i))
        assert i in highlighted  # paired copies: the point's own partner gets its mass
        assert can_b.evaluate(PIXELS) != before  # the highlight was drawn
        # hover the other way: a B point lights up its coupled A points
        page.mouse.move(box["x"] - 30, box["y"] - 30)
        page.wait_for_function(
            "(sel) => document.querySelector(sel)?.dataset.hover === '-1'",
            arg=f'[data-sw-test="{MARKER}"] canvas.sw-embed-a',
        )
        assert can_b.get_attribute("data-highlight") == ""
        assert can_b.evaluate(PIXELS) == before
        # an epsilon change from Python re-aligns and the view follows
        rev = int(root.get_attribute("data-rev"))
        tour.execute("align_view.epsilon = 0.02")
        page.wait_for_function(
            "([sel, rev]) => Number(document.querySelector(sel)?.dataset.rev) > rev",
            arg=[f'[data-sw-test="{MARKER}"] .sw-align', rev],
        )
        assert root.locator("input.sw-epsilon").input_value() == "0.02"
        assert all(
            c.get_attribute("data-lm-suppress-shortcuts") == "true" for c in root.locator("input, button, select").all()
        )
        new = tour.page_errors[n_errors:]
        assert not new, "uncaught exceptions in the page:\n" + "\n".join(new)
        shot = Path(__file__).resolve().parents[2] / "test-artifacts" / "alignment.png"  # for a person to look at
        shot.parent.mkdir(parents=True, exist_ok=True)
        shot.write_bytes(root.screenshot(animations="disabled"))
    finally:
        tour.delete_cell(MARKER)
        tour.execute("del align_view")
