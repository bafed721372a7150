"""Attribution (gradient × activation through a basis) and the exact effects of the top candidates."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import pytest
import torch
import transformers
from _util import assert_same_state, hook_count, state
from torch import nn

import superwidgets as sw
from superwidgets.analysis.rank import FeatureRanking, rank_features, search_features
from superwidgets.engine.attribution import attribute, top_effects
from superwidgets.engine.sites import SiteError
from superwidgets.science import ReLUSAE, TopKSAE


def linear_tail() -> nn.Module:
    """A non-linear front, then only linear layers after the site ``act``: attribution is exact there."""
    torch.manual_seed(0)
    return (
        nn.Sequential(
            OrderedDict(
                [
                    ("a", nn.Linear(6, 8)),
                    ("act", nn.Tanh()),
                    ("b", nn.Linear(8, 5)),
                    ("c", nn.Linear(5, 3)),
                ]
            )
        )
        .double()
        .eval()
    )


def relu_sae(d: int, n: int, dtype: torch.dtype = torch.float32) -> ReLUSAE:
    sae = ReLUSAE(d, n, seed=3).to(dtype)
    with torch.no_grad():
        sae.b_enc.fill_(0.1)  # many latents on: non-trivial codes
        sae.b_dec.copy_(torch.randn(d, generator=torch.Generator().manual_seed(4)).to(dtype) * 0.1)
    return sae


BASES = {
    "neurons": lambda: sw.Neurons(),
    "directions": lambda: sw.Directions(torch.randn(4, 8, generator=torch.Generator().manual_seed(2))),
    "sae": lambda: sw.SAE(relu_sae(8, 24, torch.float64)),
}


@pytest.mark.parametrize("kind", list(BASES))
def test_gradient_times_activation_is_the_exact_ablation_effect_on_a_linear_tail(kind):
    model = linear_tail()
    x = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    basis = BASES[kind]()
    with sw.Lens(model) as lens:
        a = attribute(lens, x, "act", basis=basis, target=lambda o: o[:, 2].sum())
        eff = lens.sweep("act", x, op="ablate", basis=basis, readout=lambda o: o[:, 2]).sum(1)
    assert a.dtype == torch.float64 and a.shape == eff.shape
    assert eff.abs().max() > 1e-3  # the features do move the target
    assert torch.allclose(a, -eff, rtol=1e-9, atol=1e-12)


def test_class_index_target_and_feature_subset():
    model = linear_tail()
    x = torch.randn(1, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    with sw.Lens(model) as lens:
        full = attribute(lens, x, "act", target=1)
        assert torch.equal(full, attribute(lens, x, "act", target=lambda o: o[0, 1]))
        sub = attribute(lens, x, "act", target=1, features=[5, 2, "unit 7"])
    assert torch.equal(sub, full[[5, 2, 7]])


def test_conv_site_sums_over_space_and_is_exact_with_a_linear_head():
    torch.manual_seed(0)
    model = nn.Sequential(
        OrderedDict(
            [
                ("conv", nn.Conv2d(2, 4, 3, padding=1)),
                ("act", nn.ReLU()),
                ("flat", nn.Flatten()),
                ("head", nn.Linear(4 * 5 * 5, 3)),
            ]
        )
    ).eval()
    x = torch.randn(1, 2, 5, 5)
    with sw.Lens(model) as lens:
        a = attribute(lens, x, "act", target=0)  # channels (dim 1) are the features
        eff = lens.sweep("act", x, op="ablate", readout=lambda o: o[:, 0]).reshape(-1)
    assert a.shape == (4,)
    assert torch.allclose(a, -eff, rtol=1e-4, atol=1e-5)


def test_top_effects_measures_the_largest_candidates_in_one_sweep():
    model = linear_tail()
    x = torch.randn(1, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    with sw.Lens(model) as lens:
        a = attribute(lens, x, "act", target=lambda o: o[0, 0])
        idx, att, eff = top_effects(lens, x, "act", readout=lambda o: o[:, 0], k=3)
        sweep = lens.sweep("act", x, features=list(idx), readout=lambda o: o[:, 0]).reshape(-1)
        among = top_effects(lens, x, "act", readout=lambda o: o[:, 0], candidates=[0, 1, 2], k=5)
    assert set(idx) == set(torch.argsort(a.abs(), descending=True)[:3].tolist())
    assert np.all(np.diff(np.abs(eff)) <= 0)  # sorted by |exact effect|
    assert np.allclose(eff, sweep.numpy(), atol=1e-6)
    assert np.allclose(att, a[idx].numpy(), atol=1e-6)
    assert np.allclose(att, -eff, atol=1e-6)  # linear tail: the first-order prediction is exact
    assert sorted(among[0].tolist()) == [0, 1, 2]  # k larger than the candidates: all of them


@pytest.fixture(scope="module")
def patients():
    model, data = sw.zoo.load("breast-cancer-mlp")
    return model, torch.as_tensor(data.X[:40], dtype=torch.float32)


def prob(o: torch.Tensor) -> torch.Tensor:
    """The shown probability of class 1: non-linear in the site's activation."""
    return o.softmax(-1)[:, 1]


