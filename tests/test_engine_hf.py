"""Interop with a small randomly initialised Hugging Face transformers model (no download)."""

from __future__ import annotations

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
