"""Lens lifecycle, sites, errors, caching, leak-freedom, parameter safety."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import torch
from _util import assert_same_state, hook_count, state
from torch import nn

import superwidgets as sw
from superwidgets.engine import LensClosedError


def test_unknown_site_lists_close_matches(mlp):
    with sw.Lens(mlp) as lens, pytest.raises(ValueError, match=r"unknown site 'hiden'; did you mean 'hidden'\?"):
        lens.edit("hiden", sw.Ablate([0]))


def test_unknown_site_separators(nested):
    with sw.Lens(nested) as lens:
        with pytest.raises(ValueError) as info:
            lens.edit("layer1", sw.Ablate([0]))
        assert "'layers.1'" in str(info.value)


def test_sites_list_paths_and_shapes(nested):
    with sw.Lens(nested) as lens:
        assert [s.shape for s in lens.sites()] == [None] * len(lens.sites())
        lens.run(torch.randn(3, 4))
        info = {s.name: s for s in lens.sites()}
        assert set(info) == {
            "embed",
            "layers",
            "layers.0",
            "layers.0.lin",
            "layers.1",
            "layers.1.lin",
            "head",
            "head.norm",
            "head.out",
        }
        assert info["layers.0"].shape == (3, 8)  # element 0 of the tuple output
        assert info["head.out"].shape == (3, 3)
        assert info["layers.0"].module == "TupleBlock"


def test_tuple_output_edits_element_zero(nested):
    x = torch.randn(5, 4)
    with sw.Lens(nested) as lens:
        lens.edit("layers.0", sw.Ablate(list(range(8))))
        h = lens.activations(x, "layers.0", edited=True)["layers.0"]
        assert torch.all(h == 0)
        # the next block sees the edit: its output is relu(bias)
        h1 = lens.activations(x, "layers.1", edited=True)["layers.1"]
        want = torch.relu(nested.layers[1].lin.bias).expand(5, 8)
        assert torch.allclose(h1, want)


def test_tuple_output_other_element(nested):
    x = torch.randn(5, 4)
    got = {}

    def capture(_m, _a, out):
        got["aux"] = out[1]

    with sw.Lens(nested, resume=False) as lens:  # a full forward, so the capture hook sees the edit
        lens.edit("layers.0", sw.Steer(direction=torch.ones(5), alpha=1.0), element=1, feature_dim=0)
        handle = nested.layers[0].register_forward_hook(capture)  # runs after the lens's hook
        r = lens.run(x)
        handle.remove()
        assert torch.equal(r.edited, r.baseline)  # element 1 is not used downstream
        h = lens.activations(x, "layers.0")["layers.0"]
        assert torch.allclose(got["aux"], h.sum(-1) + 1.0)


def test_dataclass_and_dict_outputs():
    @dataclasses.dataclass
    class Out:
        hidden: torch.Tensor
        extra: torch.Tensor

    class DC(nn.Module):
        def forward(self, x):
            return Out(x * 2, x)

    class DictBlock(nn.Module):
        def forward(self, x):
            return {"h": x + 1, "z": x}

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = DC()
            self.b = DictBlock()

        def forward(self, x):
            return self.b(self.a(x).hidden)["h"]

    m = M()
    x = torch.ones(2, 3)
    with sw.Lens(m) as lens:
        lens.edit("a", sw.Clamp([0], value=5.0), element="hidden")
        lens.edit("b", sw.Scale([1], factor=0.0), element="h")
        out = lens.run(x).edited
        assert out[:, 0].tolist() == [6.0, 6.0]
        assert out[:, 1].tolist() == [0.0, 0.0]
        assert out[:, 2].tolist() == [3.0, 3.0]


def test_wrong_direction_length_is_clear(mlp):
    with sw.Lens(mlp) as lens:
        lens.run(torch.randn(2, 6))
        with pytest.raises(ValueError, match="direction has length 3 but the site has 5 features"):
            lens.edit("hidden", sw.Steer(direction=torch.ones(3)))
        assert lens.edits == []


def test_wrong_direction_length_before_shape_known(mlp):
    with sw.Lens(mlp) as lens:
        lens.edit("hidden", sw.Steer(direction=torch.ones(3)))  # shape unknown yet
        with pytest.raises(sw.EditError, match="direction has length 3"):
            lens.run(torch.randn(2, 6))


def test_nan_direction_and_input(mlp):
    with pytest.raises(ValueError, match="NaN or Inf"):
        sw.Steer(direction=torch.tensor([1.0, float("nan"), 0, 0, 0]))
    with pytest.raises(ValueError, match="finite"):
        sw.Steer(feature=1, alpha=float("inf"))
    with sw.Lens(mlp) as lens:
        x = torch.randn(2, 6)
        x[0, 0] = float("nan")
        with pytest.raises(sw.InputError, match="NaN or Inf"):
            lens.run(x)


def test_wrong_dtype_is_clear(mlp):
    with sw.Lens(mlp) as lens, pytest.raises(sw.InputError, match=r"dtype torch.float64 .* x.to\(torch.float32\)"):
        lens.run(torch.randn(2, 6, dtype=torch.float64))


def test_feature_index_out_of_range(mlp):
    with sw.Lens(mlp) as lens:
        lens.run(torch.randn(1, 6))
        with pytest.raises(ValueError, match="feature 9 is out of range"):
            lens.edit("hidden", sw.Ablate([9]))


def test_model_error_is_wrapped_and_leaves_no_hooks():
    class Boom(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 3)
            self.b = nn.Linear(3, 3)

        def forward(self, x):
            h = self.a(x)
            if h.shape[0] == 2:
                raise RuntimeError("kaput")
            return self.b(h)

    m = Boom()
    before = state(m)
    with sw.Lens(m) as lens:
        lens.edit("a", sw.Ablate([0]))
        with pytest.raises(sw.ModelError, match="the model raised RuntimeError: kaput"):
            lens.run(torch.randn(2, 3))
        assert hook_count(m) == 1  # only the persistent hook of the bound site; no temporary one left
        lens.run(torch.randn(3, 3))  # still works after the failure
    assert hook_count(m) == 0
    assert_same_state(before, state(m))


def test_exception_inside_with_removes_hooks(mlp):
    with pytest.raises(KeyError), sw.Lens(mlp) as lens:
        lens.edit("hidden", sw.Ablate([0]))
        raise KeyError("user code failed")
    assert hook_count(mlp) == 0


def test_close_removes_everything(nested):
    lens = sw.Lens(nested, sites=["layers.*", "head.out"])
    assert hook_count(nested) == 3
    lens.edit("embed", sw.Ablate([0]))
    assert hook_count(nested) == 4
    lens.close()
    lens.close()
    assert hook_count(nested) == 0
    with pytest.raises(LensClosedError, match="closed"):
        lens.run(torch.randn(1, 4))


def test_new_lens_replaces_hooks(mlp):
    a = sw.Lens(mlp)
    a.edit("hidden", sw.Ablate([0]))
    b = sw.Lens(mlp)
    b.edit("hidden", sw.Ablate([0]))
    assert hook_count(mlp) == 1
    with pytest.raises(LensClosedError, match="replaced by a newer Lens"):
        a.run(torch.randn(1, 6))
    for _ in range(5):  # re-running a notebook cell
        c = sw.Lens(mlp)
        c.edit("hidden", sw.Ablate([1]))
    assert hook_count(mlp) == 1
    c.close()
    assert hook_count(mlp) == 0


def test_parameters_bit_identical_after_session(nested):
    before = state(nested)
    nested.train()  # the lens runs in eval mode and restores the mode
    with sw.Lens(nested) as lens:
        for i in range(8):
            lens.edit("layers.1", sw.Steer(direction=torch.randn(8), alpha=float(i)))
            lens.edit("embed", sw.MeanAblate([i % 8], reference=torch.randn(16, 4)))
            lens.run(torch.randn(4, 4))
    assert nested.training
    assert_same_state(before, state(nested))


def test_baseline_cached_until_input_changes(mlp):
    calls = []
    mlp.out.register_forward_hook(lambda m, a, o: calls.append(1))
    with sw.Lens(mlp) as lens:
        x = torch.randn(3, 6)
        lens.edit("hidden", sw.Ablate([0]))
        lens.run(x)
        n = len(calls)
        lens.run(x)
        assert len(calls) == n + 1  # only the edited forward ran
        x.add_(1.0)  # in-place change of the same tensor invalidates the cache
        r = lens.run(x)
        assert len(calls) == n + 3
        with torch.no_grad():
            assert torch.allclose(r.baseline, mlp[2](mlp[1](mlp[0](x))))
    mlp.out._forward_hooks.clear()


def test_no_edit_means_edited_equals_baseline(mlp):
    with sw.Lens(mlp) as lens:
        x = torch.randn(3, 6)
        r = lens.run(x)
        assert torch.equal(r.edited, r.baseline)
        assert torch.equal(r.delta, torch.zeros(3, 3))


def test_engine_imports_no_jupyter():
    code = (
        "import sys, superwidgets.engine; bad = [m for m in ('ipywidgets', 'anywidget', 'traitlets', 'matplotlib') "
        "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_remove_and_clear(mlp):
    with sw.Lens(mlp) as lens:
        a = lens.edit("hidden", sw.Ablate([0]))
        lens.edit("out", sw.Ablate([0]))
        lens.remove(a)
        assert [e.site for e in lens.edits] == ["out"]
        lens.clear("out")
        assert lens.edits == []
        assert sorted(lens.bound) == ["hidden", "out"]


def test_wrapper_keeps_foreign_instance_forward_and_restores_it(mlp):
    x = torch.randn(2, 6)
    original = mlp.hidden.forward
    calls = []

    def foreign(h):  # another tool's instance-level forward
        calls.append(1)
        return original(h)

    mlp.hidden.forward = foreign
    with sw.Lens(mlp) as lens:
        lens.edit("hidden", sw.Ablate(list(range(5))))
        assert torch.all(lens.activations(x, "hidden", edited=True)["hidden"] == 0)
        assert calls  # the foreign forward still ran under ours
    assert mlp.hidden.__dict__["forward"] is foreign
    del mlp.hidden.forward


def test_current_lens_of_a_model():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    assert sw.Lens.current(model) is None
    lens = sw.Lens(model)
    assert sw.Lens.current(model) is lens
    newer = sw.Lens(model)
    assert sw.Lens.current(model) is newer and lens.closed
    newer.close()
    assert sw.Lens.current(model) is None


def test_trace_gives_output_and_activations_in_one_pass(mlp):
    x = torch.randn(4, 6)
    with sw.Lens(mlp) as lens:
        lens.edit("hidden", sw.Ablate([0, 1]))
        calls = []
        handle = mlp.inp.register_forward_hook(lambda *_: calls.append(1))
        out, acts = lens.trace(x, "hidden")
        handle.remove()
        assert len(calls) == 1  # one forward for both
        with lens.off():
            assert torch.equal(out, mlp(x))
        assert torch.equal(acts["hidden"], lens.activations(x, "hidden")["hidden"])
        out_e, acts_e = lens.trace(x, ["hidden"], edited=True)
        assert torch.equal(out_e, mlp(x)) and torch.all(acts_e["hidden"][:, :2] == 0)
        assert hook_count(mlp) == 1  # only the lens's wrapper on "hidden": the temporary hooks are gone
