"""Self-supervised encoders: augmentations, deterministic training, an earned probe gain, the shipped encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from superwidgets.data.cellstate import cell_states
from superwidgets.science import ssl
from superwidgets.science.ssl import ConvEncoder, augment, encode, probe_scores, ssl_card_metrics, train_ssl

torch.set_num_threads(1)


def _dihedral(x: torch.Tensor) -> list[torch.Tensor]:
    out = []
    for flip in (False, True):
        y = torch.flip(x, dims=(-1,)) if flip else x
        out += [torch.rot90(y, k, dims=(-2, -1)) for k in range(4)]
    return out


def test_augment_is_seeded_and_keeps_shape():
    x = torch.rand(6, 4, 24, 24, generator=torch.Generator().manual_seed(0))
    a = augment(x, torch.Generator().manual_seed(1))
    b = augment(x, torch.Generator().manual_seed(1))
    c = augment(x, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.allclose(a, x, atol=0.05)  # the views differ from the image


def test_augment_without_crop_or_jitter_is_a_flip_or_rotation():
    x = torch.rand(16, 4, 24, 24, generator=torch.Generator().manual_seed(0))
    y = augment(
        x,
        torch.Generator().manual_seed(3),
        crop_scale=(1.0, 1.0),
        ratio=(1.0, 1.0),
        intensity=0.0,
        blur_p=0.0,
        noise=0.0,
    )
    seen = set()
    for i in range(len(x)):
        hits = [j for j, t in enumerate(_dihedral(x[i])) if torch.allclose(y[i], t, atol=1e-4)]
        assert hits, f"view {i} is not a flip/rotation of its image"
        seen.add(hits[0])
    assert len(seen) >= 4  # several of the eight transforms occur


def test_encoder_shapes_and_errors():
    enc = ConvEncoder(widths=(8, 16, 32))
    assert enc.feature_dim == 32
    f = encode(enc, np.random.default_rng(0).random((5, 4, 20, 20), dtype=np.float32))
    assert f.shape == (5, 32) and f.dtype == np.float32
    with pytest.raises(ValueError, match=r"expects images of shape \(B, 4, S, S\)"):
        enc(torch.zeros(2, 3, 20, 20))
    with pytest.raises(ValueError, match="multiples of 4"):
        ConvEncoder(widths=(6, 16))
    x = torch.zeros(40, 4, 16, 16)
    with pytest.raises(ValueError, match="unknown method 'byol'; choose one of"):
        train_ssl(x, method="byol")
    with pytest.raises(ValueError, match="Pass a smaller batch_size"):
        train_ssl(x, batch_size=64)
    with pytest.raises(ValueError, match="NaN or Inf"):
        train_ssl(torch.full((40, 4, 16, 16), float("nan")), batch_size=8)
    with pytest.raises(ValueError, match="overlap"):
        probe_scores(np.zeros((4, 2)), [0, 1, 0, 1], [0.0, 1, 2, 3], [0, 1, 2], [2, 3])


@pytest.mark.parametrize("method", ssl.METHODS)
def test_same_seed_same_weights(method):
    x = torch.rand(48, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    kw = {"method": method, "epochs": 2, "batch_size": 16, "queue_size": 64}
    runs = [train_ssl(x, seed=s, **kw).state_dict() for s in (4, 4, 5)]
    for k in runs[0]:
        assert torch.equal(runs[0][k], runs[1][k]), k
    assert any(not torch.equal(runs[0][k], runs[2][k]) for k in runs[0])
    # training changed the weights it was given
    torch.manual_seed(4)
    init = ConvEncoder().state_dict()
    assert any(not torch.equal(init[k], runs[0][k]) for k in init)


def _gain_sensitivity(encoder, x, x_gain):
    """Feature change under a staining-gain change, relative to the feature distance between cells."""
    f, fg = encode(encoder, x), encode(encoder, x_gain)
    other = f[np.roll(np.arange(len(f)), 1)]
    return float(np.linalg.norm(f - fg, axis=1).mean() / np.linalg.norm(f - other, axis=1).mean())


def test_short_training_learns_the_staining_invariance():
    # What a 20-second run earns: features that ignore a per-channel staining gain (the world's plate
    # and cell gains, an image-only nuisance). The world (seed 21), the initialisation (torch seed 3)
    # and the gains (seed 99) come from separate streams; the recipe and threshold were set on world
    # seed 0 (0.35 before, 0.18 after training).
    world = cell_states(n=800, seed=21, image_size=32)
    x = world.images[world.test][:200]
    g = torch.Generator().manual_seed(99)
    x_gain = x * np.exp((2 * torch.rand(len(x), 4, 1, 1, generator=g).numpy() - 1) * 0.25)
    torch.manual_seed(3)
    untrained = ConvEncoder()
    before = _gain_sensitivity(untrained, x, x_gain)
    assert before > 0.25  # the untrained encoder does not already pass
    trained = train_ssl(
        world.images[world.train], encoder=untrained, method="simclr", epochs=10, batch_size=32, temperature=0.5, seed=4
    )
    after = _gain_sensitivity(trained, x, x_gain)
    assert after < 0.25 and after < 0.6 * before


def test_shipped_encoder_reproduces_its_card():
    import superwidgets as sw
    from superwidgets.zoo import registry

    model, world = sw.zoo.load("neuron-ssl")
    card = registry.card("neuron-ssl")
    assert isinstance(model, ConvEncoder) and not model.training
    assert card["world"] == {
        "n": len(world.genotype),
        "seed": world.seed,
        "image_size": world.image_size,
        "train": len(world.train),
        "test": len(world.test),
    }
    now = ssl_card_metrics(model, sw.zoo.build("neuron-ssl"), world)
    for key, value in card.items():
        if key.endswith(("accuracy", "chance", "_r2")):
            assert abs(now[key] - value) <= 0.01, (key, now[key], value)
        elif key.endswith("effective_rank"):
            assert abs(now[key] - value) <= 0.01 * value, (key, now[key], value)
    # the earned claims of the card: the trained encoder beats its own initialisation at the genotype
    # probe and has dropped most of the plate (a staining nuisance) that the initialisation carries
    assert card["random_init_genotype_accuracy"] < card["genotype_accuracy"]
    assert card["plate_accuracy"] < card["random_init_plate_accuracy"] - 0.2
    assert card["effective_rank"] < card["random_init_effective_rank"]
