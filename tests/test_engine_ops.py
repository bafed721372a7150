"""Exact arithmetic of every edit operation at the site."""

from __future__ import annotations

import json

import pytest
import torch

import superwidgets as sw
from superwidgets.engine import Edit


def site_act(lens: sw.Lens, x: torch.Tensor, site: str = "hidden", edited: bool = True) -> torch.Tensor:
    return lens.activations(x, site, edited=edited)[site]


@pytest.fixture
def x() -> torch.Tensor:
    torch.manual_seed(2)
    return torch.randn(7, 6)


def test_steer_adds_exactly_alpha_v(mlp, x):
    with sw.Lens(mlp) as lens:
        clean = site_act(lens, x, edited=False)
        v = torch.randn(5)
        lens.edit("hidden", sw.Steer(direction=v, alpha=2.5))
        assert torch.allclose(site_act(lens, x), clean + 2.5 * v, atol=1e-6)
        r = lens.run(x)
        expected = mlp.out(clean + 2.5 * v)
        assert torch.allclose(r.edited, expected, atol=1e-6)
        with lens.off():
            clean_out = mlp(x)
        assert torch.allclose(r.delta, expected - clean_out, atol=1e-6)
        assert torch.allclose(mlp(x), expected, atol=1e-6)  # edits act on every forward while the lens is open


def test_steer_feature_of_neuron_basis(mlp, x):
    with sw.Lens(mlp) as lens:
        clean = site_act(lens, x, edited=False)
        lens.edit("hidden", sw.Steer(feature=3, alpha=-1.5))
        want = clean.clone()
        want[:, 3] -= 1.5
        assert torch.allclose(site_act(lens, x), want, atol=1e-6)


def test_zero_ablate_units(mlp, x):
    with sw.Lens(mlp) as lens:
        clean = site_act(lens, x, edited=False)
        lens.edit("hidden", sw.Ablate([1, 3]))
        got = site_act(lens, x)
        assert torch.all(got[:, [1, 3]] == 0)
        assert torch.equal(got[:, [0, 2, 4]], clean[:, [0, 2, 4]])


def test_mean_ablate_from_reference(mlp, x):
    torch.manual_seed(3)
    ref = torch.randn(50, 6)
    with sw.Lens(mlp) as lens:
        mean = site_act(lens, ref, edited=False).mean(0)
        e = lens.edit("hidden", sw.MeanAblate([2], reference=ref))
        assert torch.allclose(e.op.mean, mean, atol=1e-6)  # the mean is stored in the edit
        got = site_act(lens, x)
        assert torch.allclose(got[:, 2], mean[2].expand(7), atol=1e-6)
        assert "mean" in json.dumps(e.to_dict())


def test_scale_and_clamp(mlp, x):
    with sw.Lens(mlp) as lens:
        clean = site_act(lens, x, edited=False)
        s = lens.edit("hidden", sw.Scale([0, 4], factor=3.0))
        got = site_act(lens, x)
        assert torch.allclose(got[:, [0, 4]], 3 * clean[:, [0, 4]], atol=1e-6)
        s.enabled = False
        lens.edit("hidden", sw.Clamp([2], value=7.0))
        got = site_act(lens, x)
        assert torch.all(got[:, 2] == 7.0)
        assert torch.equal(got[:, 0], clean[:, 0])


def test_project_out_leaves_no_component(mlp, x):
    torch.manual_seed(4)
    v = torch.randn(5)
    with sw.Lens(mlp) as lens:
        clean = site_act(lens, x, edited=False)
        lens.edit("hidden", sw.ProjectOut(v))
        got = site_act(lens, x)
        assert torch.allclose(got @ v, torch.zeros(7), atol=1e-5)
        # the orthogonal part is untouched
        u = v / v.norm()
        assert torch.allclose(got, clean - (clean @ u)[:, None] * u, atol=1e-5)


