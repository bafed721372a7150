"""Replay resume (models torch.fx cannot trace), ``run(capture=)`` and preemptible background runs."""

from __future__ import annotations

import threading

import pytest
import torch
from torch import nn

import superwidgets as sw
from superwidgets.engine import Preempted

transformers = pytest.importorskip("transformers")  # a test dependency: CI installs it


def _gpt2(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(n_layer=4, n_embd=32, n_head=2, vocab_size=100, n_positions=32)
    return transformers.GPT2LMHeadModel(cfg).eval()


def _ids(n: int = 3, t: int = 8, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 100, (n, t), generator=torch.Generator().manual_seed(seed))


def _reference(model: nn.Module, x: torch.Tensor, edits: list[tuple[str, sw.Op]]) -> torch.Tensor:
    """The edited logits by full forwards (a lens with resume off)."""
    with sw.Lens(model, resume=False) as ref:
        for site, op in edits:
            ref.edit(site, op)
        return ref.run(x).edited.logits


@pytest.mark.parametrize("site", ["transformer.h.0", "transformer.h.2", "transformer.ln_f"])
def test_replay_resumes_an_untraceable_model_exactly(site):
    model, x = _gpt2(), _ids()
    d = torch.randn(32, generator=torch.Generator().manual_seed(2))
    with sw.Lens(model) as lens:
        lens.edit(site, sw.Steer(direction=d, alpha=2.0))
        got = lens.run(x).edited.logits
        assert "replaying" in lens.resume_info and "torch.fx cannot trace" in lens.resume_info
        # the replay really skipped the layers before the site: they were not called
        calls: list[str] = []
        hooks = [m.register_forward_pre_hook(lambda m, a, n=n: calls.append(n)) for n, m in model.named_modules()]
        try:
            lens.edits[0].op = sw.Steer(direction=d, alpha=3.0)
            again = lens.run(x).edited.logits
        finally:
            for h in hooks:
                h.remove()
    # the replayed modules are entered but return their cached output: nothing inside them runs
    assert "transformer.h.0.attn" not in calls and "transformer.h.0.mlp" not in calls
    assert torch.equal(got, _reference(model, x, [(site, sw.Steer(direction=d, alpha=2.0))]))
    assert torch.equal(again, _reference(model, x, [(site, sw.Steer(direction=d, alpha=3.0))]))
    unedited = model(x).logits
    assert not torch.allclose(got, unedited, atol=1e-4)  # the edit did something


def test_replay_keeps_only_what_it_reads():
    """Outputs of the modules before the site that the replay never reads are kept as shapes only."""
    model, x = _gpt2(), _ids(n=4)
    with sw.Lens(model) as lens:
        lens.edit("transformer.h.2", sw.Ablate([0, 1]))
        lens.run(x)
        vals = lens._clean_vals
        leaves = [t for v in vals.cache.values() for t in torch.utils._pytree.tree_leaves(v)]
        real = [t for t in leaves if isinstance(t, torch.Tensor)]
        site_bytes = 4 * 8 * 32 * 4
        assert sum(t.numel() * t.element_size() for t in real) == site_bytes  # the site's output only


def test_several_sites_and_nested_sites_stay_exact():
    model, x = _gpt2(), _ids()
    d = torch.randn(32, generator=torch.Generator().manual_seed(3))
    edits = [("transformer.h.3", sw.Steer(direction=d, alpha=1.0)), ("transformer.h.1", sw.Ablate([4, 5]))]
    with sw.Lens(model) as lens:
        for site, op in edits:
            lens.edit(site, op)
        assert torch.equal(lens.run(x).edited.logits, _reference(model, x, edits))
    nested = [("transformer.h.1", sw.Ablate([4])), ("transformer.h.1.mlp", sw.Steer(direction=d, alpha=1.0))]
    with sw.Lens(model) as lens:
        for site, op in nested:
            lens.edit(site, op)
        assert torch.allclose(lens.run(x).edited.logits, _reference(model, x, nested), atol=1e-6)


class _InPlace(nn.Module):
    """Writes in place into a value computed before the site, after the site ran."""

    def __init__(self) -> None:
        super().__init__()
        self.pre, self.site, self.post = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 1e9:  # data-dependent control flow: torch.fx cannot trace it
            return x
        a = self.pre(x)
        b = self.site(a)
        a.mul_(2)
        return self.post(b) + a[:, :2]


def test_a_model_that_writes_into_cached_values_falls_back_to_full_forwards():
    torch.manual_seed(0)
    model, x = _InPlace().eval(), torch.randn(5, 4)
    with sw.Lens(model) as lens:
        e = lens.edit("site", sw.Ablate([1]))
        first = lens.run(x).edited
        e.op = sw.Ablate([2])
        second = lens.run(x).edited
        assert "writes in place" in lens.resume_info
    assert torch.equal(first, _InPlaceRef(model, x, 1)) and torch.equal(second, _InPlaceRef(model, x, 2))


def _InPlaceRef(model: _InPlace, x: torch.Tensor, unit: int) -> torch.Tensor:
    with torch.no_grad():
        a = model.pre(x)
        b = model.site(a)
        b[:, unit] = 0
        a.mul_(2)
        return model.post(b) + a[:, :2]


def test_capture_gives_clean_and_edited_site_activations_of_the_same_passes():
    model, x = _gpt2(), _ids()
    d = torch.randn(32, generator=torch.Generator().manual_seed(5))
    with sw.Lens(model) as lens:
        lens.edit("transformer.h.2", sw.Steer(direction=d, alpha=2.0))
        r = lens.run(x, capture=["transformer.h.1", "transformer.h.2", "transformer.h.3"])
        _, clean = lens.trace(x, ["transformer.h.1", "transformer.h.2", "transformer.h.3"])
        _, edited = lens.trace(x, ["transformer.h.1", "transformer.h.2", "transformer.h.3"], edited=True)
    for s in clean:
        assert torch.equal(r.clean[s], clean[s]) and torch.equal(r.acts[s], edited[s])
    assert torch.equal(r.acts["transformer.h.1"], r.clean["transformer.h.1"])  # before the edit
    assert torch.allclose(r.acts["transformer.h.2"] - r.clean["transformer.h.2"], 2.0 * d.expand(3, 8, 32), atol=1e-5)
    assert not torch.allclose(r.acts["transformer.h.3"], r.clean["transformer.h.3"])  # after it


def test_capture_on_a_traceable_model_and_with_no_edits():
    model = sw.zoo.load("breast-cancer-mlp")[0]
    x = torch.randn(6, 30)
    with sw.Lens(model) as lens:
        r0 = lens.run(x, capture="hidden")
        assert torch.equal(r0.clean["hidden"], r0.acts["hidden"])
        lens.edit("hidden", sw.Ablate([0, 1, 2]))
        r = lens.run(x, capture="hidden")
        assert (r.acts["hidden"][:, :3] == 0).all() and torch.equal(r.clean["hidden"], r0.clean["hidden"])
        assert "torch.fx" in lens.resume_info


def test_sweep_replays_an_untraceable_model_and_equals_single_runs():
    model, x = _gpt2(), _ids(n=2)
    with sw.Lens(model) as lens:
        got = lens.sweep("transformer.h.2", x, features=[0, 7, 31], readout=lambda o: o.logits[:, -1])
    for j, f in enumerate([0, 7, 31]):
        want = _reference(model, x, [("transformer.h.2", sw.Ablate([f]))])[:, -1] - model(x).logits[:, -1]
        assert torch.allclose(got[j], want, atol=1e-5)


class _Slow(nn.Module):
    """A deep model whose layers report progress, for preemption tests."""

    def __init__(self, depth: int = 40) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(64, 64) for _ in range(depth))
        self.done = 0
        self.started = threading.Event()
        self.release = threading.Event()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.tanh(layer(x))
            if x.shape[0] > 100:  # only the big background batch counts and waits for the foreground call
                self.done += 1
                self.started.set()
                self.release.wait(0.05)
        return x


