"""The Lens never serves stale or lost state: off(), the baseline cache, copies, nested lenses, edit files.

Each test here reproduces a defect found by probing (issue 12) and failed before its fix.
"""

from __future__ import annotations

import copy
import json
from collections import OrderedDict

import pytest
import torch
from _util import hook_count
from torch import nn

import superwidgets as sw
from superwidgets.engine import ModelError


def test_off_stays_off_after_a_lens_call_inside_it(mlp):
    x = torch.randn(4, 6)
    with sw.Lens(mlp) as lens:
        lens.edit("hidden", sw.Ablate([0, 1, 2]))
        edited = mlp(x)
        with lens.off():
            clean = mlp(x)
            assert not torch.equal(clean, edited)
            lens.activations(x, "hidden")  # any lens call inside off() ...
            lens.run(x)
            with lens.off():  # ... and a nested off()
                pass
            after = mlp(x)  # ... must leave the edits off
        assert torch.equal(after, clean)
        assert torch.equal(mlp(x), edited)  # and on again after the block


def test_baseline_follows_a_data_write(mlp):
    x = torch.randn(4, 6)
    with sw.Lens(mlp) as lens:
        lens.edit("hidden", sw.Ablate([0]))
        before = lens.run(x).baseline.clone()
        mlp.inp.weight.data.mul_(0.5)  # .data has its own version counter
        with lens.off():
            want = mlp(x)
        assert not torch.equal(want, before)
        got = lens.run(x)
        assert torch.equal(got.baseline, want)
        lens.close()
        lens2 = sw.Lens(mlp)
        lens2.edit("hidden", sw.Ablate([0]))
        assert torch.equal(lens2.run(x).edited, got.edited)


def test_baseline_follows_batchnorm_running_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict([("inp", nn.Linear(5, 8)), ("bn", nn.BatchNorm1d(8)), ("out", nn.Linear(8, 2))]))
    model.eval()
    x = torch.randn(6, 5)
    with sw.Lens(model) as lens:
        lens.edit("bn", sw.Ablate([1]))
        before = lens.run(x).baseline.clone()
        model.train()
        model(torch.randn(32, 5) * 3 + 1)  # a train-mode forward updates the running statistics in place
        model.eval()
        with lens.off():
            want = model(x)
        assert (want - before).abs().max() > 1e-3
        assert torch.equal(lens.run(x).baseline, want)


def test_baseline_cache_still_hits_when_nothing_changed(mlp):
    x = torch.randn(4, 6)
    with sw.Lens(mlp) as lens:
        lens.edit("hidden", sw.Ablate([0]))
        a = lens.run(x).baseline
        b = lens.run(x).baseline
        assert a is b  # the same cached object: nothing was recomputed


def test_deepcopy_while_a_lens_is_open_is_clean_and_independent(mlp):
    x = torch.randn(4, 6)
    with torch.no_grad():
        clean = mlp(x)
    lens = sw.Lens(mlp)
    lens.edit("hidden", sw.Ablate([0, 1, 2]))
    assert not torch.equal(mlp(x), clean)
    variant = copy.deepcopy(mlp)
    # the copy's module runs its class's own forward, tied to no lens
    assert variant.hidden.forward.__func__ is nn.ReLU.forward and variant.hidden.forward.__self__ is variant.hidden
    assert torch.equal(variant(x), clean)
    assert torch.equal(sw.Lens(variant).run(x).baseline, clean)
    assert not torch.equal(mlp(x), clean)  # the original stays edited by its lens
    lens.close()
    assert hook_count(mlp) == 0


def test_deepcopy_keeps_a_users_own_instance_forward(mlp):
    x = torch.randn(2, 6)
    mlp.out.forward = lambda h: torch.zeros(h.shape[0], 3)  # a user's own override
    with sw.Lens(mlp) as lens:
        lens.edit("out", sw.Scale([0], factor=2.0))
        variant = copy.deepcopy(mlp)
    assert torch.equal(variant(x), torch.zeros(2, 3))
    assert "forward" in variant.out.__dict__


def test_nested_lenses_on_a_shared_module_leave_nothing_behind():
    torch.manual_seed(0)
    inner = nn.Sequential(OrderedDict([("lin", nn.Linear(4, 4)), ("act", nn.ReLU())]))
    model = nn.Sequential(inner, nn.Linear(4, 2))
    x = torch.randn(3, 4)
    with torch.no_grad():
        clean = model(x)
    for _ in range(5):
        outer = sw.Lens(model)
        outer.edit("0.act", sw.Ablate([0]))
        nested = sw.Lens(model[0])
        nested.edit("act", sw.Ablate([1]))
        with torch.no_grad():
            both = model(x)
        assert not torch.equal(both, clean)
        outer.close()  # the outer first: its wrapper sits under the nested lens's
        nested = sw.Lens(model[0])  # replaced: the previous nested lens is closed
        nested.close()
    assert hook_count(model) == 0
    with torch.no_grad():
        assert torch.equal(model(x), clean)


