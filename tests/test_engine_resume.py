"""Resume from a site: the edited output equals a full forward, and earlier layers are not re-run."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

import superwidgets as sw


class Counting(nn.Module):
    """A linear layer that counts its forward calls."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.lin = nn.Linear(d_in, d_out)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.lin(x)


class Residual(nn.Module):
    """Skip connections: resuming must feed the clean residual stream to the tail."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.embed = Counting(5, d)
        self.block1 = nn.Sequential(nn.Linear(d, d), nn.ReLU())
        self.block2 = nn.Sequential(nn.Linear(d, d), nn.ReLU())
        self.head = nn.Linear(d, 3)

    def forward(self, x):
        h = self.embed(x)
        h = h + self.block1(h)
        h = h + self.block2(h) * 0.5
        return self.head(h + x.sum(-1, keepdim=True))


class Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = Counting(4, 6)
        self.b = nn.ReLU()
        self.c = nn.Linear(6, 2)

    def forward(self, x):
        h = self.b(self.a(x))
        if h.sum() > 1e9:  # data-dependent control flow: fx cannot trace this
            h = h * 0
        return self.c(h)


def full(model, edits, x):
    with sw.Lens(model, resume=False) as lens:
        for site, op in edits:
            lens.edit(site, op)
        return lens.run(x).edited


@pytest.fixture
def seq():
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(
            [
                ("l1", Counting(6, 16)),
                ("a1", nn.ReLU()),
                ("l2", nn.Linear(16, 16)),
                ("a2", nn.ReLU()),
                ("out", nn.Linear(16, 4)),
            ]
        )
    ).eval()


def test_sequential_late_site_skips_early_layers(seq):
    x = torch.randn(32, 6)
    edits = [("a2", sw.Ablate([0, 5])), ("a2", sw.Steer(feature=3, alpha=2.0))]
    want = full(seq, edits, x)
    want2 = full(seq, [("a2", sw.Ablate([1])), edits[1]], x)
    with sw.Lens(seq) as lens:
        for site, op in edits:
            lens.edit(site, op)
        lens.run(x)
        assert "resume" in lens.resume_info
        calls = seq.l1.calls
        for _ in range(3):
            got = lens.run(x).edited
        assert seq.l1.calls == calls  # the prefix ran only for the baseline
        assert torch.allclose(got, want, rtol=0, atol=1e-6)
        lens.edits[0].update(features=(1,))  # changing an edit needs no new baseline
        assert torch.allclose(lens.run(x).edited, want2, atol=1e-6)
        assert seq.l1.calls == calls


def test_residual_model_resume_equals_full_forward():
    torch.manual_seed(1)
    model = Residual().eval()
    x = torch.randn(10, 5)
    for edits in (
        [("block2", sw.Ablate([1, 2]))],
        [("block1", sw.Scale([0], factor=3.0))],
        [("block1", sw.Steer(direction=torch.randn(8), alpha=1.0)), ("block2", sw.Clamp([4], value=1.0))],
        [("head", sw.Ablate([2]))],
    ):
        want = full(model, edits, x)
        with sw.Lens(model) as lens:
            for site, op in edits:
                lens.edit(site, op)
            lens.run(x)
            n = model.embed.calls
            got = lens.run(x).edited
            assert model.embed.calls == n
            assert torch.allclose(got, want, atol=1e-6), edits


def test_input_or_parameter_change_recaptures(seq):
    x = torch.randn(4, 6)
    x2 = torch.randn(4, 6)
    want = full(seq, [("a2", sw.Ablate([0]))], x2)
    with sw.Lens(seq) as lens:
        lens.edit("a2", sw.Ablate([0]))
        lens.run(x)
        assert torch.allclose(lens.run(x2).edited, want, atol=1e-6)
        with torch.no_grad():
            seq.l2.weight.mul_(0.5)
        got = lens.run(x2).edited
    assert torch.allclose(got, full(seq, [("a2", sw.Ablate([0]))], x2), atol=1e-6)


def test_untraceable_model_falls_back():
    torch.manual_seed(2)
    model = Untraceable().eval()
    x = torch.randn(6, 4)
    want = full(model, [("b", sw.Ablate([1]))], x)
    with sw.Lens(model) as lens:
        lens.edit("b", sw.Ablate([1]))
        r = lens.run(x)
        assert "full forwards" in lens.resume_info and "fx" in lens.resume_info
        assert torch.allclose(r.edited, want, atol=1e-6)


def test_declared_split_for_untraceable_model():
    torch.manual_seed(3)
    model = Untraceable().eval()
    x = torch.randn(6, 4)
    want = full(model, [("b", sw.Steer(feature=2, alpha=1.5))], x)
    with sw.Lens(model) as lens:
        lens.declare_split("b", lambda h: model.c(h))
        lens.edit("b", sw.Steer(feature=2, alpha=1.5))
        lens.run(x)
        n = model.a.calls
        got = lens.run(x).edited
        assert model.a.calls == n
        assert "declared splits" in lens.resume_info
        assert torch.allclose(got, want, atol=1e-6)
    with pytest.raises(TypeError, match="callable"):
        sw.Lens(model).declare_split("b", 3)


def test_alternating_inputs_keep_their_baselines():
    # a widget runs its selected input and its cohort in turn: neither may evict the other's baseline
    torch.manual_seed(0)
    model = Residual()
    one, cohort = torch.randn(1, 5), torch.randn(64, 5)
    runs = []  # the fx graph calls embed.lin directly, so count its calls with a hook
    model.embed.lin.register_forward_hook(lambda *_: runs.append(1))
    with sw.Lens(model) as lens:
        edit = lens.edit("block2", sw.Steer(torch.ones(8), alpha=1.0))
        lens.run(one), lens.run(cohort)
        calls = len(runs)
        got = []
        for alpha in (0.5, 2.0, -1.0):
            edit.op = sw.Steer(torch.ones(8), alpha=alpha)
            got.append((alpha, lens.run(one), lens.run(cohort)))
        assert len(runs) == calls  # both baselines kept: only the tails after block2 ran
        for alpha, a, b in got:
            edit.op = sw.Steer(torch.ones(8), alpha=alpha)
            with torch.no_grad():
                torch.testing.assert_close(a.edited, model(one))  # a full forward with the edit on
                torch.testing.assert_close(b.edited, model(cohort))
            with lens.off(), torch.no_grad():
                assert torch.equal(a.baseline, model(one)) and torch.equal(b.baseline, model(cohort))
        calls = len(runs)
        lens.run(torch.randn(3, 5))  # a third input gets a fresh baseline
        assert len(runs) > calls


def test_rest_of_the_model_after_a_site():
    torch.manual_seed(0)
    seq = nn.Sequential(OrderedDict([("a", nn.Linear(5, 8)), ("act", nn.ReLU()), ("b", nn.Linear(8, 3))]))
    x = torch.randn(4, 5)
    with sw.Lens(seq) as lens:
        rest = lens.rest("act", x[:2])
        assert rest is not None and "act" in lens.bound
        with torch.no_grad():
            h = torch.relu(seq.a(x))
            torch.testing.assert_close(rest(h), seq(x))
            torch.testing.assert_close(rest(2 * h), seq.b(2 * h))  # any site output, e.g. an edited one
    res = Residual()
    with sw.Lens(res) as lens:
        assert lens.rest("block1", torch.randn(2, 5)) is None  # the skip connection also feeds the rest
        fn = lambda h: h  # noqa: E731
        lens.declare_split("block1", fn)
        assert lens.rest("block1", torch.randn(2, 5)) is fn  # a declared split is returned as is