def test_a_background_run_gives_way_to_a_foreground_call():
    torch.manual_seed(0)
    model = _Slow().eval()
    big, small = torch.randn(256, 64), torch.randn(1, 64)
    with sw.Lens(model) as lens:
        lens.edit("layers.20", sw.Ablate([0]))
        outcome: dict[str, object] = {}

        def background() -> None:
            try:
                outcome["result"] = lens.run(big, preemptible=True)
            except Preempted as exc:
                outcome["preempted"] = exc

        t = threading.Thread(target=background)
        t.start()
        assert model.started.wait(10)
        before = model.done
        r = lens.run(small)  # waits for the background run to give way
        model.release.set()
        t.join(10)
        assert "preempted" in outcome and "result" not in outcome
        assert model.done - before < 40  # the background run stopped within its pass
        want = _reference_slow(model, small)
        assert torch.equal(r.edited, want)
        # nothing of the preempted run was cached: running it again gives the right answer
        again = lens.run(big, preemptible=True)
        assert torch.equal(again.edited, _reference_slow(model, big))


def _reference_slow(model: _Slow, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        for i, layer in enumerate(model.layers):
            x = torch.tanh(layer(x))
            if i == 20:
                x = x.clone()
                x[..., 0] = 0
        return x


def test_changing_an_edit_preempts_a_background_run():
    torch.manual_seed(0)
    model = _Slow().eval()
    big = torch.randn(256, 64)
    with sw.Lens(model) as lens:
        e = lens.edit("layers.5", sw.Ablate([0]))
        outcome: dict[str, object] = {}

        def background() -> None:
            try:
                outcome["result"] = lens.run(big, preemptible=True)
            except Preempted:
                outcome["preempted"] = True

        t = threading.Thread(target=background)
        t.start()
        assert model.started.wait(10)
        e.op = sw.Ablate([1])  # the edit changes while the background run is in flight
        model.release.set()
        t.join(10)
        assert outcome.get("preempted") is True


def test_dict_inputs_replay_too():
    model, x = _gpt2(), _ids()
    mask = torch.ones_like(x)
    mask[0, :3] = 0
    inputs = {"input_ids": x, "attention_mask": mask}
    d = torch.randn(32, generator=torch.Generator().manual_seed(6))
    with sw.Lens(model) as lens:
        lens.edit("transformer.h.2", sw.Steer(direction=d, alpha=2.0))
        got = lens.run(inputs).edited.logits
        assert "replaying" in lens.resume_info
    with sw.Lens(model, resume=False) as ref:
        ref.edit("transformer.h.2", sw.Steer(direction=d, alpha=2.0))
        want = ref.run(inputs).edited.logits
    assert torch.equal(got, want)


def test_run_with_output_keeps_only_the_picked_prediction_and_many_chunks():
    """``run(output=fn)`` returns ``fn`` of both outputs; the cache keeps ``fn(clean)`` only, so the
    baselines of many chunks stay (a cohort's second pass runs only the edited rest)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from superwidgets.engine import lens as lens_mod

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=500, n_positions=16)).eval()
    ids = torch.randint(0, 500, (12, 8), generator=torch.Generator().manual_seed(1))
    chunks = [ids[i : i + 2] for i in range(0, 12, 2)]

    def pick(o):
        return o.logits[:, -1, :10]

    with sw.Lens(model) as lens:
        lens.edit("transformer.h.1", sw.Steer(direction=torch.ones(32), alpha=0.5))
        full = [lens.run(c.clone()) for c in chunks]  # other tensor objects: their own cache entries
        picked = [lens.run(c, output=pick) for c in chunks]
        for f, p in zip(full, picked, strict=True):
            torch.testing.assert_close(p.baseline, pick(f.baseline))
            torch.testing.assert_close(p.edited, pick(f.edited), atol=1e-5, rtol=1e-5)
        kept = [e for e in lens._baselines.values() if any(e[0] is c for c in chunks)]
        assert len(kept) == len(chunks) > lens_mod._BASELINES_KEPT  # every chunk's baseline stays
        assert all(None not in e[1] for e in kept)  # the picked values only, not the logits at every position
        calls = []
        hook = model.transformer.h[0].attn.register_forward_hook(lambda *a: calls.append(1))
        try:
            again = [lens.run(c, output=pick) for c in chunks]  # a second pass: block 0 never computes again
        finally:
            hook.remove()
        assert calls == []
        for p, a in zip(picked, again, strict=True):
            torch.testing.assert_close(a.edited, p.edited)
        assert lens_mod._nbytes(kept[0][1]) == 2 * 10 * 4