def test_nested_lenses_closed_outer_first_keep_the_inner_edit():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Sequential(OrderedDict([("lin", nn.Linear(4, 4)), ("act", nn.ReLU())])), nn.Linear(4, 2))
    x = torch.randn(3, 4)
    outer = sw.Lens(model)
    outer.edit("0.act", sw.Ablate([0, 1, 2, 3]))
    nested = sw.Lens(model[0])
    nested.edit("act", sw.Scale([0], factor=3.0))
    outer.close()
    with torch.no_grad():
        h = model[0](x)
    ref = torch.relu(model[0].lin(x))
    ref[:, 0] *= 3
    assert torch.allclose(h, ref)  # only the nested lens's edit acts
    nested.close()
    assert hook_count(model) == 0


def _edit_file(tmp_path, sites):
    doc = {
        "format": "superwidgets.edits",
        "version": 1,
        "edits": [
            {"site": s, "op": {"op": "ablate", "features": [0]}, "basis": {"kind": "neurons"}, "name": f"e{i}"}
            for i, s in enumerate(sites)
        ],
        "tensors": None,
    }
    path = tmp_path / "edits.json"
    path.write_text(json.dumps(doc))
    return path


def test_failed_load_edits_keeps_the_lens_edits(mlp, tmp_path):
    x = torch.randn(4, 6)
    with sw.Lens(mlp) as lens:
        mine = lens.edit("hidden", sw.Scale([2], factor=0.5), enabled=False)
        mine2 = lens.edit("out", sw.Ablate([1]))
        before = lens.run(x).edited.clone()
        with pytest.raises(ValueError, match=r"edit 1 .*unknown site 'hiden'; did you mean 'hidden'"):
            lens.load_edits(_edit_file(tmp_path, ["hidden", "hiden"]))
        assert lens.edits == [mine, mine2]
        assert mine.enabled is False and mine2.enabled is True
        assert torch.equal(lens.run(x).edited, before)
        # a file that fits loads (and replaces)
        loaded = lens.load_edits(_edit_file(tmp_path, ["hidden", "out"]))
        assert lens.edits == loaded


def test_failed_load_edits_wrong_width_keeps_the_lens_edits(mlp, tmp_path):
    x = torch.randn(4, 6)
    with sw.Lens(mlp, example=x) as lens:
        mine = lens.edit("hidden", sw.Ablate([0]))
        path = _edit_file(tmp_path, ["hidden", "hidden"])
        doc = json.loads(path.read_text())
        doc["edits"][1]["op"]["features"] = [99]
        path.write_text(json.dumps(doc))
        with pytest.raises(ValueError, match="edit 1"):
            lens.load_edits(path)
        assert lens.edits == [mine]


@pytest.mark.parametrize("dtype", [torch.int64, torch.uint8])
def test_integer_image_batch_says_to_convert(dtype):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(1, 3, 8, 8))
    x = torch.randint(0, 255, (2, 3, 8, 8)).to(dtype)
    with sw.Lens(model) as lens, pytest.raises(ModelError) as info:
        lens.run(x)
    msg = str(info.value)
    assert f"integer tensor ({dtype})" in msg and "x.to(torch.float32)" in msg
    assert ("/ 255" in msg) == (dtype == torch.uint8)


def test_every_way_an_edit_changes_reaches_the_next_run():
    """The lens keeps the set of sites with enabled edits between runs; each change must reset it."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x = torch.randn(5, 4)
    with torch.no_grad():
        plain = model(x)
    lens = sw.Lens(model)
    assert torch.equal(lens.run(x).edited, plain)
    e = lens.edit("1", sw.Ablate([0, 1, 2, 3, 4, 5, 6, 7]), enabled=False)
    assert torch.equal(lens.run(x).edited, plain)  # no site active: the run returns the baseline
    e.enabled = True
    ablated = lens.run(x).edited
    assert not torch.allclose(ablated, plain)
    e.enabled = False
    assert torch.equal(lens.run(x).edited, plain)
    e.enabled = True
    assert torch.equal(lens.run(x).edited, ablated)
    lens.remove(e)
    assert torch.equal(lens.run(x).edited, plain)
    e.enabled = False  # detached: changes only the edit
    lens.add(e)
    assert torch.equal(lens.run(x).edited, plain)
    e.enabled = True
    assert torch.equal(lens.run(x).edited, ablated)
    lens.clear()
    assert torch.equal(lens.run(x).edited, plain)
    s = lens.edit("0", sw.Steer(direction=torch.ones(8), alpha=0.0))
    assert torch.allclose(lens.run(x).edited, plain)
    s.update(alpha=2.0)
    assert not torch.allclose(lens.run(x).edited, plain)
    lens.close()
    with torch.no_grad():
        assert torch.equal(model(x), plain)  # closed: nothing edits the model any more
