"""WidgetBase's wire protocol with a real widget: ``seq``/``origin`` answer view requests only."""

from __future__ import annotations

import numpy as np
import pytest

import superwidgets as sw


@pytest.fixture
def lab():
    model, data = sw.zoo.load("breast-cancer-mlp")
    lens = sw.Lens(model)
    yield sw.FeatureLab(lens, inputs=data, site="hidden", index=38)
    lens.close()


def _from_view(w, content, buffers=()):
    """Deliver ``content`` the way a view's ``model.send`` reaches the kernel (an ipywidgets custom message)."""
    w._handle_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": list(buffers)})


def _request(w, seq, origin="view-a", index=38, ablated=(), steer=None):
    steer = np.zeros(16, np.float32) if steer is None else np.asarray(steer, np.float32)
    content = {"type": "request", "seq": seq, "origin": origin, "index": index, "ablated": list(ablated)}
    _from_view(w, content, [steer.tobytes()])


def test_origin_is_the_requesting_view_for_answers_and_empty_for_python_changes(lab):
    _request(lab, 3, ablated=[13])
    assert (lab.seq, lab.origin, lab.ablated, lab.error) == (3, "view-a", [13], "")

    # a trait set from Python is not an answer to view-a
    rev = lab.rev
    lab.steer = np.eye(16, dtype=np.float32)[2]
    assert lab.rev > rev and lab.origin == ""

    _request(lab, 4, origin="view-b")
    assert lab.origin == "view-b"
    lab.reset()  # a method call from Python
    assert lab.origin == ""

    # an error answered to a view keeps that view's origin; one raised from Python does not
    _request(lab, 5, index=10**6)
    assert "out of range" in lab.error and (lab.seq, lab.origin) == (5, "view-a")
    with pytest.raises(ValueError, match="out of range"):
        lab.index = 10**6
    assert "out of range" in lab.error and lab.origin == ""

    _request(lab, 6)
    assert lab.origin == "view-a"
    with pytest.raises(ValueError):
        lab.set_record({"no such field": 1.0}, partial=True)  # FeatureLab's own error path
    assert lab.error != "" and lab.origin == ""


def test_a_replaced_widget_says_so_as_a_python_change(lab):
    _request(lab, 2, ablated=[1])
    assert lab.origin == "view-a"
    newer = sw.FeatureLab(lab.lens, inputs=sw.zoo.load("breast-cancer-mlp")[1], site="hidden", index=38)
    assert "replaced" in lab.error and lab.origin == ""
    assert newer.origin == ""