def test_direction_basis_ablate_projects_out_span(mlp, x):
    torch.manual_seed(5)
    d = torch.randn(3, 5)
    basis = sw.Directions(d, names=["a", "b", "c"])
    with sw.Lens(mlp) as lens:
        lens.edit("hidden", sw.Ablate(["a", "c"]), basis=basis)
        got = site_act(lens, x)
        assert torch.allclose(got @ d[[0, 2]].T, torch.zeros(7, 2), atol=1e-4)


def test_direction_basis_orthonormal_clamp_sets_dot_product(mlp, x):
    q, _ = torch.linalg.qr(torch.randn(5, 5))
    basis = sw.Directions(q.T[:2])
    with sw.Lens(mlp) as lens:
        lens.edit("hidden", sw.Clamp([1], value=0.5), basis=basis)
        got = site_act(lens, x)
        assert torch.allclose(got @ q[:, 1], torch.full((7,), 0.5), atol=1e-5)


def test_ops_compose_in_order(mlp, x):
    with sw.Lens(mlp) as lens:
        clean = site_act(lens, x, edited=False)
        lens.edit("hidden", sw.Ablate([0]))
        lens.edit("hidden", sw.Steer(feature=0, alpha=2.0))
        got = site_act(lens, x)
        assert torch.all(got[:, 0] == 2.0)
        assert torch.equal(got[:, 1:], clean[:, 1:])


def test_toggle_changes_state_not_hooks(mlp, x):
    with sw.Lens(mlp) as lens:
        e = lens.edit("hidden", sw.Ablate([0, 1, 2, 3, 4]))
        wrapper = mlp.hidden.__dict__["forward"]
        e.enabled = False
        assert torch.equal(lens.run(x).edited, lens.run(x).baseline)
        e.enabled = True
        assert torch.allclose(lens.run(x).edited, mlp.out(torch.zeros(7, 5)).detach(), atol=1e-6)
        assert mlp.hidden.__dict__["forward"] is wrapper  # same wrapper: toggling never rebinds


def test_update_changes_op(mlp, x):
    with sw.Lens(mlp) as lens:
        clean = site_act(lens, x, edited=False)
        v = torch.ones(5)
        e = lens.edit("hidden", sw.Steer(direction=v, alpha=1.0))
        e.update(alpha=-2.0)
        assert torch.allclose(site_act(lens, x), clean - 2.0, atol=1e-6)


def test_edit_json_round_trip(mlp, x):
    torch.manual_seed(6)
    ref = torch.randn(20, 6)
    with sw.Lens(mlp) as lens:
        edits = [
            lens.edit("hidden", sw.Steer(direction=torch.randn(5), alpha=0.7)),
            lens.edit("hidden", sw.Ablate([1])),
            lens.edit("hidden", sw.MeanAblate([3], reference=ref)),
            lens.edit("hidden", sw.Scale(["x"], factor=0.5), basis=sw.Directions(torch.randn(2, 5), names=["x", "y"])),
            lens.edit("hidden", sw.Clamp([4], value=-1.0), enabled=False),
            lens.edit("hidden", sw.ProjectOut(torch.randn(2, 5))),
        ]
        text = json.dumps([e.to_dict() for e in edits])
        want = lens.run(x).edited
    with sw.Lens(mlp) as lens2:
        for d in json.loads(text):
            lens2.add(Edit.from_dict(d))
        assert [e.to_dict() for e in lens2.edits] == json.loads(text)
        assert torch.allclose(lens2.run(x).edited, want, atol=0, rtol=0)


def test_conv_feature_axis_is_channels():
    torch.manual_seed(7)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten()).eval()
    x = torch.randn(2, 3, 5, 5)
    with sw.Lens(model) as lens:
        lens.edit("1", sw.Ablate([2]))
        got = lens.activations(x, "1", edited=True)["1"]
        assert got.shape == (2, 4, 5, 5)
        assert torch.all(got[:, 2] == 0)
        assert lens.width("1") == 4
