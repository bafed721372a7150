"""Static HTML snapshots without a browser: the file's parts, escaping, replies and bad input."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import superwidgets as sw
from superwidgets.science.sae import ReLUSAE
from superwidgets.widgets.snapshot import precompute_replies


def _scripts(text: str) -> dict[str, str]:
    return dict(re.findall(r'<script type="[^"]+" id="(sw-snapshot-[a-z]+)">(.*?)</script>', text, flags=re.S))


def test_state_is_json_with_arrays_as_base64_and_script_ends_escaped(tmp_path):
    labels = np.repeat([0, 1], [6, 4])
    x = np.random.default_rng(0).standard_normal((10, 3))
    view = sw.AlignmentView(x, x.copy(), labels_a=labels, labels_b=labels, class_names=["a", "</script><b>x"])
    text = view.to_html(tmp_path / "a.html")
    parts = _scripts(text)
    assert set(parts) == {"sw-snapshot-state", "sw-snapshot-replies", "sw-snapshot-esm"}
    assert "</script><b>" not in parts["sw-snapshot-state"]  # escaped as <\/script>
    state = json.loads(parts["sw-snapshot-state"])
    assert state["class_names"][1] == "</script><b>x"
    assert not any(k.startswith("_") for k in state) and "layout" not in state
    coupling = state["coupling"]
    raw = np.frombuffer(__import__("base64").b64decode(coupling["view"]["__sw_b64__"]), dtype=coupling["dtype"])
    np.testing.assert_array_equal(raw.reshape(coupling["shape"]), view.coupling.astype(np.float32))
    assert json.loads(parts["sw-snapshot-replies"]) == []


def test_explorer_replies_cover_every_ablation_and_restore_the_state():
    ex = sw.SuperpositionExplorer(n_features=4, n_hidden=2, density=0.05, background=False, steps=400)
    before = ex.interference.copy()
    text = ex.to_html()
    replies = json.loads(_scripts(text)["sw-snapshot-replies"])
    assert [r["match"] for r in replies] == [{"type": "ablate", "feature": f} for f in range(-1, 4)]
    assert all(set(r["patch"]) == {"ablated", "interference"} for r in replies)
    assert [r["patch"]["ablated"] for r in replies] == [-1, 0, 1, 2, 3]
    assert ex.ablated == -1 and np.array_equal(ex.interference, before)  # put back


def test_precompute_replies_skips_refused_cases_and_restores_on_error():
    ex = sw.SuperpositionExplorer(n_features=3, n_hidden=2, background=False, steps=200)
    cases = [({"f": 1}, lambda: ex._set_ablated(1)), ({"f": 9}, lambda: ex._set_ablated(9))]
    replies = precompute_replies(ex, cases, lambda: ex._set_ablated(-1))
    assert [r["match"] for r in replies] == [{"f": 1}]  # 9 is out of range: left to the kernel
    assert ex.ablated == -1

    def boom() -> None:
        raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError, match="model crashed"):
        precompute_replies(ex, [({"f": 2}, lambda: (ex._set_ablated(2), boom()))], lambda: ex._set_ablated(-1))
    assert ex.ablated == -1  # restored even so


def test_dashboard_snapshot_choice_and_errors(tmp_path):
    model, data = sw.zoo.load("breast-cancer-mlp")
    dash = sw.FeatureDashboard(model, "hidden", ReLUSAE(16, 12, seed=0), data.X[:100], effect_sample=30)
    try:
        text = dash.to_html(features=[3, 5])
        replies = json.loads(_scripts(text)["sw-snapshot-replies"])
        picked = [r["match"]["feature"] for r in replies if r["match"]["type"] == "request"]
        assert picked == list(dict.fromkeys([int(dash.selected), 3, 5]))
        sorts = {(r["match"]["by"], r["match"]["class"]) for r in replies if r["match"]["type"] == "sort"}
        assert ("max_activation", 0) in sorts and ("effect", 1) in sorts
        with pytest.raises(ValueError, match="features must be at least 1"):
            dash.to_html(features=0)
        with pytest.raises(FileNotFoundError, match="does not exist; create it first"):
            dash.to_html(tmp_path / "missing" / "d.html")
        assert dash.error == ""
    finally:
        dash.lens.close()
    # with the lens closed the file still saves; only the sorts are answered offline
    replies = json.loads(_scripts(dash.to_html())["sw-snapshot-replies"])
    assert replies and all(r["match"]["type"] == "sort" for r in replies)


def test_featurelab_replies_flip_each_switch_from_the_saved_state():
    model, data = sw.zoo.load("breast-cancer-mlp")
    with sw.Lens(model) as lens:
        lab = sw.FeatureLab(lens, inputs=data, site="hidden", index=38)
        lab.ablated = [13]
        edited = lab.edited.copy()
        replies = json.loads(_scripts(lab.to_html())["sw-snapshot-replies"])
        assert lab.ablated == [13] and np.array_equal(lab.edited, edited)  # put back
    sets = [r["match"]["ablated"] for r in replies]
    assert sets[0] == [13] and sets[-1] == [] and len(sets) == 16 + 2
    assert sorted(map(tuple, sets[1:-1])) == sorted(tuple(sorted({13} ^ {i})) for i in range(16))
    assert all(r["match"]["index"] == 38 and len(r["match"]["__buffers__"]) == 1 for r in replies)
    assert {"edited", "ablated"} <= set(replies[1]["patch"])


#: Class names that end a naively escaped state script early: "<!--" then "<script" puts the HTML
#: parser in its "double escaped" state, where the state's own "</script>" no longer closes it.
HOSTILE = ["<!--<script>alert(1)</script>", "<!-- a & b > c \u2028\u2029 <script>"]


def test_state_script_escapes_every_markup_character_and_decodes_to_the_same_state(tmp_path):
    from superwidgets.widgets.snapshot import _view_state

    model, data = sw.zoo.load("breast-cancer-mlp")
    with sw.Lens(model) as lens:
        lab = sw.FeatureLab(lens, inputs=data, site="hidden", index=38, class_names=HOSTILE)
        text = lab.to_html(tmp_path / "hostile.html")
        state, replies = _view_state(lab), lab._snapshot_replies()
    parts = _scripts(text)
    for name in ("sw-snapshot-state", "sw-snapshot-replies"):
        raw = parts[name]
        assert not set(raw) & set("<>&\u2028\u2029"), f"{name} holds a raw markup character"
    assert json.loads(parts["sw-snapshot-state"]) == json.loads(json.dumps(state))
    assert json.loads(parts["sw-snapshot-state"])["class_names"] == HOSTILE
    assert json.loads(parts["sw-snapshot-replies"]) == json.loads(json.dumps(replies))


def _synced(widget) -> dict:
    """Every synced trait of ``widget`` as comparable JSON (arrays as their bytes)."""
    state, _paths, buffers = __import__("ipywidgets").widgets.widget._remove_buffers(widget.get_state())
    return {"state": state, "buffers": [bytes(b) for b in buffers]}


def test_to_html_leaves_the_live_widgets_state_and_error_area_alone(tmp_path):
    model, data = sw.zoo.load("breast-cancer-mlp")
    with sw.Lens(model) as lens:
        lab = sw.FeatureLab(lens, inputs=data, site="hidden", index=38)
        lab.ablated = [13]
        with pytest.raises(ValueError, match="out of range"):
            lab.index = 100000  # a bad input: the error area says so, the last good state stays
        error = lab.error
        assert "out of range" in error
        assert lab.wait(60)  # the cohort of the last good controls is complete (it follows in a thread)
        before = _synced(lab)
        sent: list = []
        send = lab.comm.send
        lab.comm.send = lambda *a, **k: (sent.append((a, k)), send(*a, **k))
        lab.to_html(tmp_path / "lab.html")
        assert lab.error == error
        assert _synced(lab) == before  # rev, seq, origin and every result too
        assert sent == []  # the views were told nothing: nothing changed

    dash = sw.FeatureDashboard(model, "hidden", ReLUSAE(16, 12, seed=0), data.X[:100], effect_sample=30)
    try:
        with pytest.raises(ValueError):
            dash.selected = 10**6
        assert dash.error != ""
        before = _synced(dash)
        dash.to_html(tmp_path / "dash.html", features=4)
        assert _synced(dash) == before
    finally:
        dash.lens.close()
