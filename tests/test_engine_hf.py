"""Interop with a small randomly initialised Hugging Face transformers model (no download)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers  # in the test extras: a missing package fails the run

import superwidgets as sw


@pytest.fixture(scope="module")
def gpt2():
    transformers.logging.set_verbosity_error()
    cfg = transformers.GPT2Config(
        n_layer=2, n_embd=32, n_head=4, vocab_size=50, n_positions=16, bos_token_id=0, eos_token_id=0
    )
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(cfg).eval()


def test_block_and_attention_sites(gpt2):
    ids = torch.randint(0, 50, (2, 7), generator=torch.Generator().manual_seed(1))
    before = {k: v.clone() for k, v in gpt2.state_dict().items()}
    v = torch.randn(32)
    with sw.Lens(gpt2) as lens:
        names = [s.name for s in lens.sites()]
        assert "transformer.h.0.attn" in names and "transformer.h.1.mlp" in names
        clean = lens.activations({"input_ids": ids}, "transformer.h.0")["transformer.h.0"]
        lens.edit("transformer.h.0", sw.Steer(direction=v, alpha=2.0))
        lens.edit("transformer.h.1.attn", sw.Ablate(list(range(32))))  # tuple output: element 0 edited
        r = lens.run({"input_ids": ids})
        assert type(r.edited) is type(r.baseline)  # the ModelOutput structure is kept
        assert type(r.delta).__name__ == "CausalLMOutputWithCrossAttentions"
        assert torch.equal(r.delta.logits, r.edited.logits - r.baseline.logits)
        steered = lens.activations({"input_ids": ids}, "transformer.h.0", edited=True)["transformer.h.0"]
        assert torch.allclose(steered, clean + 2.0 * v, atol=1e-5)
        attn = lens.activations({"input_ids": ids}, "transformer.h.1.attn", edited=True)["transformer.h.1.attn"]
        assert torch.all(attn == 0)
        assert "single tensor input" in lens.resume_info
        with pytest.raises(ValueError, match=r"did you mean 'transformer\.h\.1\.mlp'"):
            lens.edit("transformer.h1.mlp", sw.Ablate([0]))
    for k, t in gpt2.state_dict().items():
        assert torch.equal(t, before[k])
    assert all(not m._forward_hooks and "forward" not in m.__dict__ for m in gpt2.modules())


# ---- FeatureLab on a language model: the prediction is read out of the ModelOutput


def test_prediction_of_finds_the_prediction_in_common_outputs():
    import dataclasses

    from superwidgets.widgets.lab import prediction_of

    t = torch.arange(6.0).reshape(2, 3)
    assert prediction_of(t) is t
    assert prediction_of({"hidden": t + 1, "logits": t}) is t
    assert prediction_of((None, t)) is t

    @dataclasses.dataclass
    class Out:
        note: str
        scores: torch.Tensor

    assert prediction_of(Out("x", t)) is t
    seq = torch.arange(24.0).reshape(2, 4, 3)
    assert torch.equal(prediction_of(seq), seq[:, -1])  # a language model: the next-token prediction
    with pytest.raises(TypeError, match=r"pass output=\.\.\. to pick it"):
        prediction_of(("no tensor", 3))


def test_featurelab_on_a_language_model_shows_next_token_probabilities(gpt2):
    ids = torch.randint(0, 50, (6, 7), generator=torch.Generator().manual_seed(2))
    with sw.Lens(gpt2) as lens:
        words = [" ".join(f"w{int(t)}" for t in row) for row in ids]  # what a tokenizer's batch_decode gives
        lab = sw.FeatureLab(lens, inputs=ids, site="transformer.h.0", index=2, captions=words)
        assert lab.input_label == f"input 2 · {words[2]}"
        with pytest.raises(ValueError, match="captions must have one text per input"):
            sw.FeatureLab(lens, inputs=ids, site="transformer.h.0", captions=words[:2])
        assert len(lab.class_names) == 50 and len(lab.feature_names) == 32
        with torch.no_grad():
            h = lens.activations(ids[2:3], "transformer.h.0")["transformer.h.0"]
        assert lab.activations == pytest.approx(h[0].mean(0).numpy(), abs=1e-6)  # positions averaged
        with torch.no_grad():
            want = gpt2(ids[2:3]).logits[:, -1].softmax(-1)[0].numpy()
        assert lab.baseline == pytest.approx(want, abs=1e-6)
        steer = lab.steer.copy()
        steer[5] = 4.0
        lab.steer = steer
        assert lab.error == ""
        with lens.off(), torch.no_grad():
            h_steered = gpt2(ids[2:3]).logits  # edits off: the plain model again
        assert torch.equal(h_steered[:, -1].softmax(-1)[0], torch.as_tensor(lab.baseline))
        assert abs(lab.edited - lab.baseline).max() > 1e-4  # the steering reached the prediction


def test_featurelab_refuses_a_vocabulary_it_cannot_draw_and_says_how_to_narrow_it(gpt2):
    cfg = transformers.GPT2Config(
        n_layer=1, n_embd=32, n_head=4, vocab_size=1500, n_positions=16, bos_token_id=0, eos_token_id=0
    )
    torch.manual_seed(0)
    big = transformers.GPT2LMHeadModel(cfg).eval()
    ids = torch.randint(0, 1500, (3, 5), generator=torch.Generator().manual_seed(3))
    with sw.Lens(big) as lens:
        with pytest.raises(ValueError, match=r"1500 outputs per input.*output=lambda o: o.logits"):
            sw.FeatureLab(lens, inputs=ids, site="transformer.h.0")
        tokens = [7, 11, 42]
        pick = lambda o: o.logits[:, -1, tokens]  # noqa: E731
        lab = sw.FeatureLab(lens, inputs=ids, site="transformer.h.0", output=pick, class_names=["a", "b", "c"])
        assert lab.baseline.shape == (3,) and lab.baseline.sum() == pytest.approx(1.0, abs=1e-6)
        with pytest.raises(ValueError, match=r"output=\.\.\. failed on the model's output: AttributeError"):
            sw.FeatureLab(lens, inputs=ids, site="transformer.h.0", output=lambda o: o.nope)
        with pytest.raises(TypeError, match="output must be a function"):
            sw.FeatureLab(lens, inputs=ids, site="transformer.h.0", output="logits")


def test_dashboard_on_a_language_model_measures_next_token_effects(gpt2):
    from superwidgets.science.sae import ReLUSAE

    ids = torch.randint(0, 50, (8, 6), generator=torch.Generator().manual_seed(4))
    with sw.Lens(gpt2) as lens:
        dash = sw.FeatureDashboard(lens, "transformer.h.0", ReLUSAE(32, 16, seed=0), ids, effect_sample=8)
        assert len(dash.class_names) == 50 and dash.effect is None  # the effect column is computed on demand
        dash.sort("effect")
        live = np.asarray(dash.frequency) > 0
        assert dash.effect.shape == (16, 50) and live.any()
        assert dash.error == "" and np.isfinite(dash.effect[live]).all() and np.abs(dash.effect[live]).sum() > 0
        lab = dash.open_in_lab()
        assert len(lab.class_names) == 50 and lab.error == ""


def test_featurelab_highlights_a_feature_at_each_token(gpt2):
    ids = torch.randint(0, 50, (5, 6), generator=torch.Generator().manual_seed(5))
    toks = [[f"t{int(t)}" for t in row] for row in ids]
    with sw.Lens(gpt2) as lens:
        lab = sw.FeatureLab(lens, inputs=ids, site="transformer.h.1", index=1, tokens=toks)
        assert lab.input_tokens == toks[1] and lab.positions is None  # nothing selected yet
        lab.ablated = [4]
        lab.select(4)
        edited = lens.activations(ids[1:2], "transformer.h.1", edited=True)["transformer.h.1"]
        assert lab.positions.shape == (6,)
        assert lab.positions == pytest.approx(edited[0, :, 4].numpy(), abs=1e-6)
        assert not lab.positions.any()  # ablated: zero at every position
        lab.ablated = []  # an edit refreshes the highlight without re-selecting
        assert lab.positions.any()
        lab.index = 3
        assert lab.input_tokens == toks[3]
        with pytest.raises(ValueError, match="one list of token strings per input"):
            sw.FeatureLab(lens, inputs=ids, site="transformer.h.1", tokens=toks[:2])


def test_dashboard_shows_top_inputs_as_tokens_with_the_latent_per_position(gpt2):
    from superwidgets.science.sae import ReLUSAE

    ids = torch.randint(0, 50, (10, 6), generator=torch.Generator().manual_seed(7))
    toks = [[f"t{int(t)}" for t in row] for row in ids]
    sae = ReLUSAE(32, 16, seed=0)
    with sw.Lens(gpt2) as lens:
        dash = sw.FeatureDashboard(lens, "transformer.h.1", sae, ids, effect_sample=10, tokens=toks, top_k=3)
        f = int(dash.selected)
        top = [int(i) for i in dash.top_indices]
        assert dash.top_tokens == [toks[i] for i in top]
        h = lens.activations(ids[top], "transformer.h.1")["transformer.h.1"]
        with torch.no_grad():
            codes = sae.encode(h)[..., f].numpy()
        assert dash.top_positions.shape == (len(top), 6)
        assert dash.top_positions == pytest.approx(codes, abs=1e-6)
        assert dash.top_values == pytest.approx(codes.max(1), abs=1e-6)  # an input ranks by its strongest token
        lab = dash.open_in_lab()
        assert lab.input_tokens == toks[lab.index]
        with pytest.raises(ValueError, match="one list of token strings per input"):
            sw.FeatureDashboard(lens, "transformer.h.1", sae, ids, tokens=toks[:3])


def test_featurelab_continues_a_hugging_face_model(gpt2):
    ids = torch.randint(0, 50, (3, 5), generator=torch.Generator().manual_seed(9))
    with sw.Lens(gpt2) as lens:
        lab = sw.FeatureLab(
            lens, inputs=ids, site="transformer.h.0", generate=3, encode=lambda s: [int(t) for t in s.split()]
        )
        seq = ids[:1]
        with lens.off(), torch.no_grad():
            for _ in range(3):
                seq = torch.cat([seq, gpt2(seq[:, -5:]).logits[:, -1].argmax(-1, keepdim=True)], 1)
        assert lab.generated_baseline == " ".join(str(int(t)) for t in seq[0, 5:])  # ids when there is no decode=
        lab.set_text("1 2 3")
        assert lab.input_tokens == ["1", "2", "3"] and lab.error == ""
