"""The character language model on Python's help pages, and its corpus."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from _util import check_retraining

import superwidgets as sw
from superwidgets.data.text import python_help
from superwidgets.zoo import registry, train


@pytest.fixture(scope="module")
def lm():
    return sw.zoo.load("char-lm")


def test_corpus_split_windows_and_codec():
    data = python_help()
    assert len(data) == 465_048 and len(data.vocab) == 96 and data.vocab == sorted(data.vocab)
    assert data.decode(data.ids[:40]) == data.text[:40]
    s = 'def f(x):\n    return "x"'
    assert data.decode(data.encode(s)[0]) == s and data.encode(s).shape == (1, len(s))
    with pytest.raises(ValueError, match=r"not in the vocabulary: \['€'\]"):
        data.encode("price in €")
    assert data.X.shape == (512, 64) and data.X.dtype == torch.int64
    starts = [data.text.find(c, data.train_end - 64) for c in data.captions[:20]]
    assert all(st >= data.train_end - 64 for st in starts)  # held-out windows come from the test part
    assert data.tokens[3] == list(data.captions[3]) and len(data.tokens) == len(data.X)
    assert torch.equal(python_help().X, data.X)  # seeded
    assert (data.windows(8, split="train") < len(data.vocab)).all()
    with pytest.raises(ValueError, match="split must be"):
        data.windows(2, split="dev")


def test_char_lm_predicts_far_better_than_character_frequencies(lm):
    model, data = lm
    card = registry.card("char-lm")
    print({k: v for k, v in card.items() if k != "description"})
    assert card["test_bits_per_char"] < 0.45 * card["unigram_bits_per_char"]  # 1.80 vs 4.67 when trained
    assert card["test_next_char_accuracy"] > 0.6
    fresh = train.char_metrics(model, data)
    assert fresh == {k: card[k] for k in fresh}  # the card describes the shipped weights
    with torch.no_grad():
        logits = model(data.encode("The return statemen"))
    assert data.vocab[int(logits[0, -1].argmax())] == "t"


def test_char_lm_input_checks(lm):
    model, data = lm
    with pytest.raises(ValueError, match=r"integer character ids of shape \(n, T\)"):
        model(data.X.float())
    with pytest.raises(ValueError, match="at most 64 characters"):
        model(torch.zeros(1, 65, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"must be in 0\.\.95"):
        model(torch.full((1, 3), 96, dtype=torch.int64))


def test_char_lm_training_is_deterministic():
    data = python_help()
    states = []
    for _ in range(2):
        model = registry.build("char-lm")
        train.fit_char_model(model, data, generator=torch.Generator().manual_seed(0), steps=30, batch_size=16)
        states.append(model.state_dict())
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k


@pytest.mark.skipif(os.environ.get("SW_SLOW") != "1", reason="full retraining twice takes ≈ 5 min; SW_SLOW=1")
def test_char_lm_retraining_reproduces_the_shipped_model(tmp_path, monkeypatch):
    check_retraining("char-lm", tmp_path, monkeypatch)


def test_lens_resumes_and_featurelab_highlights_characters(lm):
    model, data = lm
    with sw.Lens(model) as lens:
        lab = sw.FeatureLab(
            lens, inputs=data, site="blocks.1.mlp.1", tokens=data.tokens, captions=data.captions, cohort_top=0
        )
        assert len(lab.feature_names) == 256 and len(lab.class_names) == 96
        lab.select(10)
        assert lab.positions.shape == (64,) and lab.input_tokens == data.tokens[0]
        steer = np.zeros(256, np.float32)
        steer[10] = 5.0
        lab.steer = steer
        assert lab.error == "" and np.abs(lab.edited - lab.baseline).max() > 1e-4
        assert lens.resume_info.startswith("resume from sites via torch.fx")  # edits resume mid-model
        r = lens.run(data.X[5:6])
        with lens.off(), torch.no_grad():
            assert torch.equal(r.baseline, model(data.X[5:6]))


def test_featurelab_continues_the_text_as_trained_and_edited(lm):
    model, data = lm
    with sw.Lens(model) as lens:
        lab = sw.FeatureLab(lens, inputs=data, site="blocks.1.mlp.1", cohort_top=0, generate=12, decode=data.decode)
        # as trained: the model's own greedy continuation, computed here by hand
        seq = data.X[:1]
        with lens.off(), torch.no_grad():
            for _ in range(12):
                nxt = model(seq[:, -64:])[:, -1].argmax(-1, keepdim=True)
                seq = torch.cat([seq, nxt], 1)
        assert lab.generated_baseline == data.decode(seq[0, 64:])
        assert lab.generated_edited == lab.generated_baseline  # no edit yet
        steer = np.zeros(256, np.float32)
        steer[:64] = 3.0  # a heavy push on many neurons changes what it writes
        lab.steer = steer
        assert lab.error == ""
        assert lab.generated_edited != lab.generated_baseline and len(lab.generated_edited) == 12
        lab.index = 2  # the as-trained text is kept per input: another input gets its own
        seq = data.X[2:3]
        with lens.off(), torch.no_grad():
            for _ in range(12):
                seq = torch.cat([seq, model(seq[:, -64:])[:, -1].argmax(-1, keepdim=True)], 1)
        assert lab.generated_baseline == data.decode(seq[0, 64:])
        with pytest.raises(ValueError, match="generate must be a number of tokens"):
            sw.FeatureLab(lens, inputs=data, site="blocks.1.mlp.1", generate=-1)
    with pytest.raises(ValueError, match="inputs must be integer ids"):
        m2, d2 = sw.zoo.load("breast-cancer-mlp")
        sw.FeatureLab(sw.Lens(m2), inputs=d2, site="hidden", generate=4)


def test_featurelab_takes_typed_text(lm):
    model, data = lm
    with sw.Lens(model) as lens:
        lab = sw.FeatureLab(lens, inputs=data, site="blocks.1.mlp.1", index=3, cohort_top=0, encode=data.encode,
                            decode=data.decode, tokens=data.tokens, generate=4)  # fmt: skip
        assert lab.text_input and lab.text_edited == ""
        lab.set_text("The return statemen")
        with lens.off(), torch.no_grad():
            want = model(data.encode("The return statemen"))[:, -1].softmax(-1)[0].numpy()
        assert lab.baseline == pytest.approx(want, abs=1e-6)
        assert lab.input_tokens == list("The return statemen") and lab.text_edited == "The return statemen"
        assert lab.input_label == "input 3 · typed: The return statemen"
        assert lab.generated_baseline.startswith("t")
        long = "x" * 100
        lab.set_text(long)  # keeps the last 64 characters
        assert len(lab.input_tokens) == 64
        before = lab.baseline.copy()
        with pytest.raises(ValueError, match="encode could not read the text: characters not in the vocabulary"):
            lab.set_text("price: 5 €")
        assert "not in the vocabulary" in lab.error
        assert np.array_equal(lab.baseline, before) and lab.text_edited == long  # nothing changed
        lab._dispatch(lab, {"type": "text", "seq": 0, "origin": "", "reset": True}, [])
        assert lab.text_edited == "" and lab.input_tokens == data.tokens[3] and lab.error == ""
        with pytest.raises(ValueError, match="typing text needs encode="):
            sw.FeatureLab(lens, inputs=data, site="blocks.1.mlp.1", cohort_top=0).set_text("hi")
