"""A snapshot whose labels hold "<!--" and "<script" opens in real Chromium and shows them as text.

Left raw in the embedded state JSON, "<!--" followed by "<script" makes the HTML parser run the
state's script element on past its own end tag, so the page is blank. The file is written with
``to_html`` to a real temporary file and opened from disk with no network.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from test_snapshot import _clean, _open

import superwidgets as sw

pytestmark = pytest.mark.browser

HOSTILE = ["<!--<script>alert(1)</script>", "<!-- hi <script>"]


def test_labels_with_comment_and_script_openers_render_as_text(browser: Any, tmp_path: Any) -> None:
    model, data = sw.zoo.load("breast-cancer-mlp")
    with sw.Lens(model) as lens:
        lab = sw.FeatureLab(lens, inputs=data, site="hidden", index=38, class_names=HOSTILE)
        lab.ablated = [13]
        path = tmp_path / "hostile.html"
        lab.to_html(path)
    page, seen = _open(browser, path)
    try:
        page.wait_for_timeout(200)  # time for a stray script or onerror handler to run
        assert page.locator(".sw-lab .sw-class-name").all_text_contents() == HOSTILE
        root_text = page.locator("#sw-snapshot-root").text_content() or ""
        assert all(name in root_text for name in HOSTILE)
        assert page.locator("#sw-snapshot-root script, #sw-snapshot-root img").count() == 0
        rows = page.eval_on_selector_all(".sw-pred", "els => els.map(r => Number(r.dataset.edited))")
        np.testing.assert_allclose(rows, lab.edited, atol=1e-6)
        _clean(seen)  # no page error, no dialog, no request
    finally:
        page.close()