def test_attribution_agrees_with_exact_effects_on_the_patient_mlp_in_an_sae_basis(patients):
    model, X = patients
    sae = relu_sae(16, 48)
    basis = sw.SAE(sae)
    before, sae_before = state(model), state(sae)
    agree, total = 0, 0
    with sw.Lens(model) as lens:
        for i in range(0, 40, 4):
            x = X[i : i + 1]
            a = attribute(lens, x, "hidden", basis=basis, target=lambda o: prob(o).sum())
            eff = lens.sweep("hidden", x, op="ablate", basis=basis, readout=prob).reshape(-1)
            big = eff.abs() > 0.05 * eff.abs().max()
            agree += int((torch.sign(a[big]) == -torch.sign(eff[big])).sum())
            total += int(big.sum())
            # the feature that matters most by attribution is among the three that matter most exactly
            assert int(a.abs().argmax()) in torch.argsort(eff.abs(), descending=True)[:3].tolist()
    assert total > 20 and agree / total >= 0.95
    assert_same_state(before, state(model))
    assert_same_state(sae_before, state(sae))
    assert all(p.grad is None for p in [*model.parameters(), *sae.parameters()])


@pytest.fixture(scope="module")
def small_gpt2():
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=2, n_embd=64, n_head=2)).eval()


def test_gpt2_shaped_model_with_a_topk_sae_of_1024_latents(small_gpt2):
    model = small_gpt2
    sae = TopKSAE(64, 1024, 32, seed=0)
    ids = torch.randint(0, 1000, (1, 16), generator=torch.Generator().manual_seed(3))
    before, hooks = state(model), hook_count(model)
    with sw.Lens(model) as lens:
        a = attribute(lens, ids, "transformer.h.0", basis=sw.SAE(sae), target=lambda o: o.logits[0, -1, 42])
        assert hook_count(model) == hooks  # the attribution's hook is gone (the lens binds nothing here)
        idx, att, eff = top_effects(
            lens, ids, "transformer.h.0", basis=sw.SAE(sae), readout=lambda o: o.logits[:, -1, 42], k=8
        )
    assert a.shape == (1024,) and torch.isfinite(a).all() and (a != 0).sum() >= 32
    assert idx.shape == att.shape == eff.shape == (8,)
    assert np.isfinite(eff).all() and np.all(np.diff(np.abs(eff)) <= 0)
    assert np.mean(np.sign(att) == -np.sign(eff)) >= 0.75
    assert hook_count(model) == hooks
    assert all(p.grad is None for p in [*model.parameters(), *sae.parameters()])
    assert_same_state(before, state(model))


def test_frozen_model_in_training_mode(small_gpt2):
    model = small_gpt2
    ids = torch.randint(0, 1000, (1, 8), generator=torch.Generator().manual_seed(4))
    for p in model.parameters():
        p.requires_grad_(False)
    model.train()
    try:
        with sw.Lens(model) as lens:
            a = attribute(lens, ids, "transformer.h.1.mlp", target=lambda o: o.logits[0, -1, 7])
            b = attribute(lens, ids, "transformer.h.1.mlp", target=lambda o: o.logits[0, -1, 7])
        assert torch.equal(a, b)  # eval mode during the pass: dropout off
        assert model.training  # the model's mode is restored
        assert not any(p.requires_grad for p in model.parameters())
    finally:
        model.eval()
        for p in model.parameters():
            p.requires_grad_(True)


