"""A slow kernel in real JupyterLab + Chromium: the steering slider ends on the value the user set last.

The view keeps at most one request in flight; one unanswered for longer than the coalescer's
timeout (5 s, not configurable from the view) no longer holds newer values back. Here the
notebook's kernel answers the first request only after 6 s, while the user moves the slider on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import TourNotebook

pytestmark = pytest.mark.browser

UNIT = 13

#: Run in the notebook's kernel: the FeatureLab's request handler records each request's seq and
#: sleeps 6 s (longer than the view's 5 s timeout) before answering the first one.
SLOW = """
import time as _sw_time
_sw_fast = lab._handlers["request"]
_sw_seen = []
def _sw_slow(content, buffers):
    _sw_seen.append(content["seq"])
    if len(_sw_seen) == 1:
        _sw_time.sleep(6)
    _sw_fast(content, buffers)
lab._handlers["request"] = _sw_slow
"""


def test_value_set_after_a_timed_out_request_is_the_one_that_stays(lab: TourNotebook) -> None:
    page = lab.page
    slider = lab.feature(UNIT).locator("input.sw-slider")
    step = float(slider.get_attribute("step") or 0)
    assert step > 0
    first, middle, last = 3 * step, 6 * step, 9 * step
    rev = lab.dom_rev()
    lab.execute(SLOW)
    try:
        # first goes out at once and is answered after 6 s; middle waits for that answer; last comes
        # when the first request is 5.3 s old, past the timeout, so it goes out at once as well
        page.evaluate(
            """async ([sel, values]) => {
                const s = document.querySelector(sel);
                const set = (v) => { s.value = String(v); s.dispatchEvent(new Event('input', { bubbles: true })); };
                set(values[0]);
                await new Promise(r => setTimeout(r, 300));
                set(values[1]);
                await new Promise(r => setTimeout(r, 5000));
                set(values[2]);
            }""",
            [f'{lab.selector} .sw-feature[data-feature="{UNIT}"] input.sw-slider', [first, middle, last]],
        )
        lab.settle(after=rev)
        seen = lab.eval("_sw_seen")
    finally:
        lab.execute('lab._handlers["request"] = _sw_fast\ndel _sw_fast, _sw_slow, _sw_seen, _sw_time')

    assert lab.eval(f"float(lab.steer[{UNIT}])") == pytest.approx(last, rel=1e-6)
    assert float(slider.input_value()) == pytest.approx(last, rel=1e-6)
    # the kernel got the first and the last value only: the middle one was superseded, never sent
    assert len(seen) == 2 and seen[1] == seen[0] + 1, seen
    assert lab.feature(UNIT).locator(".sw-steer-value").text_content() == f"{last:+.2f}"
    assert lab.preds().edited == pytest.approx(lab.eval("lab.edited.tolist()"), abs=1e-5)
    assert lab.eval("lab.error") == ""
