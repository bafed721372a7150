"""FeatureLab (patient 38) and the explorer in Voila (the notebook as an app), in Chromium.

One server and page for the module (conftest's ``frontend``); the checks live in ``frontends.py``
and compare what the views show with the widgets' Python state. Any page error or anywidget
warning from our views fails the test (``fe``).
"""

from __future__ import annotations

import pytest
from frontends import check_explorer, check_lab_keys, check_lab_mouse, check_renders

pytestmark = pytest.mark.browser

FRONTEND = "voila"


def test_renders_both_widgets(fe):
    check_renders(fe)


def test_lab_slider_by_mouse_reaches_python_and_back(fe):
    check_lab_mouse(fe)


def test_lab_sliders_by_arrow_keys(fe):
    check_lab_keys(fe)


def test_explorer_ablates_and_retrains(fe):
    check_explorer(fe)