def test_edited_attribution_sees_the_lens_edits_and_leaves_them_in_place():
    model = linear_tail()
    x = torch.randn(1, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    with sw.Lens(model) as lens:
        clean = attribute(lens, x, "act", target=0)
        e = lens.edit("act", sw.Ablate([3]))
        base = lens.run(x)
        assert torch.equal(attribute(lens, x, "act", target=0), clean)  # clean by default
        edited = attribute(lens, x, "act", target=0, edited=True)
        assert edited[3] == 0 and clean[3] != 0  # the ablated unit has no activation left
        assert torch.equal(edited[[0, 1, 2, 4]], clean[[0, 1, 2, 4]])  # linear tail: the others keep theirs
        assert e.enabled and torch.equal(lens.run(x).edited, base.edited)


def test_bad_inputs_say_what_is_wrong(small_gpt2):
    model = small_gpt2
    ids = torch.randint(0, 1000, (1, 6), generator=torch.Generator().manual_seed(5))
    hooks = hook_count(model)
    with sw.Lens(model) as lens:
        with pytest.raises(SiteError, match=r"did you mean 'transformer\.h\.0'"):
            attribute(lens, ids, "transformer.h0", target=lambda o: o.logits[0, -1, 0])
        with pytest.raises(ValueError, match=r"scalar tensor, got shape \(1, 6, 50257\)"):
            attribute(lens, ids, "transformer.h.0", target=lambda o: o.logits)
        with pytest.raises(TypeError, match="must return a scalar tensor, got float"):
            attribute(lens, ids, "transformer.h.0", target=lambda o: 1.0)
        with pytest.raises(TypeError, match="target must be a function"):
            attribute(lens, ids, "transformer.h.0", target="logits")
        with pytest.raises(ValueError, match=r"picks a class of a \(1, C\) prediction"):
            attribute(lens, ids, "transformer.h.0", target=3)
        with pytest.raises(ValueError, match=r"target\(output\) raised AttributeError: .*CausalLMOutput"):
            attribute(lens, ids, "transformer.h.0", target=lambda o: o.logit[0, -1, 0])
        with torch.inference_mode(), pytest.raises(RuntimeError, match="outside that block"):
            attribute(lens, ids, "transformer.h.0", target=lambda o: o.logits[0, -1, 0])
        with pytest.raises(ValueError, match="does not depend on site"):
            attribute(lens, ids, "transformer.h.0", target=lambda o: o.logits[0, -1, 0].detach())
        with pytest.raises(ValueError, match="SAE decoder has shape"):
            attribute(
                lens, ids, "transformer.h.0", basis=sw.SAE(TopKSAE(32, 64, 4)), target=lambda o: o.logits[0, -1, 0]
            )
        with pytest.raises(ValueError, match="out of range"):
            attribute(lens, ids, "transformer.h.0", features=[64], target=lambda o: o.logits[0, -1, 0])
        with pytest.raises(ValueError, match="one number per input"):
            top_effects(lens, ids, "transformer.h.0", readout=lambda o: o.logits[:, -1, :2], k=2)
        assert hook_count(model) == hooks


def test_a_model_that_raises_leaves_no_hook():
    class Boom(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, x):
            self.lin(x)
            raise RuntimeError("boom")

    model = Boom()
    hooks = hook_count(model)
    with sw.Lens(model) as lens, pytest.raises(sw.ModelError, match="boom"):
        attribute(lens, torch.randn(1, 3), "lin", target=0)
    assert hook_count(model) == hooks and torch.is_grad_enabled()


def test_a_waiting_attribution_preempts_a_background_run(small_gpt2):
    from superwidgets.engine.lens import Preempted

    model = small_gpt2
    cohort = torch.randint(0, 1000, (8, 16), generator=torch.Generator().manual_seed(6))
    ids = cohort[:1].clone()
    outcome: list[str] = []
    go = threading.Event()
    with sw.Lens(model) as lens:
        ref = attribute(lens, ids, "transformer.h.1", target=lambda o: o.logits[0, -1, 1])

        def background() -> None:
            try:
                lens.run(cohort, baseline=False, preemptible=True)
                outcome.append("finished")
            except Preempted:
                outcome.append("preempted")

        t = threading.Thread(target=background)
        inside = threading.Event()

        def hold_inside(_m, _a):  # the background run stops inside the model until attribute waits
            if threading.get_ident() == t.ident:
                inside.set()
                go.wait(timeout=60)

        def release() -> None:
            for _ in range(60_000):  # until attribute() has asked for the lens (at most about a minute)
                if lens._waiting:
                    break
                threading.Event().wait(0.001)
            go.set()

        handle = model.transformer.h[0].register_forward_pre_hook(hold_inside)
        try:
            t.start()
            assert inside.wait(60)  # the background run holds the lens, stopped inside the model
            releaser = threading.Thread(target=release)
            releaser.start()
            a = attribute(lens, ids, "transformer.h.1", target=lambda o: o.logits[0, -1, 1])
            t.join()
            releaser.join()
        finally:
            handle.remove()
    assert outcome == ["preempted"]
    assert torch.equal(a, ref)


# ---------------------------------------------------------------------- analysis: the order a list shows
def test_rank_by_activation_pools_positions_like_the_lab(small_gpt2):
    sae = TopKSAE(64, 1024, 16, seed=1)
    ids = torch.randint(0, 1000, (1, 10), generator=torch.Generator().manual_seed(9))
    with sw.Lens(small_gpt2) as lens:
        r = rank_features(lens, ids, "transformer.h.0", basis=sw.SAE(sae), top=20)
        h = lens.activations(ids, "transformer.h.0")["transformer.h.0"]
    with torch.no_grad():
        pooled = sae.encode(h).mean(1)[0]
    assert isinstance(r, FeatureRanking) and r.by == "activation" and r.target is None
    assert r.order.shape == (20,) and r.order.dtype == np.int64
    assert np.allclose(r.values, pooled.numpy(), atol=1e-6)
    assert np.array_equal(r.order, torch.argsort(pooled.abs(), descending=True, stable=True)[:20].numpy())
    assert np.isnan(r.effects).all()


def test_rank_by_attribution_puts_the_measured_features_first(patients):
    model, X = patients
    basis = sw.SAE(relu_sae(16, 48))
    x = X[3:4]
    with sw.Lens(model) as lens:
        r = rank_features(lens, x, "hidden", basis=basis, readout="softmax", by="attribution", exact=6)
        predicted = int(lens.run(x).baseline.softmax(-1).argmax())
        other = rank_features(lens, x, "hidden", basis=basis, by="attribution", target=1 - predicted, exact=0)
    assert r.target == predicted and other.target == 1 - predicted
    assert r.order.shape == (48,) and sorted(r.order.tolist()) == list(range(48))
    head = r.order[:6]
    assert np.isfinite(r.effects[head]).all() and np.isnan(np.delete(r.effects, head)).all()
    assert np.all(np.diff(np.abs(r.effects[head])) <= 0)
    assert set(head) == set(np.argsort(-np.abs(r.values), kind="stable")[:6])
    rest = r.order[6:]
    assert np.all(np.diff(np.abs(r.values[rest])) <= 0)
    # two classes under softmax: the other class's probability moves the opposite way
    assert np.allclose(other.values, -r.values, atol=1e-6)
    assert np.array_equal(r.measured, head)


def test_rank_features_refuses_bad_arguments(patients):
    model, X = patients
    with sw.Lens(model) as lens:
        with pytest.raises(ValueError, match="by must be one of"):
            rank_features(lens, X[:1], "hidden", by="size")
        with pytest.raises(ValueError, match="batch of one"):
            rank_features(lens, X[:2], "hidden")
        with pytest.raises(ValueError, match="readout must be one of"):
            rank_features(lens, X[:1], "hidden", readout="prob")
        with pytest.raises(ValueError, match="out of range"):
            rank_features(lens, X[:1], "hidden", by="attribution", target=5)
        with pytest.raises(ValueError, match="target must be a class index"):
            rank_features(lens, X[:1], "hidden", by="attribution", target="malignant")
        with pytest.raises(ValueError, match="exact must be"):
            rank_features(lens, X[:1], "hidden", by="attribution", exact=-1)


def test_search_features_by_index_or_label():
    names = ["latent 0", "Cell cycle", "latent 12", "nuclear size", "latent 120", "cycle phase"]
    assert search_features(names, "#2").tolist() == [2]
    assert search_features(names, "12").tolist() == [2, 4]  # no feature 12: the labels containing "12"
    assert search_features(names, " 1 ").tolist() == [1, 2, 4]  # feature 1 first, then labels with "1"
    assert search_features(names, "CYCLE").tolist() == [1, 5]
    assert search_features(names, "#99").tolist() == []
    assert search_features(names, "").tolist() == list(range(6))
    with pytest.raises(TypeError, match="query must be a string"):
        search_features(names, 3)  # type: ignore[arg-type]


def test_a_bound_site_resumes_from_cached_clean_outputs_with_the_same_result(small_gpt2):
    model = small_gpt2
    sae = sw.SAE(TopKSAE(64, 1024, 16, seed=2))
    ids = torch.randint(0, 1000, (1, 12), generator=torch.Generator().manual_seed(10))
    site, target = "transformer.h.1", lambda o: o.logits[0, -1, 5]
    before, hooks = state(model), hook_count(model)
    with sw.Lens(model) as lens:
        full = attribute(lens, ids, site, basis=sae, target=target)  # site not bound: a full forward
    top = int(full.abs().argmax())
    with sw.Lens(model, sites=[site]) as lens:
        lens.edit(site, sw.Ablate([top]), basis=sae)
        want = lens.run(ids).edited.logits  # what the lens computes with no attribution in between
    with sw.Lens(model, sites=[site]) as lens:
        clean = lens.run(ids).baseline.logits  # the shown input's baseline, cached with what a replay needs
        resumed = attribute(lens, ids, site, basis=sae, target=target)
        assert "replaying" in lens.resume_info
        assert torch.equal(lens.run(ids).baseline.logits, clean)  # the cached values are untouched
        lens.edit(site, sw.Ablate([top]), basis=sae)
        assert torch.equal(lens.run(ids).edited.logits, want)
        edited = attribute(lens, ids, site, basis=sae, target=target, edited=True)
        lens.edit("transformer.h.0", sw.Scale([0, 1], 0.5))  # an edit before the site: no replay
        edited_before = attribute(lens, ids, site, basis=sae, target=target, edited=True)
        assert torch.equal(attribute(lens, ids, site, basis=sae, target=target), resumed)
    assert torch.allclose(resumed, full, rtol=1e-4, atol=1e-6)
    assert edited[top] == 0 and torch.isfinite(edited_before).all()
    assert not torch.allclose(edited_before, edited)
    assert hook_count(model) == hooks
    assert_same_state(before, state(model))


def test_dict_inputs_give_the_same_attribution(small_gpt2):
    ids = torch.randint(0, 1000, (1, 9), generator=torch.Generator().manual_seed(11))
    target = lambda o: o.logits[0, -1, 3]  # noqa: E731
    with sw.Lens(small_gpt2) as lens:
        a = attribute(lens, ids, "transformer.h.0.mlp", target=target)
        b = attribute(lens, {"input_ids": ids}, "transformer.h.0.mlp", target=target)
    assert torch.equal(a, b)


def test_analysis_rank_imports_no_jupyter_module():
    import subprocess
    import sys

    code = (
        "import sys, superwidgets.analysis.rank, superwidgets.engine.attribution\n"
        "bad = {'traitlets', 'anywidget', 'ipywidgets'} & set(sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_bound_site_of_a_traceable_model_resumes_by_its_tail_program():
    torch.manual_seed(0)
    model = nn.Sequential(
        OrderedDict(
            [
                ("a", nn.Linear(6, 8)),
                ("act", nn.Tanh()),
                ("b", nn.Linear(8, 8)),
                ("act2", nn.ReLU()),
                ("c", nn.Linear(8, 3)),
            ]
        )
    ).eval()
    x = torch.randn(2, 6, generator=torch.Generator().manual_seed(12))
    target = lambda o: o[:, 1].sum()  # noqa: E731
    with sw.Lens(model) as lens:  # nothing bound: full forwards
        full = attribute(lens, x, "act", target=target)
        lens.edit("act", sw.Scale([1], 0.5))
        lens.edit("act2", sw.Ablate([0, 2]))
        full_edited = attribute(lens, x, "act", target=target, edited=True)
        lens.edit("a", sw.Ablate([4]))  # an edit before the site
        full_before = attribute(lens, x, "act", target=target, edited=True)
    calls: list[int] = []
    handle = model.a.register_forward_hook(lambda *_: calls.append(1))
    try:
        with sw.Lens(model, sites=["act", "act2"]) as lens:
            lens.run(x)
            n = len(calls)
            assert torch.allclose(attribute(lens, x, "act", target=target), full, atol=1e-7)
            assert len(calls) == n  # the layer before the site did not run again
            assert "torch.fx" in lens.resume_info
            lens.edit("act", sw.Scale([1], 0.5))
            lens.edit("act2", sw.Ablate([0, 2]))
            assert torch.allclose(attribute(lens, x, "act", target=target, edited=True), full_edited, atol=1e-7)
            lens.edit("a", sw.Ablate([4]))
            assert torch.allclose(attribute(lens, x, "act", target=target, edited=True), full_before, atol=1e-7)
    finally:
        handle.remove()
    assert not torch.allclose(full_edited, full) and not torch.allclose(full_before, full_edited)
